package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Config
	// Netlink is the handle to program with (one opened in a network
	// namespace for tests); nil uses the current namespace.
	Netlink *netlink.Handle
	// Kernel, when set, is used instead of Netlink (a fake in tests).
	Kernel Kernel
	// InNetNS runs f with the calling thread in the target namespace, for
	// the /proc/sys writes; nil runs f directly.
	InNetNS func(f func() error) error
	// CleanupGrace is how long a workload interface with no workload keeps
	// its routes after we first saw it (the CNI plugin adds the route before
	// the endpoint reaches us). Default 10s; negative means none.
	CleanupGrace time.Duration
	Log          *logrus.Entry
	Metrics      *Metrics // optional
	// ProcSys is the root of the sysctl tree; default /proc/sys.
	ProcSys string
}

// ErrIPIPUnsupported wraps a failure to create tunl0 on a kernel without
// IPIP support. It does not stop the rest of the routing being programmed.
var ErrIPIPUnsupported = errors.New("kernel lacks IPIP support (ipip module not available)")

// Manager converges routes, neighbours, sysctls and tunnel devices.
type Manager struct {
	cfg       ManagerConfig
	h         Kernel
	log       *logrus.Entry
	firstSeen map[string]time.Time
	sysctlsOn map[string]int // iface -> ifindex whose sysctls are set
	last      *Desired
	dirty     bool
	ipipErr   error
	now       func() time.Time
}

// NewManager returns a Manager; it does not touch the kernel.
func NewManager(cfg ManagerConfig) *Manager {
	cfg.defaults()
	if cfg.CleanupGrace == 0 {
		cfg.CleanupGrace = 10 * time.Second
	}
	if cfg.ProcSys == "" {
		cfg.ProcSys = "/proc/sys"
	}
	if cfg.InNetNS == nil {
		cfg.InNetNS = func(f func() error) error { return f() }
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	h := cfg.Kernel
	if h == nil {
		h = NewKernel(cfg.Netlink)
	}
	return &Manager{cfg: cfg, h: h, log: cfg.Log, firstSeen: map[string]time.Time{},
		sysctlsOn: map[string]int{}, dirty: true, now: time.Now}
}

// Invalidate makes the next Apply re-read and re-check everything (the
// periodic refresh, or an interface came or went).
func (m *Manager) Invalidate() { m.dirty = true }

// IPIPStatus returns why tunl0 could not be set up (wrapping
// ErrIPIPUnsupported when the kernel lacks IPIP), or nil.
func (m *Manager) IPIPStatus() error { return m.ipipErr }

// Apply converges the kernel to d. Objects whose interface does not exist
// (or is down) yet are skipped until an Apply after Invalidate. IPIP
// problems are reported by IPIPStatus, not returned.
func (m *Manager) Apply(d *Desired) error {
	if !m.dirty && reflect.DeepEqual(d, m.last) {
		return nil
	}
	for _, p := range d.Problems {
		m.log.WithField("problem", p).Warn("cannot program part of the routing")
	}
	links, err := m.h.LinkList()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	byName := make(map[string]netlink.Link, len(links))
	now := m.now()
	for _, l := range links {
		name := l.Attrs().Name
		byName[name] = l
		if _, ok := m.firstSeen[name]; !ok {
			m.firstSeen[name] = now
		}
	}
	for name := range m.firstSeen {
		if byName[name] == nil {
			delete(m.firstSeen, name)
			delete(m.sysctlsOn, name)
		}
	}

	var errs []error
	if err := m.applyVXLAN(d, byName); err != nil {
		errs = append(errs, err)
	}
	m.applyIPIP(d, byName)
	if err := m.applySysctls(d, byName); err != nil {
		errs = append(errs, err)
	}
	if err := m.applyRoutes(d, byName); err != nil {
		errs = append(errs, err)
	}
	if err := m.applyNeighs(d, byName); err != nil {
		errs = append(errs, err)
	}
	if err := m.tidyTables(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		m.last, m.dirty = d, false
	} else {
		m.dirty = true
	}
	return errors.Join(errs...)
}

func (m *Manager) usable(l netlink.Link) bool {
	return l != nil && l.Attrs().Flags&net.FlagUp != 0
}

// parent finds the interface that holds local, for CrossSubnet routes.
func (m *Manager) parent(local netip.Addr) netlink.Link {
	if !local.IsValid() {
		return nil
	}
	addrs, err := m.h.AddrList(nil, family(local))
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if ip, ok := netaddr.Addr(a.IP); ok && ip == local {
			l, err := m.h.LinkByIndex(a.LinkIndex)
			if err == nil {
				return l
			}
		}
	}
	return nil
}

type routeKey struct {
	dst netip.Prefix
}

// owned reports whether a route felix does not want is felix's to remove,
// as Calico's main-table ownership policy: a route with felix's cluster
// protocol (80 by default, used by no one else) anywhere; any route on a
// VXLAN device; on a workload interface, any route (RemoveExternalRoutes)
// or only those with felix's protocols (KeepExternalRoutes). Everything
// else (an operator's static route via eth0, even with protocol boot and
// into a pool; bgpd's routes) is left alone.
func (m *Manager) owned(r *netlink.Route, linkName string) bool {
	if r.Dst == nil {
		return false
	}
	proto := int(r.Protocol)
	if proto == m.cfg.ClusterProtocol() {
		return true
	}
	if linkName == VXLANDevice || linkName == VXLANV6Device {
		return true
	}
	if linkName == "" || !IsWorkloadIface(linkName, m.cfg.InterfacePrefixes) {
		return false
	}
	if !m.cfg.KeepExternalRoutes {
		return true
	}
	return proto == m.cfg.RouteProtocol || proto == DefaultClusterProtocol
}

func (m *Manager) applyRoutes(d *Desired, links map[string]netlink.Link) error {
	families := []int{netlink.FAMILY_V4}
	if m.cfg.IPv6 {
		families = append(families, netlink.FAMILY_V6)
	}
	start := m.now()
	var existing []netlink.Route
	for _, f := range families {
		rs, err := m.h.RouteListFiltered(f, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("listing routes: %w", err)
		}
		existing = append(existing, rs...)
	}
	if mt := m.cfg.Metrics; mt != nil {
		mt.listSeconds.Observe(m.now().Sub(start).Seconds())
	}
	nameByIndex := make(map[int]string, len(links))
	for name, l := range links {
		nameByIndex[l.Attrs().Index] = name
	}
	wantIfaces := map[string]bool{}
	for _, i := range d.Ifaces {
		wantIfaces[i.Name] = true
	}

	// The interfaces holding this host's addresses, for same-subnet
	// routes (CrossSubnet); else the one whose subnet holds the gateway.
	var parent4, parent6 netlink.Link
	if d.VXLAN != nil {
		parent4 = m.parent(d.VXLAN.LocalIP)
	}
	if d.VXLANV6 != nil {
		parent6 = m.parent(d.VXLANV6.LocalIP)
	}
	want := map[routeKey]*netlink.Route{}
	for _, r := range d.Routes {
		if !r.Dst.Addr().Is4() && !m.cfg.IPv6 {
			continue
		}
		var l netlink.Link
		if r.Dev == ParentDevice {
			l = parent4
			if r.Dst.Addr().Is6() {
				l = parent6
			}
			if l == nil {
				l = m.parentFor(r.Gw)
			}
		} else {
			l = links[r.Dev]
		}
		if !m.usable(l) {
			continue // programmed when the interface appears or comes up
		}
		proto := m.cfg.RouteProtocol
		if r.Cluster {
			proto = m.cfg.ClusterProtocol()
		}
		nr := &netlink.Route{
			LinkIndex: l.Attrs().Index,
			Dst:       netaddr.IPNet(r.Dst),
			Protocol:  netlink.RouteProtocol(proto),
			Table:     unix.RT_TABLE_MAIN,
		}
		if r.Src.IsValid() {
			nr.Src = r.Src.AsSlice()
		}
		if r.LinkScope {
			nr.Scope = netlink.SCOPE_LINK
		}
		if r.Gw.IsValid() {
			nr.Gw = r.Gw.AsSlice()
		}
		if r.OnLink {
			nr.Flags = int(netlink.FLAG_ONLINK)
		}
		want[routeKey{r.Dst}] = nr
	}

	var errs []error
	ops := map[string][]func() error{} // by interface name
	seen := map[routeKey]bool{}
	for i := range existing {
		er := &existing[i]
		if er.Dst == nil {
			continue
		}
		dst, ok := netaddr.Prefix(er.Dst)
		if !ok {
			continue
		}
		k := routeKey{dst}
		if w := want[k]; w != nil {
			// A differing route to a wanted destination is replaced below.
			if sameRoute(er, w) {
				seen[k] = true
			}
			continue
		}
		name := nameByIndex[er.LinkIndex]
		if !m.owned(er, name) {
			continue
		}
		if IsWorkloadIface(name, m.cfg.InterfacePrefixes) && !wantIfaces[name] && m.cfg.CleanupGrace > 0 &&
			m.now().Sub(m.firstSeen[name]) < m.cfg.CleanupGrace {
			continue
		}
		m.log.WithFields(logrus.Fields{"dst": dst, "iface": name}).Info("removing stale route")
		ops[name] = append(ops[name], func() error {
			if err := m.h.RouteDel(er); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("removing route %s: %w", dst, err)
			}
			return nil
		})
	}
	for k, w := range want {
		if seen[k] {
			continue
		}
		name := nameByIndex[w.LinkIndex]
		ops[name] = append(ops[name], func() error {
			if err := m.h.RouteReplace(w); err != nil {
				return fmt.Errorf("programming route %s: %w", k.dst, err)
			}
			return nil
		})
	}
	// Interface by interface, timing each (felix_route_table_per_iface_sync_seconds).
	for _, name := range sortedKeys(ops) {
		start := m.now()
		for _, op := range ops[name] {
			if err := op(); err != nil {
				errs = append(errs, err)
			}
		}
		if mt := m.cfg.Metrics; mt != nil {
			mt.perIface.Observe(m.now().Sub(start).Seconds())
		}
	}
	return errors.Join(errs...)
}

// parentFor finds the interface whose subnet holds gw.
func (m *Manager) parentFor(gw netip.Addr) netlink.Link {
	if !gw.IsValid() {
		return nil
	}
	addrs, err := m.h.AddrList(nil, family(gw))
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.Contains(gw.AsSlice()) {
			if l, err := m.h.LinkByIndex(a.LinkIndex); err == nil {
				return l
			}
		}
	}
	return nil
}

func family(a netip.Addr) int {
	if a.Is6() {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

func sameRoute(a, b *netlink.Route) bool {
	return a.LinkIndex == b.LinkIndex && a.Protocol == b.Protocol && a.Scope == b.Scope && a.Src.Equal(b.Src) &&
		a.Gw.Equal(b.Gw) && (a.Flags&int(netlink.FLAG_ONLINK)) == (b.Flags&int(netlink.FLAG_ONLINK))
}

// Metrics are the felix_route_table_* collectors.
type Metrics struct {
	listSeconds prometheus.Summary
	perIface    prometheus.Summary
}

// NewMetrics makes unregistered collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		listSeconds: prometheus.NewSummary(prometheus.SummaryOpts{
			Name: "felix_route_table_list_seconds", Help: "Time taken to list all the routes during a resync.",
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}}),
		perIface: prometheus.NewSummary(prometheus.SummaryOpts{
			Name: "felix_route_table_per_iface_sync_seconds", Help: "Time taken to sync each interface",
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}}),
	}
}

// Collectors returns the collectors for registration.
func (mt *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{mt.listSeconds, mt.perIface}
}

// wireguardRulePriority is the priority of the routing rule Calico's
// WireGuard adds (WireguardRoutingRulePriority, default 99).
const wireguardRulePriority = 99

// tidyTables keeps TidyTable4/6 empty: felix uses no route table of its
// RouteTableRanges, and Calico keeps the first two (its WireGuard tables)
// empty while WireGuard is off, so that what an earlier Calico left there
// is removed, along with WireGuard's routing rule pointing at them.
func (m *Manager) tidyTables() error {
	var errs []error
	for _, t := range []struct {
		fam, table int
	}{{netlink.FAMILY_V4, m.cfg.TidyTable4}, {netlink.FAMILY_V6, m.cfg.TidyTable6}} {
		if t.table <= 0 || t.table == unix.RT_TABLE_MAIN || (t.fam == netlink.FAMILY_V6 && !m.cfg.IPv6) {
			continue
		}
		rs, err := m.h.RouteListFiltered(t.fam, &netlink.Route{Table: t.table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing routes of table %d: %w", t.table, err))
			continue
		}
		for i := range rs {
			m.log.WithFields(logrus.Fields{"table": t.table, "dst": rs[i].Dst}).Info("removing route from a table of RouteTableRanges")
			if err := m.h.RouteDel(&rs[i]); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("removing route %v from table %d: %w", rs[i].Dst, t.table, err))
			}
		}
		rules, err := m.h.RuleList(t.fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing routing rules: %w", err))
			continue
		}
		for i := range rules {
			if rules[i].Table != t.table || rules[i].Priority != wireguardRulePriority {
				continue
			}
			m.log.WithFields(logrus.Fields{"table": t.table, "priority": rules[i].Priority}).Info("removing WireGuard routing rule")
			if err := m.h.RuleDel(&rules[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("removing routing rule to table %d: %w", t.table, err))
			}
		}
	}
	return errors.Join(errs...)
}
