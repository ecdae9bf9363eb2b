package ipam

import (
	"context"
	"errors"
	"net/netip"
	"slices"

	"github.com/calico-etcd/calico/libcalico/backend"
)

// Idempotent assignment (AutoAssignArgs.ReuseHandle): a request whose
// handle already holds addresses (a CNI ADD retried after its process was
// killed) gets those back, and only what they lack is assigned. The
// common case pays nothing for it: the warm path's transaction already
// requires the handle not to exist, and its failure says when it does
// (the transaction's current values); the full path already reads the
// handle with the host's state, and only a handle that exists costs one
// more read, of the blocks it names.

// errHandleMoved: another writer changed the handle while a ReuseHandle
// request was assigning; AutoAssign decides again from what it now holds.
var errHandleMoved = errors.New("handle changed by another request")

// heldBy returns the addresses a stored handle holds, by IP version, in
// address order, each with its block's prefix length.
func (c *Client) heldBy(ctx context.Context, h *handleKV) (map[int][]netip.Prefix, error) {
	_, blocks, err := c.handleBlocks(ctx, h)
	if err != nil {
		return nil, err
	}
	out := map[int][]netip.Prefix{}
	for _, bk := range blocks {
		if bk == nil {
			continue
		}
		for ord := range bk.b.Allocations {
			if bk.b.Allocations[ord] == nil || handleOf(bk.b, ord) != sanitizeHandle(h.id) {
				continue
			}
			a := bk.b.AddrAt(ord)
			v := versionOf(a)
			out[v] = append(out[v], netip.PrefixFrom(a, bk.cidr.Bits()))
		}
	}
	for _, ps := range out {
		slices.SortFunc(ps, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	}
	return out, nil
}

// handleExists reports whether a failed transaction found the handle of
// op index i stored.
func handleExists(res *backend.TxnResult, i int) bool {
	return res != nil && i >= 0 && i < len(res.Current) && res.Current[i] != nil
}
