// Package routing holds bgpd's route decisions, with no I/O: which kernel
// routes are advertised (and with which communities), and how a path
// learned from a peer is programmed into the kernel.
//
//	kernel route (dst, iface) ──► Plan.Export ──► advertise? communities
//	best path (dst, next hop) ──► Plan.Program(lookup) ──► routetable.Route or skip
//
// Export: this node's blocks in exportable pools, and workload routes
// (interfaces named with the workload prefix, "cali") inside exportable
// pools but outside this node's blocks (addresses borrowed from other
// nodes' blocks). Program: nothing for this node's own blocks, for paths
// through itself or for VXLAN pools (felix routes those); via the tunnel
// device, on-link, for IPIP pools (CrossSubnet only when the next hop is
// not directly connected); otherwise via the next hop when it is directly
// connected, or via the kernel's gateway towards it (a recursive next hop).
package routing

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/calico-etcd/calico/bgpd/routetable"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// Encapsulation modes, as in IPPool.
const (
	ModeAlways      = "Always"
	ModeCrossSubnet = "CrossSubnet"
)

type pool struct {
	cidr        netip.Prefix
	export      bool
	ipip, vxlan string
}

type block struct {
	cidr   netip.Prefix
	export bool
}

type community struct {
	cidr   netip.Prefix
	values []string
}

// Plan is the decision state derived from one bgpconfig.Config.
type Plan struct {
	pools       []pool // most specific first
	blocks      []block
	communities []community
	ignored     []string
	nodeIPs     []netip.Addr
	workload    string
	tunnel      string
	metric4     int
	metric6     int
}

// Options are the host conventions a Plan needs.
type Options struct {
	// WorkloadPrefix starts every workload interface name ("cali").
	WorkloadPrefix string
	// TunnelDevice is the IPIP device ("tunl0").
	TunnelDevice string
}

// NewPlan derives a Plan from a validated config.
func NewPlan(c *bgpconfig.Config, o Options) (*Plan, error) {
	p := &Plan{ignored: c.IgnoredInterfaces, workload: o.WorkloadPrefix, tunnel: o.TunnelDevice,
		metric4: c.RoutePriority4, metric6: c.RoutePriority6}
	for _, pl := range c.Pools {
		cidr, err := netip.ParsePrefix(pl.CIDR)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", pl.CIDR, err)
		}
		p.pools = append(p.pools, pool{cidr: cidr.Masked(), export: pl.Export, ipip: pl.IPIPMode, vxlan: pl.VXLANMode})
	}
	slices.SortStableFunc(p.pools, func(a, b pool) int { return b.cidr.Bits() - a.cidr.Bits() })
	for _, b := range c.Blocks {
		cidr, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			return nil, fmt.Errorf("block %q: %w", b.CIDR, err)
		}
		p.blocks = append(p.blocks, block{cidr: cidr.Masked(), export: b.Export})
	}
	for _, pc := range c.Communities {
		cidr, err := netip.ParsePrefix(pc.CIDR)
		if err != nil {
			return nil, fmt.Errorf("communities %q: %w", pc.CIDR, err)
		}
		p.communities = append(p.communities, community{cidr: cidr.Masked(), values: pc.Communities})
	}
	for _, s := range []string{c.NodeIPv4, c.NodeIPv6} {
		if a, err := netip.ParsePrefix(s); err == nil {
			p.nodeIPs = append(p.nodeIPs, a.Addr())
		}
	}
	return p, nil
}

// Metric is the kernel metric of routes to dst's family.
func (p *Plan) Metric(dst netip.Prefix) int {
	if dst.Addr().Is4() {
		return p.metric4
	}
	return p.metric6
}

// Blackhole is the kernel route of one of this node's blocks.
func (p *Plan) Blackhole(block netip.Prefix) routetable.Route {
	return routetable.Route{Dst: block.Masked(), Blackhole: true, Metric: p.Metric(block)}
}

// Blocks returns this node's blocks (each needs a blackhole route).
func (p *Plan) Blocks() []netip.Prefix {
	out := make([]netip.Prefix, len(p.blocks))
	for i, b := range p.blocks {
		out[i] = b.cidr
	}
	return out
}

// ExportedBlocks returns the blocks to advertise.
func (p *Plan) ExportedBlocks() []netip.Prefix {
	var out []netip.Prefix
	for _, b := range p.blocks {
		if b.export {
			out = append(out, b.cidr)
		}
	}
	return out
}

// NextHop returns the next hop to advertise for a prefix of dst's family
// (the node's address), or false when the node has no such address.
func (p *Plan) NextHop(dst netip.Prefix) (netip.Addr, bool) {
	for _, a := range p.nodeIPs {
		if a.Is4() == dst.Addr().Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func covers(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

func (p *Plan) poolOf(dst netip.Prefix) (pool, bool) {
	for _, pl := range p.pools {
		if covers(pl.cidr, dst) {
			return pl, true
		}
	}
	return pool{}, false
}

func (p *Plan) inOwnBlock(dst netip.Prefix) bool {
	for _, b := range p.blocks {
		if covers(b.cidr, dst) {
			return true
		}
	}
	return false
}

// IsWorkloadIface reports whether iface is a workload interface that is
// not ignored.
func (p *Plan) IsWorkloadIface(iface string) bool {
	if p.workload == "" || !strings.HasPrefix(iface, p.workload) {
		return false
	}
	for _, g := range p.ignored {
		if ok, _ := path.Match(g, iface); ok || g == iface {
			return false
		}
	}
	return true
}

// Export reports whether a kernel route to dst through iface is
// advertised: a workload route inside an exportable pool and outside this
// node's blocks.
func (p *Plan) Export(dst netip.Prefix, iface string) bool {
	if !p.IsWorkloadIface(iface) || p.inOwnBlock(dst) {
		return false
	}
	pl, ok := p.poolOf(dst)
	if !ok || !pl.export {
		return false
	}
	_, ok = p.NextHop(dst)
	return ok
}

// Communities returns the communities of every prefixAdvertisement
// covering dst, in config order, without duplicates.
func (p *Plan) Communities(dst netip.Prefix) []string {
	var out []string
	for _, c := range p.communities {
		if covers(c.cidr, dst) {
			for _, v := range c.values {
				if !slices.Contains(out, v) {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// Lookup says how the kernel reaches an address: directly on dev (gw
// invalid) or through gateway gw on dev.
type Lookup func(addr netip.Addr) (gw netip.Addr, dev string, err error)

// Program decides the kernel route for a best path to dst through nh
// learned from a peer. ok is false when nothing should be programmed;
// err is set when the next hop cannot be resolved now (try again later).
func (p *Plan) Program(dst netip.Prefix, nh netip.Addr, lookup Lookup) (r routetable.Route, ok bool, err error) {
	dst = dst.Masked()
	if !nh.IsValid() || nh.IsUnspecified() || slices.Contains(p.nodeIPs, nh) {
		return routetable.Route{}, false, nil
	}
	for _, b := range p.blocks {
		if b.cidr == dst {
			return routetable.Route{}, false, nil // ours: blackholed and advertised by us
		}
	}
	pl, inPool := p.poolOf(dst)
	if inPool && (pl.vxlan == ModeAlways || pl.vxlan == ModeCrossSubnet) {
		return routetable.Route{}, false, nil
	}
	gw, dev, err := lookup(nh)
	if err != nil {
		return routetable.Route{}, false, fmt.Errorf("resolving next hop %s of %s: %w", nh, dst, err)
	}
	direct := !gw.IsValid()
	m := p.Metric(dst)
	if inPool && nh.Is4() && (pl.ipip == ModeAlways || (pl.ipip == ModeCrossSubnet && !direct)) {
		return routetable.Route{Dst: dst, Gw: nh, Dev: p.tunnel, OnLink: true, Metric: m}, true, nil
	}
	if direct {
		return routetable.Route{Dst: dst, Gw: nh, Dev: dev, Metric: m}, true, nil
	}
	return routetable.Route{Dst: dst, Gw: gw, Dev: dev, Metric: m}, true, nil
}
