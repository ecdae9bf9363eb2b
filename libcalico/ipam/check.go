package ipam

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
	"github.com/calico-etcd/calico/libcalico/model"
)

// CheckOptions tune Check.
type CheckOptions struct {
	// Fix releases leaked addresses, deletes handles without allocations,
	// corrects handle counts and releases the affinities of deleted nodes.
	Fix bool
	// MinLeakAge spares allocations younger than this (by their timestamp
	// attribute): a CNI ADD may not have written its endpoint yet.
	MinLeakAge time.Duration
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

// CheckReport is what Check found (and, with Fix, fixed).
type CheckReport struct {
	Blocks, Handles, Allocations int
	// Leaked are allocations no WorkloadEndpoint and no node tunnel uses.
	Leaked []Allocation
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
	DeletedNodeAllocations []Allocation
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
func (r *CheckReport) OK() bool {
	return len(r.Leaked)+len(r.BadHandles)+len(r.MissingHandles)+len(r.StaleAffinities)+
		len(r.OrphanedEndpoints)+len(r.DeletedNodeAllocations)+len(r.Unreadable) == 0
}

// ErrUnreadable is in CheckReport.FixErrors when Fix repaired nothing
// because some values do not decode.
var ErrUnreadable = errors.New("not repairing IPAM while stored values do not decode: what they hold is unknown, so a repair could free addresses in use")

// timestampLayout is how the CNI plugin writes AttributeTimestamp (Go's
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
func (c *Client) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	res, err := c.read(ctx, []backend.ReadOp{
		{List: model.BlockListOptions{}},
		{List: model.HandleListOptions{}},
		{List: model.BlockAffinityListOptions{}, KeysOnly: true},
		{List: model.ResourceListOptions{Kind: v3.KindNode}},
		{List: model.ResourceListOptions{Kind: v3.KindWorkloadEndpoint}},
	})
	if err != nil {
		return nil, fmt.Errorf("reading IPAM state: %w", err)
	}
	blocks, unreadable, err := decodeBlocks(res[0])
	if err != nil {
		return nil, err
	}
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
		for _, a := range TunnelAddrs(n) {
			inUse[a] = true
		}
	}
	now := c.opts.Now()
	r := &CheckReport{Blocks: len(blocks), Handles: len(res[1])}
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
			if a, ok := ParseAddr(s); ok {
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
	for _, bk := range blocks {
		for _, a := range blockAllocations(bk) {
			r.Allocations++
			if a.Handle != "" {
				if actual[a.Handle] == nil {
					actual[a.Handle] = map[string]int{}
				}
				actual[a.Handle][bk.cidr.String()]++
			}
			isYoung := false
			if ts, err := time.Parse(timestampLayout, a.Attrs[AttributeTimestamp]); err == nil && now.Sub(ts) < opts.MinLeakAge {
				isYoung = true
			}
			n := a.Attrs[AttributeNode]
			deleted := n != "" && !nodes[n]
			if deleted {
				gone[n] = true
				if isYoung {
					young[n] = true
				}
			}
			switch {
			case a.Handle == WindowsReservedHandle || isYoung:
			case !inUse[a.IP]:
				r.Leaked = append(r.Leaked, a)
			case deleted:
				r.DeletedNodeAllocations = append(r.DeletedNodeAllocations, a)
			}
		}
	}
	handles := map[string]*handleKV{}
	unreadableHandles := map[string]bool{}
	for _, kv := range res[1] {
		id := kv.Key.(model.HandleKey).HandleID
		h, err := decodeHandle(id, kv)
		if corrupt(err) {
			unreadableHandles[id] = true
			continue
		}
		if err != nil {
			return nil, err
		}
		handles[id] = h
		if !maps.Equal(h.h.Block, actual[id]) {
			r.BadHandles = append(r.BadHandles, HandleProblem{Handle: id, Recorded: maps.Clone(h.h.Block), Actual: maps.Clone(actual[id])})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(actual)) {
		if handles[id] == nil && !unreadableHandles[id] {
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
	r.DeletedNodeAllocations = slices.DeleteFunc(r.DeletedNodeAllocations, func(a Allocation) bool { return young[a.Attrs[AttributeNode]] })
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
		c.fix(ctx, r, handles, actual)
	}
	return r, nil
}

// ParseAddr reads the address of an endpoint's ipNetworks entry or a
// Node's tunnel address field: "10.0.0.1/32", "10.0.0.1" or, as some
// writers store tunnel addresses, "10.0.0.1/26" (the address, not the
// network).
func ParseAddr(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err == nil && a.Zone() == ""
}

// TunnelAddrs returns the addresses a Node's tunnel fields hold (IPIP,
// VXLAN v4 and v6, WireGuard v4 and v6): addresses IPAM allocated to it.
func TunnelAddrs(n *v3.Node) []netip.Addr {
	var out []netip.Addr
	add := func(s string) {
		if a, ok := ParseAddr(s); ok {
			out = append(out, a)
		}
	}
	if n.Spec.BGP != nil {
		add(n.Spec.BGP.IPv4IPIPTunnelAddr)
	}
	add(n.Spec.IPv4VXLANTunnelAddr)
	add(n.Spec.IPv6VXLANTunnelAddr)
	if w := n.Spec.Wireguard; w != nil {
		add(w.InterfaceIPv4Address)
		add(w.InterfaceIPv6Address)
	}
	return out
}

// fix repairs what r lists. Leaked addresses are released only if their
// handle and sequence number still match; handles are rewritten only at
// the revision the check read.
func (c *Client) fix(ctx context.Context, r *CheckReport, handles map[string]*handleKV, actual map[string]map[string]int) {
	fail := func(err error) { r.FixErrors = append(r.FixErrors, err) }
	for _, a := range r.Leaked {
		seq := a.SequenceNumber
		if _, err := c.ReleaseIPs(ctx, ReleaseOptions{Address: a.IP, Handle: a.Handle, SequenceNumber: &seq}); err != nil {
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
		h := handles[p.Handle]
		if h == nil {
			continue
		}
		// Releasing leaks above changed some handles; re-read those.
		kv, err := c.getKV(ctx, model.HandleKey{HandleID: p.Handle})
		if err != nil || kv == nil || kv.Revision != h.rev {
			continue
		}
		fixed := h.clone()
		fixed.h.Block = maps.Clone(p.Actual)
		if fixed.h.Block == nil {
			fixed.h.Block = map[string]int{}
		}
		op, err := fixed.op()
		if err == nil {
			_, err = c.txn(ctx, op)
		}
		if err != nil {
			fail(fmt.Errorf("fixing handle %s: %w", p.Handle, err))
			continue
		}
		r.Fixed++
	}
	for _, id := range r.MissingHandles {
		if len(actual[id]) == 0 {
			continue // its addresses were leaks, released above
		}
		h := &handleKV{id: id, h: model.IPAMHandle{Block: maps.Clone(actual[id])}}
		op, err := h.op()
		if err == nil {
			_, err = c.txn(ctx, op)
		}
		if err != nil && !isConflict(err) {
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
		if _, err := c.ReleaseHostAffinities(ctx, host, false); err != nil && !errors.Is(err, errBlockNotEmpty) {
			fail(fmt.Errorf("releasing affinities of deleted node %s: %w", host, err))
			continue
		}
		r.Fixed++
	}
}
