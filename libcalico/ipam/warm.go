package ipam

import (
	"context"
	"net/netip"
	"strconv"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

// The warm path: a long-lived client that has just assigned from one of a
// host's blocks can serve the host's next request in one round trip. It
// keeps what that request read and the block as it committed it, assigns
// from the copy, and commits the block and the new handle in a transaction
// that also guards everything else the choice rested on: the Node (its
// labels against the pool's nodeSelector), the block's pool, and every
// IPReservation (none written since the read). The IPAM config and the
// block's affinity need no guard: no config forbids using a host's own
// block, and releasing the affinity rewrites or deletes the block. If
// anything moved, the transaction writes nothing and the request takes
// the full path, which reads afresh; a stale cache costs one round trip,
// never a wrong assignment.

// warmHost is a host's cached state; one request at a time uses it.
type warmHost struct {
	st     *hostState
	blocks map[int]*blockKV // by IP version, as committed
	guards []backend.TxnOp
}

// keepWarm caches st after a request that completed, when every version
// it served came from a single confirmed affine block of the host.
func (c *Client) keepWarm(st *hostState) {
	if len(st.used) == 0 {
		return
	}
	w := &warmHost{st: st, blocks: map[int]*blockKV{}}
	w.guards = []backend.TxnOp{
		{Action: backend.TxnCheck, Key: model.ResourceKey{Kind: v3.KindNode, Name: st.host}, Revision: st.nodeRev},
		{Action: backend.TxnCheckList, List: model.ResourceListOptions{Kind: v3.KindIPReservation}, Revision: st.readRev},
	}
	for version, bks := range st.used {
		if len(bks) != 1 {
			return
		}
		bk := bks[0]
		aff := st.confirmedAffinity(bk.cidr)
		p, ok := poolFor(st.pools, bk.cidr.Addr())
		if aff == nil || !ok || bk.b.Affinity == nil || *bk.b.Affinity != affinityOf(st.host) {
			return
		}
		poolRev, err := strconv.ParseInt(p.ResourceVersion, 10, 64)
		if err != nil || poolRev <= 0 {
			return
		}
		w.blocks[version] = bk
		w.guards = append(w.guards, backend.TxnOp{Action: backend.TxnCheck, Key: model.ResourceKey{Kind: v3.KindIPPool, Name: p.Name}, Revision: poolRev})
	}
	c.warm.Store(st.host, w)
}

// assignWarm serves args from the host's cached state if it can; done is
// false when the full path must run (nothing cached, the cache cannot
// serve args, or a guard failed).
func (c *Client) assignWarm(ctx context.Context, args AutoAssignArgs) (v4, v6 *Assignments, done bool, err error) {
	v, ok := c.warm.LoadAndDelete(args.Hostname)
	if !ok {
		return nil, nil, false, nil
	}
	w := v.(*warmHost)
	req := request{handle: args.HandleID, attrs: args.Attrs}
	next := map[int]*blockKV{}
	out := map[int]*Assignments{}
	var ops []backend.TxnOp
	h := &handleKV{id: args.HandleID, h: model.IPAMHandle{Block: map[string]int{}}}
	for _, want := range []struct{ version, num int }{{4, args.Num4}, {6, args.Num6}} {
		a := &Assignments{IPVersion: want.version, NumRequested: want.num}
		out[want.version] = a
		if want.num == 0 {
			continue
		}
		bk := w.blocks[want.version]
		if bk == nil || !w.allows(bk.cidr, want.version, args) {
			return nil, nil, false, nil
		}
		nb := &blockKV{cidr: bk.cidr, rev: bk.rev, b: bk.b.Clone()}
		ips := assignFromBlock(nb.b, want.num, req.handle, req.attrs, w.st.res)
		if len(ips) < want.num {
			return nil, nil, false, nil
		}
		op, err := blockOp(nb, false)
		if err != nil {
			return nil, nil, false, nil
		}
		ops = append(ops, op)
		h.add(nb.cidr, len(ips))
		a.IPs = prefixes(ips, nb.cidr.Bits())
		next[want.version] = nb
	}
	if len(ops) == 0 {
		return nil, nil, false, nil
	}
	if args.HandleID != "" {
		op, err := h.op() // revision 0: the handle must not exist yet
		if err != nil {
			return nil, nil, false, nil
		}
		ops = append(ops, op)
	}
	res, err := c.txn(ctx, append(ops, w.guards...)...)
	if isConflict(err) {
		return nil, nil, false, nil
	}
	if err != nil {
		return out[4], out[6], true, err
	}
	for version, nb := range next {
		nb.rev = res.Revision
		w.blocks[version] = nb
		w.st.lastUsed = nb.cidr
	}
	c.hints.Store(args.Hostname, w.st.lastUsed)
	c.warm.Store(args.Hostname, w)
	return out[4], out[6], true, nil
}

// allows reports whether the full path, given the cached state, would
// also pick the block: its pool is one the request may use.
func (w *warmHost) allows(block netip.Prefix, version int, args AutoAssignArgs) bool {
	requested := args.IPv4Pools
	if version == 6 {
		requested = args.IPv6Pools
	}
	use := args.IntendedUse
	if use == "" {
		use = v3.IPPoolAllowedUseWorkload
	}
	allowed, _, err := w.st.choosePools(version, requested, use)
	if err != nil {
		return false
	}
	_, ok := poolFor(allowed, block.Addr())
	return ok
}

// noteConfirmed records that this request saw or made the host's
// affinity for a block confirmed at rev.
func (st *hostState) noteConfirmed(k model.Key, rev int64) {
	if st.confirmed == nil {
		st.confirmed = map[model.Key]int64{}
	}
	st.confirmed[k] = rev
}

// confirmedAffinity returns the host's affinity for block (key and
// revision) if it is known to be confirmed, or nil.
func (st *hostState) confirmedAffinity(block netip.Prefix) *backend.KVPair {
	k := model.BlockAffinityKey{Host: st.host, CIDR: block}
	if rev, ok := st.confirmed[k]; ok {
		return &backend.KVPair{Key: k, Revision: rev}
	}
	for _, kv := range st.affs {
		if kv.Key == k {
			if a, err := decodeAffinity(kv); err == nil && a.state == model.AffinityConfirmed {
				return kv
			}
			return nil
		}
	}
	return nil
}

// forgetWarm drops every cached host state: called by writes of this
// client that change blocks, so that the next request does not spend a
// round trip on a guard bound to fail.
func (c *Client) forgetWarm() { c.warm.Clear() }
