package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

// errBlockNotEmpty: a release that required an empty block found addresses.
var errBlockNotEmpty = errors.New("block is not empty")

type releaseOpts struct {
	requireEmpty bool
	// requiredSeq aborts the release if the block's sequence number moved.
	requiredSeq *uint64
}

// releaseBlockAffinity removes host's affinity to cidr in Calico's order:
// the affinity goes to pendingDeletion, the block is deleted (empty) or
// loses its affinity (not empty), then the affinity is deleted. Every
// step is revision-checked; a conflict error means "read again and retry".
// removed reports that this call deleted the affinity.
func (c *Client) releaseBlockAffinity(ctx context.Context, host string, cidr netip.Prefix, o releaseOpts) (removed bool, err error) {
	affKey := model.BlockAffinityKey{Host: host, CIDR: cidr}
	res, err := c.read(ctx, []backend.ReadOp{{Key: affKey}, {Key: model.BlockKey{CIDR: cidr}}})
	if err != nil {
		return false, fmt.Errorf("reading affinity of %s to %s: %w", host, cidr, err)
	}
	aff, kv := one(res[0]), one(res[1])
	if aff == nil {
		return false, nil
	}
	if kv == nil {
		// A block that no longer exists: the affinity is all that is left.
		_, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnDelete, Key: affKey, Revision: aff.Revision})
		return err == nil, err
	}
	bk, err := decodeBlock(kv)
	if err != nil {
		return false, err
	}
	if o.requiredSeq != nil && *o.requiredSeq != bk.b.SequenceNumber {
		return false, fmt.Errorf("block %s changed since it was read", cidr)
	}
	if bk.b.Affinity != nil && *bk.b.Affinity != affinityOf(host) {
		_, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnDelete, Key: affKey, Revision: aff.Revision})
		if err != nil && !isConflict(err) {
			return false, err
		}
		return err == nil, fmt.Errorf("block %s: %w", cidr, errClaimConflict)
	}
	empty := blockEmpty(bk.b)
	if o.requireEmpty && !empty {
		return false, fmt.Errorf("block %s: %w", cidr, errBlockNotEmpty)
	}
	r, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnPut, Key: affKey, Revision: aff.Revision, Value: affinityValue(model.AffinityPendingDeletion)})
	if err != nil {
		return false, fmt.Errorf("marking affinity %s pendingDeletion: %w", affKey, err)
	}
	affRev := r.Revision
	if empty {
		_, err = c.txn(ctx, backend.TxnOp{Action: backend.TxnDelete, Key: model.BlockKey{CIDR: cidr}, Revision: bk.rev})
	} else {
		bk.b.Affinity, bk.b.AffinityClaimTime = nil, ""
		var op backend.TxnOp
		if op, err = blockOp(bk, false); err == nil {
			_, err = c.txn(ctx, op)
		}
	}
	if err != nil {
		return false, fmt.Errorf("releasing block %s: %w", cidr, err)
	}
	if _, err := c.txn(ctx, backend.TxnOp{Action: backend.TxnDelete, Key: affKey, Revision: affRev}); err != nil {
		if !isConflict(err) {
			return false, fmt.Errorf("deleting affinity %s: %w", affKey, err)
		}
		return false, nil
	}
	return true, nil
}

// releaseAffinityRetry retries releaseBlockAffinity on revision conflicts.
func (c *Client) releaseAffinityRetry(ctx context.Context, host string, cidr netip.Prefix, o releaseOpts) (bool, error) {
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		if _, err := c.backoff(ctx, attempt); err != nil {
			return false, err
		}
		removed, err := c.releaseBlockAffinity(ctx, host, cidr, o)
		if !isConflict(err) {
			return removed, err
		}
	}
	return false, fmt.Errorf("releasing affinity of %s to %s: %w", host, cidr, ErrMaxAttempts)
}

// ReleaseHostAffinities releases every block affinity of host, as when the
// node is removed: empty blocks are deleted, others stay (their addresses
// still assigned) with no affinity. With mustBeEmpty, non-empty blocks
// keep their affinity and an error reports them. It returns the blocks
// whose affinity this call removed (one that another caller removed
// meanwhile is neither returned nor an error).
func (c *Client) ReleaseHostAffinities(ctx context.Context, host string, mustBeEmpty bool) ([]netip.Prefix, error) {
	c.forgetWarm()
	if err := validHost(host); err != nil {
		return nil, err
	}
	res, err := c.read(ctx, []backend.ReadOp{{List: model.BlockAffinityListOptions{Host: host}, KeysOnly: true}})
	if err != nil {
		return nil, fmt.Errorf("listing affinities of %s: %w", host, err)
	}
	var released []netip.Prefix
	var errs []error
	for _, kv := range res[0] {
		k := kv.Key.(model.BlockAffinityKey)
		removed, err := c.releaseAffinityRetry(ctx, host, k.CIDR, releaseOpts{requireEmpty: mustBeEmpty})
		if removed {
			released = append(released, k.CIDR)
		}
		if err != nil && !errors.Is(err, errClaimConflict) {
			errs = append(errs, err)
		}
	}
	return released, errors.Join(errs...)
}

// ReleaseAffinity releases host's affinity to every block within cidr.
func (c *Client) ReleaseAffinity(ctx context.Context, host string, cidr netip.Prefix, mustBeEmpty bool) error {
	c.forgetWarm()
	if err := validHost(host); err != nil {
		return err
	}
	res, err := c.read(ctx, []backend.ReadOp{{List: model.BlockAffinityListOptions{Host: host}, KeysOnly: true}})
	if err != nil {
		return fmt.Errorf("listing affinities of %s: %w", host, err)
	}
	var errs []error
	for _, kv := range res[0] {
		k := kv.Key.(model.BlockAffinityKey)
		if !cidr.Masked().Contains(k.CIDR.Addr()) {
			continue
		}
		if _, err := c.releaseAffinityRetry(ctx, host, k.CIDR, releaseOpts{requireEmpty: mustBeEmpty}); err != nil && !errors.Is(err, errClaimConflict) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
