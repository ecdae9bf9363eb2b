package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
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
// never a wrong assignment. The block is guarded by its value as well as
// its revision.

// warmHost is a host's cached state; one request at a time uses it.
type warmHost struct {
	st     *hostState
	blocks map[int]*blockKV // by IP version, as committed
	guards []backend.TxnOp
}

// keepWarm caches st after a request that completed, when every version
// it served came from a single confirmed affine block of the host.
func (c *Client) keepWarm(st *hostState) {
	if c.cache == nil || len(st.used) == 0 {
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
	c.cache.putWarm(st.host, w)
}

// warmPlan is an assignment decided from a host's cached state, to be
// written in one transaction.
type warmPlan struct {
	// from is the cached state it was decided from.
	from *warmHost
	// out are the planned addresses by IP version (4 and 6).
	out map[int]*Assignments
	// next are the blocks, by IP version, as the transaction writes them.
	next map[int]*blockKV
	// ops write the blocks and the handle and guard what the choice
	// rested on; handleAt is the handle's op, -1 without a handle.
	ops      []backend.TxnOp
	handleAt int
}

// planWarm decides args from the host's cached state, reading nothing;
// nil when the full path must run (nothing cached, or the cache cannot
// serve args).
func (c *Client) planWarm(args AutoAssignArgs) *warmPlan {
	w := c.cache.warmOf(args.Hostname)
	if w == nil {
		return nil
	}
	wp := &warmPlan{from: w, out: map[int]*Assignments{}, next: map[int]*blockKV{}, handleAt: -1}
	h := &handleKV{id: args.HandleID, h: model.IPAMHandle{Block: map[string]int{}}}
	for _, want := range []struct{ version, num int }{{4, args.Num4}, {6, args.Num6}} {
		a := &Assignments{IPVersion: want.version, NumRequested: want.num}
		wp.out[want.version] = a
		if want.num == 0 {
			continue
		}
		bk := w.blocks[want.version]
		if bk == nil || !w.allows(bk.cidr, want.version, args) {
			return nil
		}
		nb := &blockKV{cidr: bk.cidr, rev: bk.rev, b: bk.b.Clone()}
		ips := assignFromBlock(nb.b, want.num, args.HandleID, args.Attrs, w.st.res)
		if len(ips) < want.num {
			return nil
		}
		op, err := blockOp(nb, false)
		if err != nil {
			return nil
		}
		// The block must still be the one cached, value and all: a
		// saved state may come from before a restore of etcd, where the
		// same revision could name another value.
		if op.Expect, err = json.Marshal(bk.b); err != nil {
			return nil
		}
		wp.ops = append(wp.ops, op)
		h.add(nb.cidr, len(ips))
		a.IPs = prefixes(ips, nb.cidr.Bits())
		wp.next[want.version] = nb
	}
	if len(wp.ops) == 0 {
		return nil
	}
	if args.HandleID != "" {
		op, err := h.op() // revision 0: the handle must not exist yet
		if err != nil {
			return nil
		}
		wp.handleAt = len(wp.ops)
		wp.ops = append(wp.ops, op)
	}
	wp.ops = append(wp.ops, w.guards...)
	return wp
}

// commitWarm writes a warm plan, with extra in its transaction; done is
// false when the full path must run instead (a guard of the plan failed,
// or the handle exists: with ReuseHandle the full path reads what it
// holds). If only extra's guards failed, the plan is written without
// them. On an error other than a conflict the outcome is unknown, and
// the planned addresses are returned with it, for the caller to release.
func (c *Client) commitWarm(ctx context.Context, args AutoAssignArgs, wp *warmPlan, extra []backend.TxnOp) (_ *Committed, done bool, _ error) {
	res, err := c.txn(ctx, slices.Concat(wp.ops, extra)...)
	if isConflict(err) && len(extra) > 0 && !handleExists(res, wp.handleAt) {
		extra = nil
		res, err = c.txn(ctx, wp.ops...)
	}
	if err != nil {
		// Stale, or its outcome unknown: the cache goes.
		c.cache.dropWarm(args.Hostname, wp.from)
	}
	if isConflict(err) {
		return nil, false, nil
	}
	out := &Committed{V4: wp.out[4], V6: wp.out[6]}
	if err != nil {
		return out, true, err
	}
	out.WithOps, out.Revision = len(extra) > 0, res.Revision
	// A new warmHost, not an update of the old one: SaveWarm and
	// releasedFrom may still be reading it. A newer one (a release by
	// this client meanwhile) is left in place.
	nw := &warmHost{st: wp.from.st, guards: wp.from.guards, blocks: maps.Clone(wp.from.blocks)}
	var last netip.Prefix
	for version, nb := range wp.next {
		nb.rev = res.Revision
		nw.blocks[version] = nb
		last = nb.cidr
	}
	c.cache.setHint(args.Hostname, last)
	c.cache.swapWarm(args.Hostname, wp.from, nw)
	return out, true, nil
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
func (c *Client) forgetWarm() { c.cache.clearWarm() }

// A warm state can outlive its process: SaveWarm encodes a host's cached
// state and LoadWarm gives it to another client, as the CNI plugin does
// through its host-wide lock file, so that a short-lived process also
// assigns in one round trip. The saved state is what the full path read
// (raw, with revisions) and the blocks as committed; the guards are
// rebuilt from it, so a stale save costs a round trip like a stale cache.

// savedKV is a stored key and value at its revision.
type savedKV struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
	Rev   int64           `json:"rev"`
}

type savedWarm struct {
	Host string `json:"host"`
	Rev  int64  `json:"rev"`
	// Read holds the results of the host's reads (see hostReads).
	Read [hostReads][]savedKV `json:"read"`
	// Blocks are the blocks assigned from, by IP version, as committed.
	Blocks map[int]savedKV `json:"blocks"`
	// Confirmed are affinities confirmed after the read (no values).
	Confirmed []savedKV `json:"confirmed,omitempty"`
}

func saveKV(k model.Key, v []byte, rev int64) (savedKV, error) {
	p, err := k.Path()
	if err != nil {
		return savedKV{}, err
	}
	if v != nil && !json.Valid(v) {
		return savedKV{}, fmt.Errorf("value of %s is not JSON", p)
	}
	return savedKV{Key: p, Value: v, Rev: rev}, nil
}

func (s savedKV) kv() (*backend.KVPair, error) {
	k := model.ParseKey(s.Key)
	if k == nil {
		return nil, fmt.Errorf("unknown key %q", s.Key)
	}
	return &backend.KVPair{Key: k, Value: []byte(s.Value), Revision: s.Rev}, nil
}

// SaveWarm returns host's cached state, encoded for LoadWarm, or nil when
// there is none (always without a Cache).
func (c *Client) SaveWarm(host string) []byte {
	w := c.cache.warmOf(host)
	if w == nil || len(w.st.read) != hostReads {
		return nil
	}
	s := savedWarm{Host: host, Rev: w.st.readRev, Blocks: map[int]savedKV{}}
	for i, kvs := range w.st.read {
		for _, kv := range kvs {
			r, err := saveKV(kv.Key, kv.Value, kv.Revision)
			if err != nil {
				return nil
			}
			s.Read[i] = append(s.Read[i], r)
		}
	}
	for version, bk := range w.blocks {
		b, err := json.Marshal(bk.b)
		if err != nil {
			return nil
		}
		if s.Blocks[version], err = saveKV(model.BlockKey{CIDR: bk.cidr}, b, bk.rev); err != nil {
			return nil
		}
	}
	for k, rev := range w.st.confirmed {
		r, err := saveKV(k, nil, rev)
		if err != nil {
			return nil
		}
		s.Confirmed = append(s.Confirmed, r)
	}
	out, err := json.Marshal(s)
	if err != nil {
		return nil
	}
	return out
}

// LoadWarm caches a state SaveWarm encoded, replacing the host's. It fails
// on data it cannot decode or a state the warm path could not use, and
// without a Cache.
func (c *Client) LoadWarm(data []byte) error {
	if c.cache == nil {
		return errors.New("loading saved IPAM state: the client has no Cache (ipam.Options.Cache)")
	}
	var s savedWarm
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("decoding saved IPAM state: %w", err)
	}
	if err := validHost(s.Host); err != nil {
		return err
	}
	res := make([][]*backend.KVPair, hostReads)
	for i, rs := range s.Read {
		for _, r := range rs {
			kv, err := r.kv()
			if err != nil {
				return err
			}
			res[i] = append(res[i], kv)
		}
	}
	st, err := c.newHostState(s.Host, res, s.Rev)
	if err != nil {
		return err
	}
	for version, r := range s.Blocks {
		kv, err := r.kv()
		if err != nil {
			return err
		}
		bk, err := decodeBlock(kv)
		if err != nil {
			return err
		}
		st.used[version] = []*blockKV{bk}
		st.lastUsed = bk.cidr
	}
	for _, r := range s.Confirmed {
		k := model.ParseKey(r.Key)
		if k == nil {
			return fmt.Errorf("unknown key %q", r.Key)
		}
		st.noteConfirmed(k, r.Rev)
	}
	c.cache.dropWarm(s.Host, nil)
	c.keepWarm(st)
	if c.cache.warmOf(s.Host) == nil {
		return errors.New("saved IPAM state cannot serve an assignment")
	}
	c.remember(st)
	return nil
}

// releasedFrom updates the cached states that hold block cidr after this
// client released addresses in it: bk as committed at rev, or nil when
// the block is gone. Releases by others still fail the block's guard.
func (c *Client) releasedFrom(cidr netip.Prefix, bk *blockKV, rev int64) {
	c.cache.eachWarm(func(host string, w *warmHost) {
		for version, wb := range w.blocks {
			if wb.cidr != cidr {
				continue
			}
			if bk == nil {
				c.cache.dropWarm(host, w)
				return
			}
			nw := &warmHost{st: w.st, guards: w.guards, blocks: maps.Clone(w.blocks)}
			nw.blocks[version] = &blockKV{cidr: cidr, rev: rev, b: bk.b.Clone()}
			c.cache.swapWarm(host, w, nw)
			return
		}
	})
}
