// Package routes programs the routing side of felix's dataplane: a route
// and interface sysctls for each local workload, static ARP/NDP entries,
// the VXLAN devices (vxlan.calico over IPv4, vxlan-v6.calico over IPv6)
// with their neighbour and FDB entries and routes to other hosts' blocks,
// and the IPIP device (tunl0) with its routes.
//
// Compute is pure: it turns a dpapi.State into the Desired kernel objects
// (golden-tested). Manager converges the kernel to a Desired over netlink.
package routes

import (
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/calico-etcd/calico/felix/dpapi"
)

// Device names.
const (
	VXLANDevice   = "vxlan.calico"
	VXLANV6Device = "vxlan-v6.calico"
	IPIPDevice    = "tunl0"
	// ParentDevice in Route.Dev means "the interface that holds this
	// host's address of the route's family", resolved when programming.
	ParentDevice = "@parent"
)

// Config is what route computation needs from felix's configuration.
type Config struct {
	Hostname          string
	InterfacePrefixes []string // default ["cali"]
	IPv6              bool
	VXLANVNI          int // default 4096
	VXLANPort         int // default 4789
	VXLANMTU          int // 0: parent MTU - 50
	VXLANMTUV6        int // 0: parent MTU - 70
	IPIPMTU           int // 0: parent MTU - 20
	RouteProtocol     int // default 3
	// WorkloadRouteSrc4/6 are the src of workload routes (Calico's
	// DeviceRouteSourceAddress); invalid = none.
	WorkloadRouteSrc4, WorkloadRouteSrc6 netip.Addr
	// RouteWorkloadIPs routes other hosts' workload addresses
	// (State.RemoteWorkloads) instead of their blocks (RouteSource WorkloadIPs).
	RouteWorkloadIPs bool
	// VXLANEnabled / IPIPEnabled override the pools' encapsulation (IPv4).
	VXLANEnabled, IPIPEnabled *bool
	// KeepExternalRoutes leaves routes on workload interfaces that felix
	// did not program (RemoveExternalRoutes false).
	KeepExternalRoutes bool
	// TidyTables4/6 are route tables kept empty of routes and of rules
	// pointing at them (Calico's WireGuard tables); 0 = none.
	TidyTable4, TidyTable6 int
}

// ClusterProtocol is the protocol of felix's routes other than workload
// routes: 80 when workload routes use boot (3), as Calico, so that
// felix can tell its routes from an operator's static ones; else
// RouteProtocol.
func (c *Config) ClusterProtocol() int {
	if c.RouteProtocol == 0 || c.RouteProtocol == 3 {
		return DefaultClusterProtocol
	}
	return c.RouteProtocol
}

// DefaultClusterProtocol is Calico's protocol for its routes that are not
// on workload interfaces.
const DefaultClusterProtocol = 80

func (c *Config) defaults() {
	if len(c.InterfacePrefixes) == 0 {
		c.InterfacePrefixes = []string{"cali"}
	}
	if c.VXLANVNI == 0 {
		c.VXLANVNI = 4096
	}
	if c.VXLANPort == 0 {
		c.VXLANPort = 4789
	}
	if c.RouteProtocol == 0 {
		c.RouteProtocol = 3
	}
}

// Route is a route in the main table.
type Route struct {
	Dst    netip.Prefix
	Dev    string     // interface name, or ParentDevice
	Gw     netip.Addr // invalid for a link route
	OnLink bool
	// LinkScope is true for IPv4 workload routes ("scope link").
	LinkScope bool
	// Src is the preferred source address; invalid = none.
	Src netip.Addr
	// Cluster marks routes to other hosts (protocol ClusterProtocol).
	Cluster bool
}

// Neigh is a permanent neighbour (ARP/NDP) entry.
type Neigh struct {
	Dev string
	IP  netip.Addr
	MAC string
}

// FDB is a permanent VXLAN forwarding entry: frames for MAC go to Dst.
type FDB struct {
	Dev string
	MAC string
	Dst netip.Addr
}

// VXLAN is a wanted VXLAN device (vxlan.calico over IPv4, or
// vxlan-v6.calico over IPv6).
type VXLAN struct {
	Name    string
	VNI     int
	Port    int
	LocalIP netip.Addr // this host's address the device sends from
	MTU     int        // 0: derive from the parent interface
	MAC     string
	Addr    netip.Prefix // tunnel address, /32 or /128; invalid when unknown
}

// IPIP is the wanted IPIP device.
type IPIP struct {
	Name string
	MTU  int
	Addr netip.Prefix
}

// Iface is a workload interface to configure.
type Iface struct {
	Name string
	IPv6 bool // also set the IPv6 sysctls
}

// Desired is everything Manager programs.
type Desired struct {
	Routes  []Route
	Neighs  []Neigh
	FDBs    []FDB
	VXLAN   *VXLAN // nil: no IPv4 VXLAN device
	VXLANV6 *VXLAN // nil: no IPv6 VXLAN device
	IPIP    *IPIP  // nil: no IPIP device wanted
	Ifaces  []Iface
	// Pools are all pool CIDRs: routes with our protocol inside them are ours.
	Pools []netip.Prefix
	// Problems are reasons some wanted objects could not be computed.
	Problems []string
}

// Compute turns a State into the kernel objects this host needs.
func Compute(s *dpapi.State, cfg Config) *Desired {
	cfg.defaults()
	d := &Desired{}
	me := s.Hosts[cfg.Hostname]

	// Local workloads.
	ids := make([]string, 0, len(s.Workloads))
	for id := range s.Workloads {
		ids = append(ids, string(id))
	}
	sort.Strings(ids)
	d.Ifaces = make([]Iface, 0, len(ids))
	d.Routes = make([]Route, 0, len(ids)+len(s.RemoteBlocks))
	for _, id := range ids {
		w := s.Workloads[dpapi.WorkloadID(id)]
		if w == nil || w.Iface == "" {
			continue
		}
		d.Ifaces = append(d.Ifaces, Iface{Name: w.Iface, IPv6: cfg.IPv6 && len(w.IPv6) > 0})
		mac := normalMAC(w.MAC)
		for _, p := range w.IPv4 {
			if !p.IsValid() {
				continue
			}
			d.Routes = append(d.Routes, Route{Dst: p.Masked(), Dev: w.Iface, LinkScope: true, Src: cfg.WorkloadRouteSrc4})
			if mac != "" {
				d.Neighs = append(d.Neighs, Neigh{Dev: w.Iface, IP: p.Addr(), MAC: mac})
			}
		}
		if cfg.IPv6 {
			for _, p := range w.IPv6 {
				if !p.IsValid() {
					continue
				}
				d.Routes = append(d.Routes, Route{Dst: p.Masked(), Dev: w.Iface, Src: cfg.WorkloadRouteSrc6})
				if mac != "" {
					d.Neighs = append(d.Neighs, Neigh{Dev: w.Iface, IP: p.Addr(), MAC: mac})
				}
			}
		}
	}

	// Encapsulation.
	var vxlan4, vxlan6, ipipOn bool
	for _, name := range sortedKeys(s.Pools) {
		p := s.Pools[name]
		if p == nil || !p.CIDR.IsValid() {
			continue
		}
		d.Pools = append(d.Pools, p.CIDR.Masked())
		if p.CIDR.Addr().Is4() {
			vxlan4 = vxlan4 || encaps(p.VXLAN)
			ipipOn = ipipOn || encaps(p.IPIP)
		} else {
			vxlan6 = vxlan6 || encaps(p.VXLAN)
		}
	}
	if cfg.VXLANEnabled != nil {
		vxlan4 = *cfg.VXLANEnabled
	}
	if cfg.IPIPEnabled != nil {
		ipipOn = *cfg.IPIPEnabled
	}
	if vxlan4 {
		d.VXLAN = vxlanDevice(s, cfg, me, false, d)
	}
	if vxlan6 && cfg.IPv6 {
		d.VXLANV6 = vxlanDevice(s, cfg, me, true, d)
	}
	if ipipOn {
		d.IPIP = &IPIP{Name: IPIPDevice, MTU: cfg.IPIPMTU}
		if me != nil && me.IPIPTunnelAddr.IsValid() {
			d.IPIP.Addr = netip.PrefixFrom(me.IPIPTunnelAddr, 32)
		}
	}

	// Routes to other hosts' blocks (or their workloads' addresses).
	remote := s.RemoteBlocks
	if cfg.RouteWorkloadIPs {
		remote = s.RemoteWorkloads
	}
	for _, b := range remote {
		if b.Host == cfg.Hostname || !b.CIDR.IsValid() {
			continue
		}
		v6 := b.CIDR.Addr().Is6()
		if v6 && !cfg.IPv6 {
			continue
		}
		pool := poolFor(s, b.CIDR)
		remote := s.Hosts[b.Host]
		if pool == nil || remote == nil {
			continue
		}
		mine, theirs, tunnel, dev := hostAddr(me, false), hostAddr(remote, false), remote.VXLANTunnelAddr, VXLANDevice
		vx := d.VXLAN
		if v6 {
			mine, theirs, tunnel, dev, vx = hostAddr(me, true), hostAddr(remote, true), remote.VXLANTunnelAddrV6, VXLANV6Device, d.VXLANV6
		}
		if !theirs.IsValid() {
			continue
		}
		same := mine.IsValid() && mine.Masked().Contains(theirs.Addr())
		switch {
		case encaps(pool.VXLAN) && vx != nil:
			if pool.VXLAN == dpapi.EncapCrossSubnet && same {
				d.Routes = append(d.Routes, Route{Dst: b.CIDR.Masked(), Dev: ParentDevice, Gw: theirs.Addr(), Cluster: true})
			} else if tunnel.IsValid() {
				d.Routes = append(d.Routes, Route{Dst: b.CIDR.Masked(), Dev: dev, Gw: tunnel, OnLink: true, Cluster: true})
			}
		case encaps(pool.IPIP) && !v6 && d.IPIP != nil:
			if pool.IPIP == dpapi.EncapCrossSubnet && same {
				d.Routes = append(d.Routes, Route{Dst: b.CIDR.Masked(), Dev: ParentDevice, Gw: theirs.Addr(), Cluster: true})
			} else {
				d.Routes = append(d.Routes, Route{Dst: b.CIDR.Masked(), Dev: IPIPDevice, Gw: theirs.Addr(), OnLink: true, Cluster: true})
			}
		}
	}
	sort.SliceStable(d.Routes, func(i, j int) bool { return lessPrefix(d.Routes[i].Dst, d.Routes[j].Dst) })
	return d
}

// hostAddr is h's address of one family (invalid when h is nil or has none).
func hostAddr(h *dpapi.Host, v6 bool) netip.Prefix {
	switch {
	case h == nil:
		return netip.Prefix{}
	case v6:
		return h.IPv6
	}
	return h.IPv4
}

// vxlanDevice is the wanted VXLAN device of one family, with the
// neighbour and FDB entries of every other host that has a tunnel
// address of that family; nil (and a problem noted) when this host has
// no address of the family to send from.
func vxlanDevice(s *dpapi.State, cfg Config, me *dpapi.Host, v6 bool, d *Desired) *VXLAN {
	name, fam := VXLANDevice, "IPv4"
	if v6 {
		name, fam = VXLANV6Device, "IPv6"
	}
	local := hostAddr(me, v6)
	if !local.IsValid() {
		d.Problems = append(d.Problems, "VXLAN: this host has no "+fam+" address")
		return nil
	}
	vx := &VXLAN{Name: name, VNI: cfg.VXLANVNI, Port: cfg.VXLANPort, MTU: cfg.VXLANMTU, LocalIP: local.Addr()}
	tunnel, mac := me.VXLANTunnelAddr, me.VXLANTunnelMAC
	if v6 {
		vx.MTU, tunnel, mac = cfg.VXLANMTUV6, me.VXLANTunnelAddrV6, me.VXLANTunnelMACV6
	}
	if tunnel.IsValid() {
		vx.Addr = netip.PrefixFrom(tunnel, tunnel.BitLen())
	}
	vx.MAC = normalMAC(mac)
	for _, hn := range sortedKeys(s.Hosts) {
		h := s.Hosts[hn]
		if hn == cfg.Hostname || h == nil {
			continue
		}
		hostIP, tunnel, mac := hostAddr(h, v6), h.VXLANTunnelAddr, normalMAC(h.VXLANTunnelMAC)
		if v6 {
			tunnel, mac = h.VXLANTunnelAddrV6, normalMAC(h.VXLANTunnelMACV6)
		}
		if !hostIP.IsValid() || !tunnel.IsValid() || mac == "" {
			continue
		}
		d.Neighs = append(d.Neighs, Neigh{Dev: name, IP: tunnel, MAC: mac})
		d.FDBs = append(d.FDBs, FDB{Dev: name, MAC: mac, Dst: hostIP.Addr()})
	}
	return vx
}

func encaps(m dpapi.EncapMode) bool { return m == dpapi.EncapAlways || m == dpapi.EncapCrossSubnet }

func poolFor(s *dpapi.State, block netip.Prefix) *dpapi.Pool {
	var best *dpapi.Pool
	for _, name := range sortedKeys(s.Pools) {
		p := s.Pools[name]
		if p != nil && p.CIDR.IsValid() && p.CIDR.Bits() <= block.Bits() && p.CIDR.Contains(block.Addr()) {
			if best == nil || p.CIDR.Bits() > best.CIDR.Bits() {
				best = p
			}
		}
	}
	return best
}

func lessPrefix(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

func normalMAC(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return hw.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// IsWorkloadIface reports whether name starts with one of prefixes.
func IsWorkloadIface(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
