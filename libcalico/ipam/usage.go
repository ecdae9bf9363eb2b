package ipam

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// OrphanedPoolName names, in Usage, the blocks no pool contains.
const OrphanedPoolName = "orphaned allocation blocks"

// BlockUsage is one block's utilization.
type BlockUsage struct {
	CIDR netip.Prefix
	// Host is the host the block is affine to ("" when none).
	Host     string
	Capacity int
	InUse    int
	Free     int
}

// PoolUsage is one pool's utilization and its blocks.
type PoolUsage struct {
	Name     string
	CIDR     netip.Prefix
	Disabled bool
	// Capacity counts the pool's addresses, InUse the assigned ones.
	Capacity uint64
	InUse    int
	Blocks   []BlockUsage
}

// Usage reports every pool's utilization, for `calicoctl ipam show`,
// plus a last entry for blocks outside every pool when there are any.
// Blocks that do not decode are left out: the usage of the others is
// returned with a *cerrors.Partial naming them (see cerrors.Skipped).
func (c *Client) Usage(ctx context.Context) ([]PoolUsage, error) {
	pools, blocks, skipped, err := c.poolsAndBlocks(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PoolUsage, len(pools))
	for i, p := range pools {
		out[i] = PoolUsage{Name: p.Name, CIDR: p.cidr, Disabled: p.Spec.Disabled}
		if bits := p.cidr.Addr().BitLen() - p.cidr.Bits(); bits < 64 {
			out[i].Capacity = 1 << bits
		} else {
			out[i].Capacity = 1<<64 - 1
		}
	}
	var orphans *PoolUsage
	for _, bk := range blocks {
		u := BlockUsage{CIDR: bk.cidr, Host: bk.b.Host(), Capacity: bk.b.NumAddresses(), InUse: inUse(bk.b)}
		u.Free = u.Capacity - u.InUse
		pu := orphans
		for i := range pools {
			if pools[i].cidr.Overlaps(bk.cidr) {
				pu = &out[i]
				break
			}
		}
		if pu == nil {
			if orphans == nil {
				orphans = &PoolUsage{Name: OrphanedPoolName}
			}
			pu = orphans
		}
		pu.Blocks = append(pu.Blocks, u)
		pu.InUse += u.InUse
	}
	if orphans != nil {
		out = append(out, *orphans)
	}
	return out, cerrors.PartialOf(skipped)
}

func (c *Client) poolsAndBlocks(ctx context.Context) ([]pool, []*blockKV, []*cerrors.Corrupt, error) {
	res, err := c.read(ctx, []backend.ReadOp{
		{List: model.ResourceListOptions{Kind: v3.KindIPPool}},
		{List: model.BlockListOptions{}},
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading pools and blocks: %w", err)
	}
	blocks, skipped, err := decodeBlocks(res[1])
	return c.decodePools(res[0]), blocks, skipped, err
}

// decodeBlocks decodes a list of blocks, leaving out and returning in
// skipped those that do not decode.
func decodeBlocks(kvs []*backend.KVPair) (_ []*blockKV, skipped []*cerrors.Corrupt, _ error) {
	out := make([]*blockKV, 0, len(kvs))
	for _, kv := range kvs {
		bk, err := decodeBlock(kv)
		var c *cerrors.Corrupt
		switch {
		case errors.As(err, &c):
			skipped = append(skipped, c)
			continue
		case err != nil:
			return nil, nil, err
		}
		out = append(out, bk)
	}
	return out, skipped, nil
}

// Allocations lists every assigned address in the cluster. Blocks that
// do not decode are left out, as Usage leaves them out.
func (c *Client) Allocations(ctx context.Context) ([]Allocation, error) {
	res, err := c.read(ctx, []backend.ReadOp{{List: model.BlockListOptions{}}})
	if err != nil {
		return nil, fmt.Errorf("listing blocks: %w", err)
	}
	blocks, skipped, err := decodeBlocks(res[0])
	if err != nil {
		return nil, err
	}
	var out []Allocation
	for _, bk := range blocks {
		out = append(out, blockAllocations(bk)...)
	}
	return out, cerrors.PartialOf(skipped)
}

// DecodeAllocations decodes a stored block (a pair a
// model.BlockListOptions read returns) into its assigned addresses. A
// value that does not decode, or whose allocations do not fit its CIDR,
// gives a *cerrors.Corrupt.
func DecodeAllocations(kv *backend.KVPair) ([]Allocation, error) {
	bk, err := decodeBlock(kv)
	if err != nil {
		return nil, err
	}
	return blockAllocations(bk), nil
}

func blockAllocations(bk *blockKV) []Allocation {
	var out []Allocation
	for ord, idx := range bk.b.Allocations {
		if idx == nil {
			continue
		}
		a := Allocation{IP: bk.b.AddrAt(ord), Block: bk.cidr, BlockHost: bk.b.Host(), Handle: handleOf(bk.b, ord), SequenceNumber: seqFor(bk.b, ord)}
		if *idx < len(bk.b.Attributes) {
			a.Attrs = maps.Clone(bk.b.Attributes[*idx].Secondary)
		}
		out = append(out, a)
	}
	return out
}
