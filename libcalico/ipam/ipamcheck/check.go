package ipamcheck

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Options tune Check.
type Options struct {
	// Fix releases leaked addresses, deletes handles without allocations,
	// corrects handle counts and releases the affinities of deleted nodes.
	Fix bool
	// MinLeakAge spares allocations younger than this (by their timestamp
	// attribute): a CNI ADD may not have written its endpoint yet.
	MinLeakAge time.Duration
	// Now overrides the clock (tests).
	Now func() time.Time
}

// HandleProblem is a handle whose counts disagree with the blocks.
type HandleProblem struct {
	Handle string
	// Recorded is what the handle says per block, Actual what the blocks
	// hold; a handle with an empty Actual has no allocation at all.
	Recorded, Actual map[string]int
}

// StaleAffinity is a block affinity of a node that does not exist.
type StaleAffinity struct {
	Host string
	CIDR netip.Prefix
}

// OrphanedEndpoint is a WorkloadEndpoint whose node does not exist.
type OrphanedEndpoint struct {
	Namespace, Name, Node string
}

// Report is what Check found (and, with Fix, fixed).
type Report struct {
	Blocks, Handles, Allocations int
	// Leaked are allocations no WorkloadEndpoint and no node tunnel uses.
	Leaked []ipam.Allocation
	// BadHandles have no allocation, or counts that disagree.
	BadHandles []HandleProblem
	// MissingHandles are handles named by allocations but not stored.
	MissingHandles []string
	// StaleAffinities belong to deleted nodes.
	StaleAffinities []StaleAffinity
	// OrphanedEndpoints are WorkloadEndpoints of deleted nodes.
	OrphanedEndpoints []OrphanedEndpoint
	// DeletedNodeAllocations are allocations whose node attribute names a
	// deleted node and that something still uses (those nothing uses are
	// in Leaked).
	DeletedNodeAllocations []ipam.Allocation
	// DeletedNodes, sorted, are the nodes that do not exist but that
	// endpoints, allocations (by their node attribute) or affinities still
	// name: what removing the node (package nodedelete) would clean up.
	// A node with an endpoint or allocation younger than MinLeakAge may be
	// starting up: it is left out, as are its endpoints and allocations.
	DeletedNodes []string
	// Unreadable are the stored blocks, handles, nodes and endpoints that
	// do not decode, in the order read. The check goes on without them, so
	// what they hold is missing from the rest of the report: addresses a
	// lost endpoint uses may show as leaked, a lost block's allocations
	// are not counted. A node whose value does not decode still counts as
	// existing (its name is in its key), and a handle likewise. Fix repairs
	// nothing while any value is unreadable.
	Unreadable []*cerrors.Corrupt
	// Fixed counts what Fix repaired; FixErrors what it could not.
	Fixed     int
	FixErrors []error
}

// OK reports whether the check found nothing wrong.
func (r *Report) OK() bool {
	return len(r.Leaked)+len(r.BadHandles)+len(r.MissingHandles)+len(r.StaleAffinities)+
		len(r.OrphanedEndpoints)+len(r.DeletedNodeAllocations)+len(r.Unreadable) == 0
}

// ErrUnreadable is in Report.FixErrors when Fix repaired nothing
// because some values do not decode.
var ErrUnreadable = errors.New("not repairing IPAM while stored values do not decode: what they hold is unknown, so a repair could free addresses in use")

// timestampLayout is how the CNI plugin writes ipam.AttributeTimestamp (Go's
// time.Time.String, as Calico's does).
const timestampLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

// Check reads the whole IPAM state, nodes and endpoints at one revision
// and reports leaked addresses, bad or missing handles, and the
// affinities, endpoints and addresses of deleted nodes; with opts.Fix it
// repairs leaks, handles and affinities, each write guarded so that
// nothing that changed since the read is touched. Fix leaves the
// endpoints and in-use addresses of deleted nodes alone: removing a
// node's leftovers is package nodedelete's job, which needs the typed
// client (calicoctl ipam check --release-leaks calls it for
// DeletedNodes).
func Check(ctx context.Context, ic *ipam.Client, opts Options) (*Report, error) {
	read, err := ic.Transactor().Read(ctx, backend.Linearizable, []backend.ReadOp{
		{List: model.BlockListOptions{}},
		{List: model.HandleListOptions{}},
		{List: model.BlockAffinityListOptions{}, KeysOnly: true},
		{List: model.ResourceListOptions{Kind: v3.KindNode}},
		{List: model.ResourceListOptions{Kind: v3.KindWorkloadEndpoint}},
	})
	if err != nil {
		return nil, fmt.Errorf("reading IPAM state: %w", err)
	}
	res := read.Results
	var unreadable []*cerrors.Corrupt
	// corrupt records a value that does not decode; other errors stop
	// the check.
	corrupt := func(err error) bool {
		var c *cerrors.Corrupt
		if errors.As(err, &c) {
			unreadable = append(unreadable, c)
			return true
		}
		return false
	}
	var blocks int
	var allocs []ipam.Allocation
	for _, kv := range res[0] {
		as, err := ipam.DecodeAllocations(kv)
		if corrupt(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		blocks++
		allocs = append(allocs, as...)
	}
	nodes, inUse := map[string]bool{}, map[netip.Addr]bool{}
	for _, kv := range res[3] {
		v, err := model.Decode(kv.Key, kv.Value, kv.Revision)
		if corrupt(err) {
			nodes[kv.Key.(model.ResourceKey).Name] = true
			continue
		}
		if err != nil {
			return nil, err
		}
		n := v.(*v3.Node)
		nodes[n.Name] = true
		for _, a := range ipam.TunnelAddrs(n) {
			inUse[a] = true
		}
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	r := &Report{Blocks: blocks, Handles: len(res[1]), Allocations: len(allocs)}
	// gone are the deleted nodes something names; young those of them
	// with an endpoint or allocation younger than MinLeakAge.
	gone, young := map[string]bool{}, map[string]bool{}
	for _, kv := range res[4] {
		v, err := model.Decode(kv.Key, kv.Value, kv.Revision)
		if corrupt(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		w := v.(*v3.WorkloadEndpoint)
		for _, s := range w.Spec.IPNetworks {
			if a, ok := ipam.ParseAddr(s); ok {
				inUse[a] = true
			}
		}
		if n := w.Spec.Node; n != "" && !nodes[n] {
			gone[n] = true
			if ts := w.CreationTimestamp; !ts.IsZero() && now.Sub(ts.Time) < opts.MinLeakAge {
				young[n] = true
			}
			r.OrphanedEndpoints = append(r.OrphanedEndpoints, OrphanedEndpoint{Namespace: w.Namespace, Name: w.Name, Node: n})
		}
	}

	actual := map[string]map[string]int{}
	for _, a := range allocs {
		if a.Handle != "" {
			if actual[a.Handle] == nil {
				actual[a.Handle] = map[string]int{}
			}
			actual[a.Handle][a.Block.String()]++
		}
		isYoung := false
		if ts, err := time.Parse(timestampLayout, a.Attrs[ipam.AttributeTimestamp]); err == nil && now.Sub(ts) < opts.MinLeakAge {
			isYoung = true
		}
		n := a.Attrs[ipam.AttributeNode]
		deleted := n != "" && !nodes[n]
		if deleted {
			gone[n] = true
			if isYoung {
				young[n] = true
			}
		}
		switch {
		case a.Handle == ipam.WindowsReservedHandle || isYoung:
		case !inUse[a.IP]:
			r.Leaked = append(r.Leaked, a)
		case deleted:
			r.DeletedNodeAllocations = append(r.DeletedNodeAllocations, a)
		}
	}
	// revs are the revisions of the handles that decode.
	revs := map[string]int64{}
	unreadableHandles := map[string]bool{}
	for _, kv := range res[1] {
		id := kv.Key.(model.HandleKey).HandleID
		v, err := model.Decode(kv.Key, kv.Value, kv.Revision)
		if corrupt(err) {
			unreadableHandles[id] = true
			continue
		}
		if err != nil {
			return nil, err
		}
		revs[id] = kv.Revision
		recorded := v.(*model.IPAMHandle).Block
		if recorded == nil {
			recorded = map[string]int{}
		}
		if !maps.Equal(recorded, actual[id]) {
			r.BadHandles = append(r.BadHandles, HandleProblem{Handle: id, Recorded: recorded, Actual: maps.Clone(actual[id])})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(actual)) {
		if _, ok := revs[id]; !ok && !unreadableHandles[id] {
			r.MissingHandles = append(r.MissingHandles, id)
		}
	}
	for _, kv := range res[2] {
		if k := kv.Key.(model.BlockAffinityKey); !nodes[k.Host] {
			gone[k.Host] = true
			r.StaleAffinities = append(r.StaleAffinities, StaleAffinity{Host: k.Host, CIDR: k.CIDR})
		}
	}
	r.OrphanedEndpoints = slices.DeleteFunc(r.OrphanedEndpoints, func(o OrphanedEndpoint) bool { return young[o.Node] })
	r.DeletedNodeAllocations = slices.DeleteFunc(r.DeletedNodeAllocations, func(a ipam.Allocation) bool { return young[a.Attrs[ipam.AttributeNode]] })
	for _, n := range slices.Sorted(maps.Keys(gone)) {
		if !young[n] {
			r.DeletedNodes = append(r.DeletedNodes, n)
		}
	}
	r.Unreadable = unreadable
	switch {
	case opts.Fix && len(unreadable) > 0:
		r.FixErrors = append(r.FixErrors, ErrUnreadable)
	case opts.Fix:
		fix(ctx, ic, r, revs, actual)
	}
	return r, nil
}

// fix repairs what r lists. Leaked addresses are released only if their
// handle and sequence number still match; handles are rewritten only at
// the revision the check read (revs).
func fix(ctx context.Context, ic *ipam.Client, r *Report, revs map[string]int64, actual map[string]map[string]int) {
	fail := func(err error) { r.FixErrors = append(r.FixErrors, err) }
	for _, a := range r.Leaked {
		seq := a.SequenceNumber
		if _, err := ic.ReleaseIPs(ctx, ipam.ReleaseOptions{Address: a.IP, Handle: a.Handle, SequenceNumber: &seq}); err != nil {
			fail(fmt.Errorf("releasing leaked %s: %w", a.IP, err))
			continue
		}
		if m := actual[a.Handle]; m != nil {
			if m[a.Block.String()]--; m[a.Block.String()] <= 0 {
				delete(m, a.Block.String())
			}
		}
		r.Fixed++
	}
	for _, p := range r.BadHandles {
		rev := revs[p.Handle]
		// Releasing leaks above changed some handles; re-read those.
		res, err := ic.Transactor().Read(ctx, backend.Linearizable, []backend.ReadOp{{Key: model.HandleKey{HandleID: p.Handle}}})
		if err != nil || len(res.Results[0]) == 0 || res.Results[0][0].Revision != rev {
			continue
		}
		if err := ic.SetHandleCounts(ctx, p.Handle, rev, p.Actual); err != nil {
			fail(fmt.Errorf("fixing handle %s: %w", p.Handle, err))
			continue
		}
		r.Fixed++
	}
	for _, id := range r.MissingHandles {
		if len(actual[id]) == 0 {
			continue // its addresses were leaks, released above
		}
		if err := ic.SetHandleCounts(ctx, id, 0, actual[id]); err != nil && !errors.Is(err, cerrors.ErrConflict) {
			fail(fmt.Errorf("recreating handle %s: %w", id, err))
			continue
		}
		r.Fixed++
	}
	hosts := map[string]bool{}
	for _, s := range r.StaleAffinities {
		hosts[s.Host] = true
	}
	for _, host := range slices.Sorted(maps.Keys(hosts)) {
		if _, err := ic.ReleaseHostAffinities(ctx, host, false); err != nil {
			fail(fmt.Errorf("releasing affinities of deleted node %s: %w", host, err))
			continue
		}
		r.Fixed++
	}
}
