package commands

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/ipam"
)

type ipamShowFlags struct {
	ip                              string
	blocks, borrowed, configuration bool
}

func newIPAMShowCmd(env *Env) *cobra.Command {
	var f ipamShowFlags
	cmd := &cobra.Command{
		Use:   "show [--ip=IP | --show-blocks | --show-borrowed | --show-configuration]",
		Short: "Show IP usage, an assigned address or the IPAM configuration",
		Long: `The ipam show command prints information about a given IP address, or about
overall IP usage.

Without flags it prints each IP pool's size and how many of its addresses
are in use and free. --show-blocks adds a row per allocation block;
--show-borrowed lists addresses assigned to a node from a block affine to
another node (or to none); --show-configuration prints the cluster's IPAM
configuration; --ip=IP reports whether one address is assigned, with its
handle and attributes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runIPAMShow(cmd.Context(), &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.ip, "ip", "", "report whether this specific IP address is in use")
	fl.BoolVar(&f.blocks, "show-blocks", false, "show detailed information for IP blocks as well as pools")
	fl.BoolVar(&f.borrowed, "show-borrowed", false, `show detailed information for "borrowed" IP addresses`)
	fl.BoolVar(&f.configuration, "show-configuration", false, "show current Calico IPAM configuration")
	return cmd
}

func (env *Env) runIPAMShow(ctx context.Context, f *ipamShowFlags) error {
	n := 0
	for _, set := range []bool{f.ip != "", f.blocks, f.borrowed, f.configuration} {
		if set {
			n++
		}
	}
	if n > 1 {
		return usagef("give at most one of --ip, --show-blocks, --show-borrowed and --show-configuration")
	}
	var addr netip.Addr
	if f.ip != "" {
		var err error
		if addr, err = parseIPArg(f.ip); err != nil {
			return err
		}
	}
	_, ic, err := env.ipamClient()
	if err != nil {
		return err
	}
	switch {
	case f.ip != "":
		return env.showIP(ctx, ic, addr)
	case f.borrowed:
		return env.showBorrowed(ctx, ic)
	case f.configuration:
		return env.showIPAMConfig(ctx, ic)
	}
	return env.showUsage(ctx, ic, f.blocks)
}

func (env *Env) showIP(ctx context.Context, ic *ipam.Client, addr netip.Addr) error {
	handle, attrs, err := ic.GetAssignmentAttributes(ctx, addr)
	if errors.Is(err, cerrors.ErrNotFound) {
		fmt.Fprintf(env.Stdout, "%s is not assigned\n", addr)
		return nil
	}
	if err != nil {
		return failf(err, "Error: %v", err)
	}
	w := env.Stdout
	fmt.Fprintf(w, "IP %s is in use\n", addr)
	fmt.Fprintf(w, "Handle ID: %s\n", orDefault(handle, "<none>"))
	if len(attrs) == 0 {
		fmt.Fprintln(w, "No Active Owner attributes defined")
		return nil
	}
	fmt.Fprintln(w, "Active Owner Attributes:")
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		fmt.Fprintf(w, "  %s: %s\n", k, attrs[k])
	}
	return nil
}

// showUsage prints Calico's utilization table: a row per pool and, with
// blocks, a row per block after its pool. Blocks outside every pool get
// rows only with blocks, as in Calico.
func (env *Env) showUsage(ctx context.Context, ic *ipam.Client, blocks bool) error {
	usage, err := ic.Usage(ctx)
	if err = env.skipCorrupt(err); err != nil {
		return failf(err, "Failed to read IPAM usage: %v", err)
	}
	row := func(kind, cidr string, capacity, inUse float64) []string {
		return []string{kind, cidr, fmt.Sprintf("%.5g", capacity), percentCell(inUse, capacity), percentCell(capacity-inUse, capacity)}
	}
	var rows [][]string
	for _, pu := range usage {
		if pu.CIDR.IsValid() {
			capacity := math.Ldexp(1, pu.CIDR.Addr().BitLen()-pu.CIDR.Bits())
			rows = append(rows, row("IP Pool", pu.CIDR.String(), capacity, float64(pu.InUse)))
		}
		if !blocks {
			continue
		}
		bs := slices.Clone(pu.Blocks)
		slices.SortFunc(bs, func(a, b ipam.BlockUsage) int { return a.CIDR.Compare(b.CIDR) })
		for _, b := range bs {
			rows = append(rows, row("Block", b.CIDR.String(), float64(b.Capacity), float64(b.InUse)))
		}
	}
	writeNumericTable(env.Stdout, []string{"GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"}, rows)
	return nil
}

// borrowed is one address assigned to a node other than its block's.
type borrowed struct {
	ip                                    netip.Addr
	node, block, owner, kind, allocatedTo string
}

// findBorrowed returns the borrowed addresses, in address order, and how
// many allocations name no node (so cannot be classified), as Calico's
// --show-borrowed does.
func findBorrowed(allocs []ipam.Allocation) ([]borrowed, int) {
	var out []borrowed
	unclassified := 0
	for _, a := range allocs {
		node, ok := a.Attrs[ipam.AttributeNode]
		if !ok {
			unclassified++
			continue
		}
		if node == a.BlockHost {
			continue
		}
		b := borrowed{ip: a.IP, node: node, block: a.Block.String(), owner: a.BlockHost}
		if pod, ok := a.Attrs[ipam.AttributePod]; ok {
			b.kind, b.allocatedTo = "pod", a.Attrs[ipam.AttributeNamespace]+"/"+pod
		} else {
			b.kind = a.Attrs[ipam.AttributeType]
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(x, y borrowed) int { return x.ip.Compare(y.ip) })
	return out, unclassified
}

func (env *Env) showBorrowed(ctx context.Context, ic *ipam.Client) error {
	allocs, err := ic.Allocations(ctx)
	if err = env.skipCorrupt(err); err != nil {
		return failf(err, "Failed to read IPAM allocations: %v", err)
	}
	details, unclassified := findBorrowed(allocs)
	rows := make([][]string, len(details))
	for i, d := range details {
		rows[i] = []string{d.ip.String(), d.node, d.block, d.owner, d.kind, d.allocatedTo}
	}
	writeNumericTable(env.Stdout, []string{"IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "TYPE", "ALLOCATED-TO"}, rows)
	if unclassified != 0 {
		fmt.Fprintf(env.Stdout, "\nNote: found %d IP allocations without an explicit node association. Unable to determine if they are borrowed.\n", unclassified)
	}
	return nil
}

func (env *Env) showIPAMConfig(ctx context.Context, ic *ipam.Client) error {
	cfg, err := ic.GetIPAMConfig(ctx)
	if err != nil {
		return failf(err, "Error: %v", err)
	}
	writeNumericTable(env.Stdout, []string{"PROPERTY", "VALUE"}, [][]string{
		{"StrictAffinity", strconv.FormatBool(cfg.StrictAffinity)},
		{"AutoAllocateBlocks", strconv.FormatBool(cfg.AutoAllocateBlocks)},
		{"MaxBlocksPerHost", strconv.Itoa(cfg.MaxBlocksPerHost)},
	})
	return nil
}
