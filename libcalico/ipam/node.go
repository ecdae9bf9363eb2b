package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

// ReleaseNodeAllocations frees the addresses allocated to node, as when
// the node is removed: every allocation whose node attribute
// (AttributeNode) is node, workload and tunnel addresses alike, wherever
// its block, and each address of also that is allocated without a node
// attribute (the addresses the node's endpoints and Node resource name,
// which Calico releases by address). An address of also allocated to
// another node is left alone: it is someone else's now.
//
// It reads every block once, then changes each block that holds such an
// address in one transaction with its handles, guarded by the block's
// revision; on a conflict it chooses again from the block as it is now, so
// an address re-assigned meanwhile is never freed. A block left empty and
// without affinity is deleted. It returns the addresses this call freed
// (none that a concurrent caller freed first) and goes on past a block it
// cannot write or decode, reporting every such failure.
func (c *Client) ReleaseNodeAllocations(ctx context.Context, node string, also []netip.Addr) ([]netip.Addr, error) {
	c.forgetWarm()
	if err := validHost(node); err != nil {
		return nil, err
	}
	extra := make(map[netip.Addr]bool, len(also))
	for _, a := range also {
		if a.IsValid() {
			extra[a.Unmap()] = true
		}
	}
	res, err := c.read(ctx, []backend.ReadOp{{List: model.BlockListOptions{}}})
	if err != nil {
		return nil, fmt.Errorf("listing blocks: %w", err)
	}
	blocks, skipped, err := decodeBlocks(res[0])
	if err != nil {
		return nil, err
	}
	var freed []netip.Addr
	var errs []error
	// The node may hold addresses in a block that does not decode: those
	// cannot be released, which the error says, but the others are.
	for _, c := range skipped {
		errs = append(errs, c)
	}
	for _, bk := range blocks {
		if len(nodeReleases(bk.b, node, extra)) == 0 {
			continue
		}
		f, err := c.releaseNodeInBlock(ctx, bk, node, extra)
		freed = append(freed, f...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return freed, errors.Join(errs...)
}

// nodeReleases lists the allocations of b that ReleaseNodeAllocations
// frees.
func nodeReleases(b *model.AllocationBlock, node string, extra map[netip.Addr]bool) []ReleaseOptions {
	var out []ReleaseOptions
	for ord, idx := range b.Allocations {
		if idx == nil || *idx >= len(b.Attributes) {
			continue
		}
		addr := b.AddrAt(ord)
		owner := b.Attributes[*idx].Secondary[AttributeNode]
		if owner == node || (owner == "" && extra[addr]) {
			out = append(out, ReleaseOptions{Address: addr})
		}
	}
	return out
}

// releaseNodeInBlock frees node's allocations in one block, choosing them
// afresh from the block read at each attempt.
func (c *Client) releaseNodeInBlock(ctx context.Context, bk *blockKV, node string, extra map[netip.Addr]bool) ([]netip.Addr, error) {
	handles := map[string]*handleKV{}
	cidr := bk.cidr
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		slept, err := c.backoff(ctx, attempt)
		if err != nil {
			return nil, err
		}
		if slept {
			clear(handles)
			fresh, _, err := c.fetchBlockHandle(ctx, cidr, "")
			if err != nil {
				return nil, err
			}
			if fresh == nil {
				return nil, nil
			}
			*bk = *fresh
		}
		if bk.b == nil {
			return nil, nil // deleted meanwhile
		}
		opts := nodeReleases(bk.b, node, extra)
		if len(opts) == 0 {
			return nil, nil
		}
		_, perHandle, err := releaseFromBlock(bk.b, opts)
		if err != nil {
			return nil, fmt.Errorf("releasing addresses of node %s from block %s: %w", node, cidr, err)
		}
		retry, err := c.commitRelease(ctx, bk, handles, perHandle)
		if err != nil {
			return nil, err
		}
		if retry {
			continue
		}
		freed := make([]netip.Addr, len(opts))
		for i, o := range opts {
			freed[i] = o.Address
		}
		return freed, nil
	}
	return nil, fmt.Errorf("releasing addresses of node %s from block %s: %w", node, cidr, ErrMaxAttempts)
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
