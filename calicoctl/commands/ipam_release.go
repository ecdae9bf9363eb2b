package commands

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/libcalico/ipam"
)

func newIPAMReleaseCmd(env *Env) *cobra.Command {
	var ip string
	var reports []string
	var force bool
	cmd := &cobra.Command{
		Use:   "release [--ip=IP] [--from-report=REPORT]... [--force]",
		Short: "Release a Calico assigned IP address",
		Long: `The ipam release command releases an IP address from the Calico IP Address
Manager that has been previously assigned to an endpoint. When an IP address
is released, it becomes available for assignment to any endpoint.

Note that this does not remove the IP from any existing endpoints that may be
using it, so only use this command to clean up addresses from endpoints that
were not cleanly removed from Calico.

--from-report=REPORT releases all leaked addresses and handles of a report
written by 'calicoctl ipam check -o REPORT'. If several reports are given,
only leaks common to all of them are released: reports taken some time
apart (an hour, say) give more certainty that the addresses are truly
leaked rather than in a transient state of assignment. At least one report
must be current, and the data store must be locked (ClusterInformation
datastoreReady false: 'calicoctl datastore migrate lock') unless --force is
given. An address is released only
if its handle and sequence number are still those of the report.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runIPAMRelease(cmd.Context(), ip, reports, force)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&ip, "ip", "", "IP address to release")
	fl.StringArrayVar(&reports, "from-report", nil, "release all leaked addresses from the report; repeat to release only leaks common to all reports")
	fl.BoolVar(&force, "force", false, "release from reports even if the data store is not locked or the report is of another calicoctl version")
	return cmd
}

func (env *Env) runIPAMRelease(ctx context.Context, ip string, reports []string, force bool) error {
	if ip == "" && len(reports) == 0 {
		return usagef("ipam release needs --ip=IP or --from-report=REPORT")
	}
	if ip != "" && len(reports) > 0 {
		return usagef("give either --ip or --from-report, not both")
	}
	var addr netip.Addr
	if ip != "" {
		var err error
		if addr, err = parseIPArg(ip); err != nil {
			return err
		}
	}
	c, ic, err := env.ipamClient()
	if err != nil {
		return err
	}
	if len(reports) > 0 {
		return env.releaseFromReports(ctx, c, ic, reports, force)
	}
	unallocated, err := ic.ReleaseIPs(ctx, ipam.ReleaseOptions{Address: addr})
	if err != nil {
		return failf(err, "error: %v", err)
	}
	if len(unallocated) != 0 {
		return failf(nil, "IP address %s is not assigned", addr)
	}
	fmt.Fprintf(env.Stdout, "Successfully released IP address %s\n", addr)
	return nil
}
