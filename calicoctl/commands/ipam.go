package commands

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
)

// newIPAMCmd is `calicoctl ipam`: Calico's IP address management
// commands over the block IPAM of package ipam.
func newIPAMCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ipam",
		Short: "IP address management",
		Long:  "IP address management commands for Calico: show usage, release addresses,\nsplit pools, configure IPAM and check its integrity.",
	}
	return newGroup(cmd, newIPAMCheckCmd(env), newIPAMReleaseCmd(env), newIPAMShowCmd(env), newIPAMSplitCmd(env), newIPAMConfigureCmd(env))
}

// ipamClient connects to the datastore and returns it with an IPAM client
// over it whose warnings go to the command's stderr.
func (env *Env) ipamClient() (*client.Client, *ipam.Client, error) {
	c, err := env.Client()
	if err != nil {
		return nil, nil, err
	}
	ic, err := ipam.New(c.Backend(), env.warnLog(), ipam.Options{})
	if err != nil {
		return nil, nil, failf(err, "Failed to create the IPAM client: %v", err)
	}
	return c, ic, nil
}

// parseIPArg parses an --ip value as Calico's calicoctl does: a bare IPv4
// or IPv6 address.
func parseIPArg(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, failf(err, "Error executing command: invalid IP address specified: %s", s)
	}
	return a.Unmap(), nil
}

// decimal is what calicoctl's tables right-align: a plain number.
var decimal = regexp.MustCompile(`^-?(?:\d{1,3}(?:,\d{3})*|\d+)(?:\.\d+)?$`)

// writeNumericTable is writeBoxTable with numeric cells right-aligned, as
// the tables of Calico's `calicoctl ipam` are.
func writeNumericTable(w io.Writer, headings []string, rows [][]string) {
	writeTable(w, headings, rows, decimal.MatchString)
}

// percentCell is Calico's "IN USE" and "FREE" cell: the count and its
// share of capacity, rounded.
func percentCell(n, capacity float64) string {
	return fmt.Sprintf("%.5g (%.f%%)", n, 100*n/capacity)
}

// attrString formats an allocation's handle and attributes as Calico's
// ipam check does: Main:<handle> Extra:k=v,k=v.
func attrString(handle string, attrs map[string]string) string {
	if handle == "" {
		handle = "<none>"
	}
	kvs := make([]string, 0, len(attrs))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		kvs = append(kvs, k+"="+attrs[k])
	}
	return fmt.Sprintf("Main:%s Extra:%s", handle, strings.Join(kvs, ","))
}
