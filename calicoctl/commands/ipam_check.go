package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/libcalico/model"
)

// DefaultMinLeakAge is ipam check's default --min-leak-age.
const DefaultMinLeakAge = 5 * time.Minute

type ipamCheckFlags struct {
	showAll, showProblems, releaseLeaks bool
	output                              string
	minLeakAge                          time.Duration
}

func newIPAMCheckCmd(env *Env) *cobra.Command {
	var f ipamCheckFlags
	cmd := &cobra.Command{
		Use:   "check [--show-all-ips] [--show-problem-ips] [-o FILE] [--release-leaks]",
		Short: "Check the integrity of the IPAM datastructures",
		Long: `The ipam check command checks the integrity of the IPAM datastructures
against the WorkloadEndpoints and Nodes in the datastore. It reports:

  - IPs allocated in IPAM that no workload endpoint or node tunnel uses
    (leaked IPs);
  - IPs that workloads or nodes use but IPAM has not allocated;
  - handles with no IPs, or whose counts disagree with their blocks, and
    handles that blocks name but that do not exist;
  - block affinities of nodes that do not exist;
  - workload endpoints of nodes that do not exist, and IPs allocated to
    nodes that do not exist (by the allocation's node attribute) that
    something still uses.

Allocations younger than --min-leak-age (by the timestamp the CNI plugin
records) are not counted as leaked: their workload endpoint may not be
written yet. Allocations without a timestamp count whatever their age. A
node that does not exist but has a workload endpoint or allocation younger
than --min-leak-age may be starting: its endpoints and IPs are not counted.

-o FILE writes a machine-readable report, in the format of Calico's
calicoctl, for 'calicoctl ipam release --from-report=FILE'.

--release-leaks repairs what the check found, each write guarded so that
nothing that changed since the check is touched: what nodes that do not
exist left behind is removed as 'calicoctl delete node' removes it (their
workload and host endpoints, BGP peers, node configurations, IPs and block
affinities), leaked IPs are released, and handles are deleted or corrected;
each repair is printed.

A stored block, handle, node or workload endpoint whose value does not
decode is left out of the check, with a warning on stderr naming its key,
and counts as a problem; --release-leaks then repairs nothing, since what
the value holds is unknown.

Like Calico's, the check exits 0 once it has run, whatever it found; read
the "Check complete; found N problems." line or the report. It exits 1 if
it could not run, or if --release-leaks could not repair something.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runIPAMCheck(cmd.Context(), &f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.showAll, "show-all-ips", false, "print all IPs that are checked")
	fl.BoolVar(&f.showProblems, "show-problem-ips", false, "print all IPs that are leaked or not allocated properly")
	fl.StringVarP(&f.output, "output", "o", "", "path to output report file")
	fl.BoolVar(&f.releaseLeaks, "release-leaks", false, "release leaked IPs, delete or correct bad handles and remove what deleted nodes left behind")
	fl.DurationVar(&f.minLeakAge, "min-leak-age", DefaultMinLeakAge, "do not count allocations younger than this as leaked")
	return cmd
}

// owner is one user of an address: a workload endpoint or a node tunnel.
type owner struct {
	ip   netip.Addr
	name string
}

// ipamState is what ipam check reads besides ipamcheck.Check's report: for
// the informational sections and the report file.
type ipamState struct {
	clusterInfo *v3.ClusterInformation
	handleRevs  map[string]int64
	nodeIPs     []owner
	wepIPs      []owner
	usage       []ipam.PoolUsage
	allocs      []ipam.Allocation
	// unreadable are the values these reads skipped: they do not decode.
	unreadable []*cerrors.Corrupt
}

// partial keeps what a read skipped in st.unreadable and returns the rest
// of err.
func (st *ipamState) partial(err error) error {
	skipped, err := cerrors.Skipped(err)
	st.unreadable = append(st.unreadable, skipped...)
	return err
}

// loadIPAMState reads the cluster in the order that keeps the check
// safe: handle revisions before ipamcheck.Check (so a report never pairs a
// leaked handle with a revision newer than the check saw), and endpoints
// before allocations (so an address is not reported in use but
// unallocated merely because its workload was created meanwhile).
func loadIPAMState(ctx context.Context, c *client.Client, ic *ipam.Client) (*ipamState, error) {
	st := &ipamState{handleRevs: map[string]int64{}}
	ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
	switch {
	case err == nil:
		st.clusterInfo = ci
	case !errors.Is(err, cerrors.ErrNotFound):
		return nil, fmt.Errorf("reading ClusterInformation: %w", err)
	}
	hl, err := c.Backend().List(ctx, model.HandleListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing IPAM handles: %w", err)
	}
	for _, kv := range hl.KVPairs {
		if k, ok := kv.Key.(model.HandleKey); ok {
			st.handleRevs[k.HandleID] = kv.Revision
		}
	}
	nodes, _, err := c.Nodes().List(ctx, client.ListOptions{})
	if err = st.partial(err); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	for _, n := range nodes {
		for _, a := range ipam.TunnelAddrs(n) {
			st.nodeIPs = append(st.nodeIPs, owner{a, "Node(" + n.Name + ")"})
		}
	}
	weps, _, err := c.WorkloadEndpoints().List(ctx, client.ListOptions{})
	if err = st.partial(err); err != nil {
		return nil, fmt.Errorf("listing workload endpoints: %w", err)
	}
	for _, w := range weps {
		for _, s := range w.Spec.IPNetworks {
			if a, ok := ipam.ParseAddr(s); ok {
				st.wepIPs = append(st.wepIPs, owner{a, "Workload(" + w.Namespace + "/" + w.Name + ")"})
			}
		}
	}
	st.usage, err = ic.Usage(ctx)
	if err = st.partial(err); err != nil {
		return nil, err
	}
	st.allocs, err = ic.Allocations(ctx)
	if err = st.partial(err); err != nil {
		return nil, err
	}
	slices.SortFunc(st.allocs, func(a, b ipam.Allocation) int { return a.IP.Compare(b.IP) })
	return st, nil
}

// allocNode is the node an allocation belongs to: its node attribute,
// else its block's host.
func allocNode(a ipam.Allocation) string {
	if n := a.Attrs[ipam.AttributeNode]; n != "" {
		return n
	}
	return a.BlockHost
}

func (env *Env) runIPAMCheck(ctx context.Context, f *ipamCheckFlags) error {
	if f.minLeakAge < 0 {
		return usagef("--min-leak-age must not be negative")
	}
	c, ic, err := env.ipamClient()
	if err != nil {
		return err
	}
	st, err := loadIPAMState(ctx, c, ic)
	if err != nil {
		return failf(err, "Failed to check IPAM: %v", err)
	}
	r, err := ipamcheck.Check(ctx, ic, ipamcheck.Options{MinLeakAge: f.minLeakAge})
	if err != nil {
		return failf(err, "Failed to check IPAM: %v", err)
	}
	// One list of what does not decode, from both reads, in key order.
	byKey := map[string]*cerrors.Corrupt{}
	for _, u := range append(slices.Clone(r.Unreadable), st.unreadable...) {
		if byKey[u.Key] == nil {
			byKey[u.Key] = u
		}
	}
	st.unreadable = st.unreadable[:0]
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		st.unreadable = append(st.unreadable, byKey[k])
	}
	env.warnCorrupt(st.unreadable...)
	w := env.Stdout
	cw := &checkWriter{w: w, showAll: f.showAll, showProblems: f.showAll || f.showProblems}
	cw.write(st, r)
	if f.output != "" {
		if err := writeIPAMReport(f.output, buildIPAMReport(st, r, cw.inUse)); err != nil {
			return failf(err, "Failed to write the report: %v", err)
		}
	}
	if !f.releaseLeaks {
		return nil
	}
	if len(st.unreadable) > 0 {
		return failf(ipamcheck.ErrUnreadable, "Not repairing anything: %d stored values do not decode, so what they hold is unknown and a repair could free addresses in use. Remove or rewrite them (see the warnings above) and check again.", len(st.unreadable))
	}
	return env.releaseLeaks(ctx, c, ic, r, f.minLeakAge)
}

// checkWriter prints Calico's check report.
type checkWriter struct {
	w                     io.Writer
	showAll, showProblems bool
	// inUse maps each address workloads and nodes use to its owners.
	inUse map[netip.Addr][]string
}

func (cw *checkWriter) printf(format string, a ...any) { fmt.Fprintf(cw.w, format, a...) }

func (cw *checkWriter) write(st *ipamState, r *ipamcheck.Report) {
	cw.printf("Checking IPAM for inconsistencies...\n\n")

	var blocks []ipam.BlockUsage
	var active []netip.Prefix
	for _, pu := range st.usage {
		blocks = append(blocks, pu.Blocks...)
		if pu.CIDR.IsValid() && !pu.Disabled {
			active = append(active, pu.CIDR)
		}
	}
	slices.SortFunc(blocks, func(a, b ipam.BlockUsage) int { return a.CIDR.Compare(b.CIDR) })
	byBlock := map[netip.Prefix][]ipam.Allocation{}
	allocated := map[netip.Addr]bool{}
	for _, a := range st.allocs {
		byBlock[a.Block] = append(byBlock[a.Block], a)
		allocated[a.IP] = true
	}
	cw.printf("Loading all IPAM blocks...\nFound %d IPAM blocks.\n", len(blocks))
	for _, b := range blocks {
		aff := "<none>"
		if b.Host != "" {
			aff = "host:" + b.Host
		}
		cw.printf(" IPAM block %s affinity=%s:\n", b.CIDR, aff)
		if cw.showAll {
			for _, a := range byBlock[b.CIDR] {
				cw.printf("  %s allocated; attrs %s\n", a.IP, attrString(a.Handle, a.Attrs))
			}
		}
	}
	cw.printf("IPAM blocks record %d allocations.\n\n", len(st.allocs))

	cw.printf("Loading all IPAM pools...\n")
	for _, p := range active {
		cw.printf("  %s\n", p)
	}
	cw.printf("Found %d active IP pools.\n\n", len(active))

	cw.inUse = map[netip.Addr][]string{}
	record := func(o owner) {
		if cw.showAll {
			cw.printf("  %s belongs to %s\n", o.ip, o.name)
		}
		cw.inUse[o.ip] = append(cw.inUse[o.ip], o.name)
	}
	cw.printf("Loading all nodes.\n")
	for _, o := range st.nodeIPs {
		record(o)
	}
	cw.printf("Found %d node tunnel IPs.\n\n", len(st.nodeIPs))
	cw.printf("Loading all workload endpoints.\n")
	for _, o := range st.wepIPs {
		record(o)
	}
	cw.printf("Found %d workload IPs.\nWorkloads and nodes are using %d IPs.\n\n", len(st.wepIPs), len(cw.inUse))

	cw.printf("Loading all handles\n")
	cw.topNodes(st.allocs)

	problems := len(r.Leaked)
	cw.printf("Scanning for IPs that are allocated but not actually in use...\n")
	if cw.showProblems {
		for _, a := range sortedByIP(r.Leaked) {
			cw.printf("  %s leaked; attrs %s\n", a.IP, attrString(a.Handle, a.Attrs))
		}
	}
	cw.printf("Found %d IPs that are allocated in IPAM but not actually in use.\n", len(r.Leaked))

	cw.printf("Scanning for IPs that are in use by a workload or node but not allocated in IPAM...\n")
	var outside, unallocated int
	for _, ip := range slices.SortedFunc(maps.Keys(cw.inUse), netip.Addr.Compare) {
		owners := cw.inUse[ip]
		if cw.showProblems && len(owners) > 1 {
			cw.printf("  %s has multiple owners.\n", ip)
		}
		if allocated[ip] {
			continue
		}
		inPool := slices.ContainsFunc(active, func(p netip.Prefix) bool { return p.Contains(ip) })
		for _, o := range owners {
			if !cw.showProblems {
				break
			}
			if inPool {
				cw.printf("  %s in use by %s and in active IPAM pool but has no IPAM allocation.\n", ip, o)
			} else {
				cw.printf("  %s in use by %s is not in any active IP pool.\n", ip, o)
			}
		}
		if inPool {
			unallocated++
		} else {
			outside++
		}
	}
	problems += outside + unallocated
	cw.printf("Found %d in-use IPs that are not in active IP pools.\n", outside)
	cw.printf("Found %d in-use IPs that are in active IP pools but have no corresponding IPAM allocation.\n\n", unallocated)

	cw.printf("Scanning for IPAM handles with no matching IPs...\n")
	var empty, miscounted []ipamcheck.HandleProblem
	for _, p := range r.BadHandles {
		if len(p.Actual) == 0 {
			empty = append(empty, p)
		} else {
			miscounted = append(miscounted, p)
		}
	}
	for _, p := range empty {
		if cw.showProblems {
			cw.printf("  %s doesn't have any active IPs.\n", p.Handle)
		}
	}
	cw.printf("Found %d handles with no matching IPs (and %d handles with matches).\n", len(empty), r.Handles-len(empty))
	for _, p := range miscounted {
		if cw.showProblems {
			cw.printf("  %s records %s but its blocks hold %s.\n", p.Handle, countsString(p.Recorded), countsString(p.Actual))
		}
	}
	cw.printf("Found %d handles whose counts disagree with their blocks.\n", len(miscounted))
	problems += len(r.BadHandles)

	cw.printf("Scanning for IPs with missing handle...\n")
	for _, h := range r.MissingHandles {
		if cw.showProblems {
			cw.printf("  %s is in use in a block but doesn't exist.\n", h)
		}
	}
	cw.printf("Found %d handles mentioned in blocks with no matching handle resource.\n", len(r.MissingHandles))
	problems += len(r.MissingHandles)

	cw.printf("Scanning for block affinities of nodes that do not exist...\n")
	for _, s := range r.StaleAffinities {
		if cw.showProblems {
			cw.printf("  %s is affine to node %s, which does not exist.\n", s.CIDR, s.Host)
		}
	}
	cw.printf("Found %d block affinities of nodes that do not exist.\n", len(r.StaleAffinities))
	problems += len(r.StaleAffinities)
	cw.printf("Scanning for workload endpoints of nodes that do not exist...\n")
	for _, o := range r.OrphanedEndpoints {
		if cw.showProblems {
			cw.printf("  Workload(%s/%s) is on node %s, which does not exist.\n", o.Namespace, o.Name, o.Node)
		}
	}
	cw.printf("Found %d workload endpoints of nodes that do not exist.\n", len(r.OrphanedEndpoints))
	cw.printf("Scanning for in-use IPs allocated to nodes that do not exist...\n")
	for _, a := range sortedByIP(r.DeletedNodeAllocations) {
		if cw.showProblems {
			cw.printf("  %s is allocated to node %s, which does not exist; attrs %s\n", a.IP, a.Attrs[ipam.AttributeNode], attrString(a.Handle, a.Attrs))
		}
	}
	cw.printf("Found %d in-use IPs allocated to nodes that do not exist.\n", len(r.DeletedNodeAllocations))
	problems += len(r.OrphanedEndpoints) + len(r.DeletedNodeAllocations)

	if len(st.unreadable) > 0 { // not in Calico's report, which skips them silently
		cw.printf("Scanning for stored values that do not decode...\n")
		for _, u := range st.unreadable {
			if cw.showProblems {
				cw.printf("  %s: %v\n", u.Key, u.Err)
			}
		}
		cw.printf("Found %d stored values that do not decode; what they hold is missing from this check.\n", len(st.unreadable))
		problems += len(st.unreadable)
	}

	cw.printf("Check complete; found %d problems.\n", problems)
}

// topNodes prints the nodes with the most allocations, as Calico does.
func (cw *checkWriter) topNodes(allocs []ipam.Allocation) {
	const numNodesToPrint = 20
	count := map[string]int{}
	for _, a := range allocs {
		count[orDefault(allocNode(a), "<none>")]++
	}
	nodes := slices.Collect(maps.Keys(count))
	slices.SortFunc(nodes, func(a, b string) int {
		if d := count[b] - count[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	cw.printf("Looking for top (up to %d) nodes by allocations...\n", numNodesToPrint)
	for i, n := range nodes {
		if i >= numNodesToPrint {
			break
		}
		cw.printf("  %s has %d allocations\n", n, count[n])
	}
	if len(nodes) > 0 {
		cw.printf("Node with most allocations has %d; median is %d\n", count[nodes[0]], count[nodes[len(nodes)/2]])
	}
	cw.printf("\n")
}

func sortedByIP(l []ipam.Allocation) []ipam.Allocation {
	out := slices.Clone(l)
	slices.SortFunc(out, func(a, b ipam.Allocation) int { return a.IP.Compare(b.IP) })
	return out
}

// countsString formats a handle's per-block counts: {10.0.0.0/26: 2}.
func countsString(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
