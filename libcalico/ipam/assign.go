package ipam

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

// AutoAssign assigns args.Num4 IPv4 and args.Num6 IPv6 addresses to
// args.Hostname: from the host's affine blocks first, then from blocks it
// claims, then (without strict affinity) borrowed from other hosts'
// blocks. It returns what it assigned per version; when it could not
// assign everything it also returns an error (PartialFulfillmentError, or
// what stopped it) and leaves what it did assign in place, for the caller
// to keep or release (ReleaseByHandle).
//
// In the steady state (the host has a block with room) an assignment is
// three round trips: one read of config, pools, reservations, node,
// affinities and handle; one read of the affine blocks; one transaction
// that writes the block and its handle together. From a host's cached
// state it is one (warm.go). AutoAssign is Plan, then Commit with no ops
// of the caller's.
func (c *Client) AutoAssign(ctx context.Context, args AutoAssignArgs) (*Assignments, *Assignments, error) {
	p, err := c.Plan(ctx, args)
	if err != nil {
		return nil, nil, err
	}
	res, err := p.Commit(ctx)
	return res.V4, res.V6, err
}

// assignFull is AutoAssign without a cached state to start from.
func (c *Client) assignFull(ctx context.Context, args AutoAssignArgs) (*Assignments, *Assignments, error) {
	for attempt := 1; ; attempt++ {
		v4, v6, err := c.autoAssignFull(ctx, args)
		// With ReuseHandle, another writer of the handle (a concurrent
		// request for it) means deciding again from what it now holds.
		if !errors.Is(err, errHandleMoved) || attempt >= c.opts.MaxAttempts {
			return v4, v6, err
		}
	}
}

// autoAssignFull is one attempt of the full path: read the host's state
// (and with ReuseHandle what the handle holds), then assign.
func (c *Client) autoAssignFull(ctx context.Context, args AutoAssignArgs) (*Assignments, *Assignments, error) {
	st, err := c.loadHost(ctx, args.Hostname, args.HandleID)
	if err != nil {
		return nil, nil, err
	}
	var held map[int][]netip.Prefix
	if args.ReuseHandle && st.handle != nil && st.handle.rev != 0 {
		if held, err = c.heldBy(ctx, st.handle); err != nil {
			return nil, nil, err
		}
	}
	log := c.log.WithField("host", args.Hostname)
	if args.HandleID != "" {
		log = log.WithField("handle", args.HandleID)
	}
	defer c.remember(st)
	v4, err := c.autoAssign(ctx, st, args, 4, args.Num4, held[4])
	if err != nil {
		log.WithError(err).Info("IPv4 assignment incomplete")
		return v4, nil, err
	}
	v6, err := c.autoAssign(ctx, st, args, 6, args.Num6, held[6])
	if err != nil {
		log.WithError(err).Info("IPv6 assignment incomplete")
		return v4, v6, err
	}
	if len(held) > 0 {
		log.WithFields(logrus.Fields{"v4": v4.IPs, "v6": v6.IPs}).Info("handle already held addresses; reusing them")
	}
	c.keepWarm(st)
	return v4, v6, nil
}

// autoAssign assigns num addresses of one version; held (ReuseHandle) are
// the handle's addresses of that version, which count first.
func (c *Client) autoAssign(ctx context.Context, st *hostState, args AutoAssignArgs, version, num int, held []netip.Prefix) (*Assignments, error) {
	a := &Assignments{IPVersion: version, NumRequested: num}
	if num == 0 {
		return a, nil
	}
	a.IPs = slices.Clone(held[:min(len(held), num)])
	a.Held = len(a.IPs)
	if len(a.IPs) == num {
		return a, nil
	}
	requested := args.IPv4Pools
	if version == 6 {
		requested = args.IPv6Pools
	}
	allowed, _, err := st.choosePools(version, requested, args.IntendedUse)
	if err != nil {
		return a, err
	}
	usable, unselected := st.affineBlocks(c, version, allowed)
	for _, cidr := range unselected {
		if _, err := c.releaseAffinityRetry(ctx, st.host, cidr, releaseOpts{requireEmpty: true}); err != nil {
			c.log.WithError(err).WithField("block", cidr).Debug("kept affinity of block whose pool no longer selects the node")
		}
	}
	maxBlocks := st.cfg.MaxBlocksPerHost
	if args.MaxBlocksPerHost > 0 && (maxBlocks == 0 || args.MaxBlocksPerHost < maxBlocks) {
		maxBlocks = args.MaxBlocksPerHost
	}
	req := request{handle: args.HandleID, attrs: args.Attrs, reuse: args.ReuseHandle}

	// The host's own blocks, the one it used last first (read with the
	// state); the others are read, all in one round trip, only if needed.
	slices.SortStableFunc(usable, func(x, y affinity) int {
		return cmp.Compare(boolInt(x.cidr != st.hint), boolInt(y.cidr != st.hint))
	})
	for _, u := range usable {
		if len(a.IPs) == num {
			break
		}
		if _, ok := st.prefetched[u.cidr]; !ok {
			if err := c.prefetch(ctx, st, usable); err != nil {
				return a, err
			}
		}
		kv := st.prefetched[u.cidr]
		if kv != nil && looksFull(kv.Value) && bytes.Contains(u.kv.Value, []byte(`"state":"confirmed"`)) {
			continue
		}
		u, err := decodeAffinity(u.kv)
		if err != nil {
			c.log.WithError(err).Warn("skipping unreadable block affinity")
			continue
		}
		bk, err := c.blockFromAffinity(ctx, st, u, kv)
		if err != nil || bk == nil {
			if err != nil {
				c.log.WithError(err).WithField("block", u.cidr).Info("skipping affine block")
			}
			continue
		}
		if err := c.fill(ctx, st, a, bk, req, st.cfg.StrictAffinity); err != nil {
			return a, err
		}
	}

	// New blocks.
	owned := len(usable)
	for len(a.IPs) < num {
		if maxBlocks > 0 && owned >= maxBlocks {
			a.addMsg(fmt.Sprintf("need to allocate an IPAM block but could not - limit of %d blocks reached for this node", maxBlocks))
			return a, fmt.Errorf("%w: %w", ErrBlockLimit, a.PartialFulfillmentError())
		}
		if !st.cfg.AutoAllocateBlocks {
			break
		}
		bk, err := c.claimBlock(ctx, st, allowed)
		if errors.Is(err, errNoFreeBlocks) {
			if st.cfg.StrictAffinity {
				a.addMsg(ErrStrictAffinity.Error())
			}
			break
		}
		if err != nil {
			return a, err
		}
		owned++
		if err := c.fill(ctx, st, a, bk, req, st.cfg.StrictAffinity); err != nil {
			return a, err
		}
	}

	// Borrow from other hosts' blocks.
	if len(a.IPs) < num && !st.cfg.StrictAffinity {
		if err := c.borrow(ctx, st, a, allowed, req); err != nil {
			return a, err
		}
	}
	return a, a.PartialFulfillmentError()
}

// prefetch reads, in one round trip, the affine blocks not read yet.
func (c *Client) prefetch(ctx context.Context, st *hostState, usable []affinity) error {
	var ops []backend.ReadOp
	for _, u := range usable {
		if _, ok := st.prefetched[u.cidr]; !ok {
			ops = append(ops, backend.ReadOp{Key: model.BlockKey{CIDR: u.cidr}})
		}
	}
	blocks, err := c.readStale(ctx, ops)
	if err != nil {
		return fmt.Errorf("reading affine blocks: %w", err)
	}
	for i, op := range ops {
		st.prefetched[op.Key.(model.BlockKey).CIDR] = one(blocks[i])
	}
	return nil
}

// looksFull spots a block with no free ordinal without decoding it (as
// Calico and this package write it: compact JSON).
func looksFull(v []byte) bool { return bytes.Contains(v, []byte(`"unallocated":[]`)) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// request is what an assignment stores with each address.
type request struct {
	handle string
	attrs  map[string]string
	// reuse (AutoAssignArgs.ReuseHandle): the assignment was decided on
	// what the handle held; if another writer changes the handle, the
	// write gives up with errHandleMoved.
	reuse bool
}

// fill assigns what a still lacks from bk.
func (c *Client) fill(ctx context.Context, st *hostState, a *Assignments, bk *blockKV, req request, affinityCheck bool) error {
	ips, err := c.assignFrom(ctx, st, bk, a.NumRequested-len(a.IPs), req, affinityCheck)
	if err != nil {
		return err
	}
	if len(ips) > 0 {
		st.lastUsed = bk.cidr
		st.used[a.IPVersion] = append(st.used[a.IPVersion], bk)
	}
	a.IPs = append(a.IPs, prefixes(ips, bk.cidr.Bits())...)
	return nil
}

// assignFrom takes up to num addresses from bk and writes the block and
// the request's handle in one transaction, retrying on revision conflicts
// with the values the failed transaction returned. It returns nothing
// when the block is full or gone.
func (c *Client) assignFrom(ctx context.Context, st *hostState, bk *blockKV, num int, req request, affinityCheck bool) ([]netip.Addr, error) {
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		slept, err := c.backoff(ctx, attempt)
		if err != nil {
			return nil, err
		}
		if slept {
			fresh, h, err := c.fetchBlockHandle(ctx, bk.cidr, req.handle)
			if err != nil {
				return nil, err
			}
			if fresh == nil {
				return nil, nil
			}
			*bk = *fresh
			if h != nil {
				if req.reuse && h.rev != st.handle.rev {
					return nil, errHandleMoved
				}
				st.handle = h
			}
		}
		if affinityCheck && bk.b.Affinity != nil && *bk.b.Affinity != affinityOf(st.host) {
			return nil, nil
		}
		ips := assignFromBlock(bk.b, num, req.handle, req.attrs, st.res)
		if len(ips) == 0 {
			return nil, nil
		}
		ops := make([]backend.TxnOp, 1, 2)
		if ops[0], err = blockOp(bk, false); err != nil {
			return nil, err
		}
		var h *handleKV
		if req.handle != "" {
			h = st.handle.clone()
			h.add(bk.cidr, len(ips))
			op, err := h.op()
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
		}
		res, err := c.txn(ctx, ops...)
		if isConflict(err) {
			if err := c.refresh(st, bk, h != nil, res); err != nil {
				return nil, err
			}
			if req.reuse && h != nil && st.handle.rev != h.rev {
				return nil, errHandleMoved
			}
			if bk.b == nil {
				return nil, nil
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("writing block %s: %w", bk.cidr, err)
		}
		bk.rev = res.Revision
		if h != nil {
			h.rev = res.Revision
			st.handle = h
		}
		return ips, nil
	}
	return nil, fmt.Errorf("assigning from block %s: %w", bk.cidr, ErrMaxAttempts)
}

// refresh loads the block and handle a failed transaction returned; bk.b
// becomes nil when the block is gone.
func (c *Client) refresh(st *hostState, bk *blockKV, withHandle bool, res *backend.TxnResult) error {
	if res == nil || len(res.Current) == 0 {
		return errors.New("conflict without current values")
	}
	if cur := res.Current[0]; cur == nil {
		bk.b = nil
	} else {
		nb, err := decodeBlock(cur)
		if err != nil {
			return err
		}
		*bk = *nb
	}
	if withHandle {
		h, err := decodeHandle(st.handle.id, res.Current[1])
		if err != nil {
			return err
		}
		st.handle = h
	}
	return nil
}

// borrow assigns what a still lacks from blocks of the allowed pools that
// are not the host's, trying them in random order.
func (c *Client) borrow(ctx context.Context, st *hostState, a *Assignments, pools []pool, req request) error {
	var exhausted []string
	for _, p := range pools {
		if len(a.IPs) == a.NumRequested {
			break
		}
		blocks, err := c.scanPool(ctx, st, p)
		if err != nil {
			return err
		}
		for _, i := range st.rnd.Perm(len(blocks)) {
			if len(a.IPs) == a.NumRequested {
				break
			}
			bk := blocks[i]
			if bk.b == nil || freeCount(bk.b, st.res) == 0 {
				continue
			}
			if err := c.fill(ctx, st, a, bk, req, false); err != nil {
				return err
			}
		}
		if len(a.IPs) < a.NumRequested {
			exhausted = append(exhausted, p.Spec.CIDR)
		}
	}
	if len(exhausted) > 0 {
		a.addMsg(fmt.Sprintf("no IPs available in pools: %v", exhausted))
	}
	return nil
}

// AssignIP assigns one given address to args.Hostname, claiming its block
// if nobody has. It fails if the address is taken, outside every enabled
// pool, or (with strict affinity) in another host's block.
func (c *Client) AssignIP(ctx context.Context, args AssignIPArgs) error {
	c.forgetWarm()
	st, err := c.loadHost(ctx, args.Hostname, args.HandleID)
	if err != nil {
		return err
	}
	var enabled []pool
	for _, p := range st.pools {
		if !p.Spec.Disabled {
			enabled = append(enabled, p)
		}
	}
	p, ok := poolFor(enabled, args.IP)
	if !ok {
		return fmt.Errorf("assigning %s: %w", args.IP, ErrNotInPool)
	}
	cidr := p.blockFor(args.IP)
	req := request{handle: args.HandleID, attrs: args.Attrs}
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		if _, err := c.backoff(ctx, attempt); err != nil {
			return err
		}
		bk, h, err := c.fetchBlockHandle(ctx, cidr, req.handle)
		if err != nil {
			return err
		}
		if h != nil {
			st.handle = h
		}
		if bk == nil {
			if bk, err = c.claimCIDR(ctx, st, cidr, nil); err != nil {
				if errors.Is(err, errClaimConflict) || isConflict(err) {
					continue
				}
				return err
			}
		}
		if st.cfg.StrictAffinity && (bk.b.Affinity == nil || *bk.b.Affinity != affinityOf(st.host)) {
			return fmt.Errorf("assigning %s: block %s is not affine to %s and strict affinity is enabled", args.IP, cidr, st.host)
		}
		if err := assignAddr(bk.b, args.IP, req.handle, req.attrs); err != nil {
			return err
		}
		ops := make([]backend.TxnOp, 1, 2)
		if ops[0], err = blockOp(bk, false); err != nil {
			return err
		}
		if req.handle != "" {
			h = st.handle.clone()
			h.add(cidr, 1)
			op, err := h.op()
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
		_, err = c.txn(ctx, ops...)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("writing block %s: %w", cidr, err)
		}
		return nil
	}
	return fmt.Errorf("assigning %s: %w", args.IP, ErrMaxAttempts)
}
