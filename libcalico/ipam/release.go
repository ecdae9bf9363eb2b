package ipam

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Block sizes Calico pools may have; an address's block is found by
// reading the key of each size at once, so no pool or block list is needed
// (it works for blocks of deleted pools too).
const (
	minBlockBitsV4, maxBlockBitsV4 = 20, 32
	minBlockBitsV6, maxBlockBitsV6 = 116, 128
)

func blockCandidates(a netip.Addr) []netip.Prefix {
	lo, hi := minBlockBitsV4, maxBlockBitsV4
	if a.Is6() {
		lo, hi = minBlockBitsV6, maxBlockBitsV6
	}
	out := make([]netip.Prefix, 0, hi-lo+1)
	for bits := lo; bits <= hi; bits++ {
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out
}

// findBlocks reads, in one round trip per MaxTxnOps candidates, the blocks
// that may hold addrs.
func (c *Client) findBlocks(ctx context.Context, addrs []netip.Addr) (map[netip.Prefix]*blockKV, error) {
	seen := map[netip.Prefix]bool{}
	var ops []backend.ReadOp
	for _, a := range addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("invalid address %v", a)
		}
		for _, p := range blockCandidates(a.Unmap()) {
			if !seen[p] {
				seen[p] = true
				ops = append(ops, backend.ReadOp{Key: model.BlockKey{CIDR: p}})
			}
		}
	}
	res, err := c.read(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("reading blocks: %w", err)
	}
	out := map[netip.Prefix]*blockKV{}
	for _, r := range res {
		if kv := one(r); kv != nil {
			bk, err := decodeBlock(kv)
			if err != nil {
				return nil, err
			}
			out[bk.cidr] = bk
		}
	}
	return out, nil
}

// blockOf picks the block holding a: the one where it is allocated, else
// any that contains it.
func blockOf(blocks map[netip.Prefix]*blockKV, a netip.Addr) *blockKV {
	var fallback *blockKV
	for _, p := range blockCandidates(a) {
		bk := blocks[p]
		if bk == nil {
			continue
		}
		if ord, err := bk.b.OrdinalOf(a); err == nil && bk.b.Allocations[ord] != nil {
			return bk
		}
		fallback = bk
	}
	return fallback
}

// ReleaseIPs frees the given addresses and returns those that were not
// assigned. Addresses of one block are freed in one transaction that also
// updates their handles; a block left empty and without affinity is
// deleted. A stale Handle or SequenceNumber fails the release of its block.
func (c *Client) ReleaseIPs(ctx context.Context, opts ...ReleaseOptions) ([]netip.Addr, error) {
	c.forgetWarm()
	addrs := make([]netip.Addr, len(opts))
	for i := range opts {
		opts[i].Address = opts[i].Address.Unmap()
		opts[i].Handle = sanitizeHandle(opts[i].Handle)
		addrs[i] = opts[i].Address
	}
	blocks, err := c.findBlocks(ctx, addrs)
	if err != nil {
		return nil, err
	}
	var notAssigned []netip.Addr
	byBlock := map[netip.Prefix][]ReleaseOptions{}
	for _, o := range opts {
		bk := blockOf(blocks, o.Address)
		if bk == nil {
			notAssigned = append(notAssigned, o.Address)
			continue
		}
		byBlock[bk.cidr] = append(byBlock[bk.cidr], o)
	}
	for _, cidr := range slices.SortedFunc(maps.Keys(byBlock), netip.Prefix.Compare) {
		na, err := c.releaseInBlock(ctx, blocks[cidr], byBlock[cidr])
		notAssigned = append(notAssigned, na...)
		if err != nil {
			return notAssigned, err
		}
	}
	return notAssigned, nil
}

func (c *Client) releaseInBlock(ctx context.Context, bk *blockKV, opts []ReleaseOptions) ([]netip.Addr, error) {
	handles := map[string]*handleKV{}
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		slept, err := c.backoff(ctx, attempt)
		if err != nil {
			return nil, err
		}
		if slept {
			clear(handles)
			fresh, _, err := c.fetchBlockHandle(ctx, bk.cidr, "")
			if err != nil {
				return nil, err
			}
			if fresh == nil {
				bk.b = nil
			} else {
				*bk = *fresh
			}
		}
		if bk.b == nil {
			all := make([]netip.Addr, len(opts))
			for i, o := range opts {
				all[i] = o.Address
			}
			return all, nil
		}
		na, perHandle, err := releaseFromBlock(bk.b, opts)
		if err != nil {
			return nil, fmt.Errorf("releasing from block %s: %w: %w", bk.cidr, err, &cerrors.Conflict{Key: model.BlockKey{CIDR: bk.cidr}.String()})
		}
		if len(na) == len(opts) {
			return na, nil
		}
		retry, err := c.commitRelease(ctx, bk, handles, perHandle)
		if err != nil {
			return nil, err
		}
		if retry {
			continue
		}
		return na, nil
	}
	return nil, fmt.Errorf("releasing from block %s: %w", bk.cidr, ErrMaxAttempts)
}

// loadHandles reads, in one round trip, the handles of perHandle not yet
// in handles.
func (c *Client) loadHandles(ctx context.Context, handles map[string]*handleKV, perHandle map[string]int) error {
	var ids []string
	var ops []backend.ReadOp
	for id := range perHandle {
		if handles[id] == nil {
			ids = append(ids, id)
			ops = append(ops, backend.ReadOp{Key: model.HandleKey{HandleID: id}})
		}
	}
	if len(ops) == 0 {
		return nil
	}
	res, err := c.read(ctx, ops)
	if err != nil {
		return fmt.Errorf("reading handles: %w", err)
	}
	for i, id := range ids {
		h, err := decodeHandle(id, one(res[i]))
		if err != nil {
			return err
		}
		handles[id] = h
	}
	return nil
}

// releaseOps builds the transaction of a release: the block (deleted when
// empty with no affinity) and each handle, decremented. A handle that has
// no record of the block (left inconsistent by a crash) is left alone.
func releaseOps(bk *blockKV, handles map[string]*handleKV, perHandle map[string]int) ([]backend.TxnOp, []string, error) {
	op, err := blockOp(bk, blockEmpty(bk.b) && bk.b.Affinity == nil)
	if err != nil {
		return nil, nil, err
	}
	ops := []backend.TxnOp{op}
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(perHandle)) {
		h := handles[id]
		if h.rev == 0 || h.h.Block[bk.cidr.String()] == 0 {
			continue
		}
		h = h.clone()
		h.add(bk.cidr, -perHandle[id])
		op, err := h.op()
		if err != nil {
			return nil, nil, err
		}
		ops = append(ops, op)
		ids = append(ids, id)
	}
	return ops, ids, nil
}

func refreshRelease(bk *blockKV, handles map[string]*handleKV, ids []string, res *backend.TxnResult) error {
	if cur := res.Current[0]; cur == nil {
		bk.b = nil
	} else {
		nb, err := decodeBlock(cur)
		if err != nil {
			return err
		}
		*bk = *nb
	}
	for i, id := range ids {
		h, err := decodeHandle(id, res.Current[i+1])
		if err != nil {
			return err
		}
		handles[id] = h
	}
	return nil
}

// ReleaseByHandle frees every address assigned with handleID and deletes
// the handle. It returns an error matching cerrors.ErrNotFound when the
// handle does not exist (so a CNI DEL can treat that as done). Cached
// warm states take the blocks it commits, so the host's next assignment
// still takes one round trip.
func (c *Client) ReleaseByHandle(ctx context.Context, handleID string) error {
	handleID = sanitizeHandle(handleID)
	kv, err := c.getKV(ctx, model.HandleKey{HandleID: handleID})
	if err != nil {
		return fmt.Errorf("reading handle %s: %w", handleID, err)
	}
	if kv == nil {
		return &cerrors.NotFound{Key: model.HandleKey{HandleID: handleID}.String()}
	}
	h, err := decodeHandle(handleID, kv)
	if err != nil {
		return err
	}
	cidrs, blocks, err := c.handleBlocks(ctx, h)
	if err != nil {
		return err
	}
	for i, cidr := range cidrs {
		if h, err = c.releaseHandleInBlock(ctx, h, cidr, blocks[i]); err != nil {
			return err
		}
	}
	if len(cidrs) == 0 && h.rev != 0 {
		op, err := h.op()
		if err != nil {
			return err
		}
		if _, err := c.txn(ctx, op); err != nil && !isConflict(err) {
			return fmt.Errorf("deleting empty handle %s: %w", handleID, err)
		}
	}
	return nil
}

// handleBlocks reads, in one round trip, the blocks a handle names.
func (c *Client) handleBlocks(ctx context.Context, h *handleKV) ([]netip.Prefix, []*blockKV, error) {
	var cidrs []netip.Prefix
	var ops []backend.ReadOp
	for _, s := range slices.Sorted(maps.Keys(h.h.Block)) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, nil, fmt.Errorf("handle %s names invalid block %q: %w", h.id, s, err)
		}
		cidrs = append(cidrs, p.Masked())
		ops = append(ops, backend.ReadOp{Key: model.BlockKey{CIDR: p.Masked()}})
	}
	res, err := c.read(ctx, ops)
	if err != nil {
		return nil, nil, fmt.Errorf("reading blocks of handle %s: %w", h.id, err)
	}
	blocks := make([]*blockKV, len(cidrs))
	for i := range cidrs {
		if kv := one(res[i]); kv != nil {
			if blocks[i], err = decodeBlock(kv); err != nil {
				return nil, nil, err
			}
		}
	}
	return cidrs, blocks, nil
}

// releaseHandleInBlock frees the handle's addresses in one block and drops
// the block from the handle, in one transaction; it returns the handle as
// stored afterwards.
func (c *Client) releaseHandleInBlock(ctx context.Context, h *handleKV, cidr netip.Prefix, bk *blockKV) (*handleKV, error) {
	blockKey := model.BlockKey{CIDR: cidr}
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		slept, err := c.backoff(ctx, attempt)
		if err != nil {
			return nil, err
		}
		if slept {
			if bk, h, err = c.fetchBlockHandle(ctx, cidr, h.id); err != nil {
				return nil, err
			}
		}
		nh := h.clone()
		delete(nh.h.Block, cidr.String())
		hop, err := nh.op()
		if err != nil {
			return nil, err
		}
		ops := []backend.TxnOp{{Action: backend.TxnCheck, Key: blockKey}}
		if bk != nil {
			ops[0] = backend.TxnOp{Action: backend.TxnCheck, Key: blockKey, Revision: bk.rev}
			if len(releaseHandleFromBlock(bk.b, h.id)) > 0 {
				if ops[0], err = blockOp(bk, blockEmpty(bk.b) && bk.b.Affinity == nil); err != nil {
					return nil, err
				}
			}
		}
		ops = append(ops, hop)
		res, err := c.txn(ctx, ops...)
		if isConflict(err) {
			bk = nil
			if cur := res.Current[0]; cur != nil {
				if bk, err = decodeBlock(cur); err != nil {
					return nil, err
				}
			}
			if h, err = decodeHandle(h.id, res.Current[1]); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("releasing handle %s in block %s: %w", h.id, cidr, err)
		}
		switch ops[0].Action {
		case backend.TxnPut:
			c.releasedFrom(cidr, bk, res.Revision)
		case backend.TxnDelete:
			c.releasedFrom(cidr, nil, 0)
		default: // the block was absent, or unchanged
			if bk == nil {
				c.releasedFrom(cidr, nil, 0)
			}
		}
		if len(nh.h.Block) == 0 {
			nh.rev = 0
		} else {
			nh.rev = res.Revision
		}
		return nh, nil
	}
	return nil, fmt.Errorf("releasing handle %s: %w", h.id, ErrMaxAttempts)
}

// IPsByHandle returns the addresses assigned with handleID.
func (c *Client) IPsByHandle(ctx context.Context, handleID string) ([]netip.Addr, error) {
	kv, err := c.getKV(ctx, model.HandleKey{HandleID: handleID})
	if err != nil {
		return nil, fmt.Errorf("reading handle %s: %w", handleID, err)
	}
	if kv == nil {
		return nil, &cerrors.NotFound{Key: model.HandleKey{HandleID: handleID}.String()}
	}
	h, err := decodeHandle(handleID, kv)
	if err != nil {
		return nil, err
	}
	_, blocks, err := c.handleBlocks(ctx, h)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, bk := range blocks {
		if bk == nil {
			continue
		}
		for ord := range bk.b.Allocations {
			if bk.b.Allocations[ord] != nil && handleOf(bk.b, ord) == handleID {
				out = append(out, bk.b.AddrAt(ord))
			}
		}
	}
	return out, nil
}

// GetAssignmentAttributes returns the handle ("" for none) and attributes
// stored with an assigned address; cerrors.ErrNotFound if unassigned.
func (c *Client) GetAssignmentAttributes(ctx context.Context, addr netip.Addr) (string, map[string]string, error) {
	addr = addr.Unmap()
	blocks, err := c.findBlocks(ctx, []netip.Addr{addr})
	if err != nil {
		return "", nil, err
	}
	bk := blockOf(blocks, addr)
	if bk == nil {
		return "", nil, fmt.Errorf("address %s is in no block: %w", addr, &cerrors.NotFound{Key: addr.String()})
	}
	a, ord, err := attributesAt(bk.b, addr)
	if err != nil {
		return "", nil, err
	}
	return handleOf(bk.b, ord), maps.Clone(a.Secondary), nil
}

// commitRelease writes a block with releases applied and the handles they
// affect, in one transaction guarded by their revisions. On a conflict it
// refreshes bk and handles from the transaction's answer and reports
// retry, so the caller can decide again from the current values.
func (c *Client) commitRelease(ctx context.Context, bk *blockKV, handles map[string]*handleKV, perHandle map[string]int) (retry bool, err error) {
	if err := c.loadHandles(ctx, handles, perHandle); err != nil {
		return false, err
	}
	ops, ids, err := releaseOps(bk, handles, perHandle)
	if err != nil {
		return false, err
	}
	res, err := c.txn(ctx, ops...)
	if isConflict(err) {
		return true, refreshRelease(bk, handles, ids, res)
	}
	if err != nil {
		return false, fmt.Errorf("writing block %s: %w", bk.cidr, err)
	}
	return false, nil
}
