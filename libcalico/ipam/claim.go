package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

var (
	// errNoFreeBlocks: no pool has a block to claim or reclaim.
	errNoFreeBlocks = errors.New("no free blocks")
	// errClaimConflict: another host holds the block.
	errClaimConflict = errors.New("block is claimed by another host")
)

// Probing parameters: each probe round reads probeBatch candidate block
// keys (keys only) in one round trip, the first probeRun of them from the
// host's seeded start.
const (
	probeBatch  = 32
	probeRun    = 8
	probeRounds = 2
	// maxEnumerate bounds the blocks of a pool we list one by one once
	// probing failed; bigger pools that defeat random probing are full.
	maxEnumerate = 1 << 20
)

// claimBlock claims a block for the host from the first of pools that has
// one: by random probing of candidate keys (cost independent of how many
// blocks exist), then, if the pool looks full, by reading the pool's
// blocks to find an unclaimed one, a block of ours without an affinity, or
// another host's empty block old enough to reclaim.
func (c *Client) claimBlock(ctx context.Context, st *hostState, pools []pool) (*blockKV, error) {
	for _, p := range pools {
		tried := map[netip.Prefix]bool{}
		rounds := probeRounds
		if p.numBlocks() <= probeBatch {
			rounds = 1
		}
		for round := 0; round < rounds; round++ {
			var cands []netip.Prefix
			for _, i := range p.candidates(st.host, probeBatch, probeRun, st.rnd) {
				cidr := p.blockAt(i)
				if !tried[cidr] && !st.res.coversAll(cidr) {
					cands = append(cands, cidr)
				}
			}
			ops := make([]backend.ReadOp, len(cands))
			for i, cidr := range cands {
				ops[i] = backend.ReadOp{Key: model.BlockKey{CIDR: cidr}, KeysOnly: true}
			}
			res, err := c.readStale(ctx, ops)
			if err != nil {
				return nil, fmt.Errorf("probing pool %s for a free block: %w", p.Spec.CIDR, err)
			}
			for i, cidr := range cands {
				if len(res[i]) > 0 {
					continue
				}
				tried[cidr] = true
				bk, err := c.claimCIDR(ctx, st, cidr, nil)
				if err == nil {
					return bk, nil
				}
				if !errors.Is(err, errClaimConflict) {
					return nil, err
				}
			}
		}
		bk, err := c.claimFromScan(ctx, st, p, tried)
		if !errors.Is(err, errNoFreeBlocks) {
			return bk, err
		}
	}
	return nil, errNoFreeBlocks
}

// claimFromScan reads every block of p and claims, in Calico's order, an
// unclaimed block, a block affine to us with room, or an empty block of
// another host claimed at least ReclaimAge ago.
func (c *Client) claimFromScan(ctx context.Context, st *hostState, p pool, tried map[netip.Prefix]bool) (*blockKV, error) {
	blocks, err := c.scanPool(ctx, st, p)
	if err != nil {
		return nil, err
	}
	exists := make(map[netip.Prefix]*blockKV, len(blocks))
	for _, bk := range blocks {
		exists[bk.cidr] = bk
	}
	claim := func(cidr netip.Prefix) (*blockKV, error) {
		tried[cidr] = true
		delete(st.scans, p.cidr)
		bk, err := c.claimCIDR(ctx, st, cidr, nil)
		if errors.Is(err, errClaimConflict) {
			return nil, nil
		}
		return bk, err
	}
	if n := p.numBlocks(); n <= maxEnumerate {
		start := hostSeed(st.host) % n
		for i := range n {
			cidr := p.blockAt((start + i) % n)
			if exists[cidr] != nil || tried[cidr] || st.res.coversAll(cidr) {
				continue
			}
			if bk, err := claim(cidr); bk != nil || err != nil {
				return bk, err
			}
		}
	}
	mine := affinityOf(st.host)
	for _, bk := range blocks {
		if bk.b.Affinity != nil && *bk.b.Affinity == mine && freeCount(bk.b, st.res) > 0 && !tried[bk.cidr] {
			if got, err := claim(bk.cidr); got != nil || err != nil {
				return got, err
			}
		}
	}
	now := c.opts.Now()
	for _, bk := range blocks {
		other := bk.b.Host()
		if other == "" || other == st.host || !blockEmpty(bk.b) || freeCount(bk.b, st.res) == 0 {
			continue
		}
		if age := now.Sub(claimTime(bk.b)); age < c.opts.ReclaimAge {
			continue
		}
		seq := bk.b.SequenceNumber
		if _, err := c.releaseBlockAffinity(ctx, other, bk.cidr, releaseOpts{requireEmpty: true, requiredSeq: &seq}); err != nil {
			c.log.WithError(err).WithField("block", bk.cidr).Info("could not reclaim empty block")
			continue
		}
		c.log.WithFields(map[string]any{"block": bk.cidr, "from": other}).Info("reclaimed empty block")
		if got, err := claim(bk.cidr); got != nil || err != nil {
			return got, err
		}
	}
	return nil, errNoFreeBlocks
}

// scanPool reads every block of p in one round trip (cached for the
// request). Only used once probing says the pool is (nearly) full.
func (c *Client) scanPool(ctx context.Context, st *hostState, p pool) ([]*blockKV, error) {
	if blocks, ok := st.scans[p.cidr]; ok {
		return blocks, nil
	}
	res, err := c.read(ctx, []backend.ReadOp{{List: poolBlocks{cidr: p.cidr}}})
	if err != nil {
		return nil, fmt.Errorf("reading blocks of pool %s: %w", p.Spec.CIDR, err)
	}
	var blocks []*blockKV
	for _, kv := range res[0] {
		bk, err := decodeBlock(kv)
		if err != nil {
			c.log.WithError(err).Warn("skipping unreadable block")
			continue
		}
		blocks = append(blocks, bk)
	}
	st.scans[p.cidr] = blocks
	return blocks, nil
}

func affinityValue(state string) []byte {
	v, _ := json.Marshal(&model.BlockAffinity{State: state})
	return v
}

// claimCIDR claims cidr for the host in Calico's two phases: a pending
// affinity, then the block (created, or found already ours), then the
// affinity confirmed. If another host owns the block it removes its
// pending affinity and returns errClaimConflict. aff is the host's
// affinity for cidr when the caller has it.
func (c *Client) claimCIDR(ctx context.Context, st *hostState, cidr netip.Prefix, aff *backend.KVPair) (*blockKV, error) {
	affKey := model.BlockAffinityKey{Host: st.host, CIDR: cidr}
	blockKey := model.BlockKey{CIDR: cidr}
	log := c.log.WithFields(map[string]any{"host": st.host, "block": cidr})
	var affRev int64
	confirmed := false
	for attempt := 0; affRev == 0; attempt++ {
		if attempt >= c.opts.MaxAttempts {
			return nil, fmt.Errorf("claiming affinity for %s: %w", cidr, ErrMaxAttempts)
		}
		slept, err := c.backoff(ctx, attempt)
		if err != nil {
			return nil, err
		}
		if slept {
			if aff, err = c.getKV(ctx, affKey); err != nil {
				return nil, fmt.Errorf("reading affinity %s: %w", affKey, err)
			}
		}
		op := backend.TxnOp{Action: backend.TxnPut, Key: affKey, Value: affinityValue(model.AffinityPending)}
		if aff != nil {
			a, err := decodeAffinity(aff)
			if err != nil {
				return nil, err
			}
			if a.state == model.AffinityConfirmed {
				affRev, confirmed = aff.Revision, true
				st.noteConfirmed(affKey, aff.Revision)
				break
			}
			op.Revision = aff.Revision
		}
		res, err := c.txn(ctx, op)
		if isConflict(err) {
			aff = res.Current[0]
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("writing pending affinity for %s: %w", cidr, err)
		}
		affRev = res.Revision
	}

	var bk *blockKV
	for attempt := 0; bk == nil; attempt++ {
		if attempt >= c.opts.MaxAttempts {
			return nil, fmt.Errorf("creating block %s: %w", cidr, ErrMaxAttempts)
		}
		b := newBlock(cidr, st.host, c.opts.Now())
		v, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		res, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnPut, Key: blockKey, Value: v})
		if err == nil {
			log.Info("claimed new block")
			bk = &blockKV{cidr: cidr, rev: res.Revision, b: b}
			break
		}
		if !isConflict(err) {
			return nil, fmt.Errorf("creating block %s: %w", cidr, err)
		}
		if res.Current[0] == nil {
			continue // deleted meanwhile; try to create it again
		}
		cur, err := decodeBlock(res.Current[0])
		if err != nil {
			return nil, err
		}
		if cur.b.Affinity == nil || *cur.b.Affinity != affinityOf(st.host) {
			if _, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnDelete, Key: affKey, Revision: affRev}); err != nil {
				log.WithError(err).Debug("could not remove pending affinity")
			}
			return nil, fmt.Errorf("block %s: %w", cidr, errClaimConflict)
		}
		bk = cur // another process of this host claimed it
	}

	for attempt := 0; !confirmed; attempt++ {
		if attempt >= c.opts.MaxAttempts {
			return nil, fmt.Errorf("confirming affinity for %s: %w", cidr, ErrMaxAttempts)
		}
		if _, err := c.backoff(ctx, attempt); err != nil {
			return nil, err
		}
		res, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnPut, Key: affKey, Revision: affRev, Value: affinityValue(model.AffinityConfirmed)})
		if err == nil {
			st.noteConfirmed(affKey, res.Revision)
			break
		}
		if !isConflict(err) {
			return nil, fmt.Errorf("confirming affinity for %s: %w", cidr, err)
		}
		cur := res.Current[0]
		if cur == nil {
			return nil, fmt.Errorf("affinity for %s removed while claiming: %w", cidr, errClaimConflict)
		}
		a, err := decodeAffinity(cur)
		if err != nil {
			return nil, err
		}
		if a.state == model.AffinityConfirmed {
			st.noteConfirmed(affKey, cur.Revision)
			break
		}
		affRev = cur.Revision
	}
	return bk, nil
}

// blockFromAffinity returns the block one of the host's affinities names,
// as Calico's getBlockFromAffinity: creating it when missing, dropping a
// stale affinity, and re-confirming one left pending or pendingDeletion.
func (c *Client) blockFromAffinity(ctx context.Context, st *hostState, a affinity, kv *backend.KVPair) (*blockKV, error) {
	if kv == nil {
		return c.claimCIDR(ctx, st, a.cidr, a.kv)
	}
	bk, err := decodeBlock(kv)
	if err != nil {
		return nil, err
	}
	if bk.b.Affinity == nil || *bk.b.Affinity != affinityOf(st.host) {
		_, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnDelete, Key: a.kv.Key, Revision: a.kv.Revision})
		if err != nil && !isConflict(err) {
			return nil, fmt.Errorf("deleting stale affinity %s: %w", a.kv.Key, err)
		}
		return nil, nil
	}
	if a.state == model.AffinityConfirmed || a.state == "" {
		return bk, nil
	}
	// Pending (a claim that died) or pendingDeletion (a release under
	// way): mark pending, rewrite the block so a concurrent release's
	// revision check fails, then confirm.
	res, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnPut, Key: a.kv.Key, Revision: a.kv.Revision, Value: affinityValue(model.AffinityPending)})
	if err != nil {
		return nil, fmt.Errorf("re-pending affinity %s: %w", a.kv.Key, err)
	}
	affRev := res.Revision
	op, err := blockOp(bk, false)
	if err != nil {
		return nil, err
	}
	if res, err = c.txn(ctx, op); err != nil {
		return nil, fmt.Errorf("rewriting block %s: %w", bk.cidr, err)
	}
	bk.rev = res.Revision
	res, err = c.txn(ctx, backend.TxnOp{Action: backend.TxnPut, Key: a.kv.Key, Revision: affRev, Value: affinityValue(model.AffinityConfirmed)})
	if err != nil {
		return nil, fmt.Errorf("confirming affinity %s: %w", a.kv.Key, err)
	}
	st.noteConfirmed(a.kv.Key, res.Revision)
	return bk, nil
}
