package routes

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeKernel is a stateful Kernel. Routes are keyed as the kernel's FIB
// keys them, by table, destination and metric, so RouteReplace of a route
// on another interface moves it; RouteDel matches the fields it is given
// (as fib_table_delete) and RouteListFiltered applies the filter mask as
// netlink does. Deleting a link deletes its addresses, routes and
// neighbours. Unlike the kernel it adds no routes of its own (connected
// and local routes of addresses).
type fakeKernel struct {
	mu        sync.Mutex
	links     map[int]netlink.Link
	nextIndex int
	addrs     []netlink.Addr
	routes    map[fakeRouteKey]netlink.Route
	neighs    map[fakeNeighKey]netlink.Neigh
	rules     []netlink.Rule

	// interrupt[dump] is how many more calls of that dump method fail
	// with netlink.ErrDumpInterrupted (returning what netlink v1.3 does:
	// nothing for routes, a partial list otherwise).
	interrupt map[string]int
	// writes counts the calls that change route state.
	writes int
}

type fakeRouteKey struct {
	table    int
	dst      string
	priority int
}

type fakeNeighKey struct {
	index, family int
	addr          string // IP, or MAC of an FDB entry
}

var _ Kernel = (*fakeKernel)(nil)

func newFakeKernel() *fakeKernel {
	f := &fakeKernel{links: map[int]netlink.Link{}, nextIndex: 1,
		routes: map[fakeRouteKey]netlink.Route{}, neighs: map[fakeNeighKey]netlink.Neigh{}, interrupt: map[string]int{}}
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", MTU: 65536}}
	if err := f.LinkAdd(lo); err != nil {
		panic(err)
	}
	if err := f.LinkSetUp(lo); err != nil {
		panic(err)
	}
	return f
}

// interrupted reports whether this call of dump is to fail.
func (f *fakeKernel) interrupted(dump string) bool {
	if f.interrupt[dump] > 0 {
		f.interrupt[dump]--
		return true
	}
	return false
}

// copyLink returns a shallow copy, so callers never share the fake's state.
func copyLink(l netlink.Link) netlink.Link {
	v := reflect.New(reflect.TypeOf(l).Elem())
	v.Elem().Set(reflect.ValueOf(l).Elem())
	return v.Interface().(netlink.Link)
}

func (f *fakeKernel) byName(name string) netlink.Link {
	for _, l := range f.links {
		if l.Attrs().Name == name {
			return l
		}
	}
	return nil
}

// stored returns the fake's own copy of l, found by index or else name.
func (f *fakeKernel) stored(l netlink.Link) (netlink.Link, error) {
	if s := f.links[l.Attrs().Index]; s != nil {
		return s, nil
	}
	if s := f.byName(l.Attrs().Name); s != nil && l.Attrs().Index == 0 {
		return s, nil
	}
	return nil, unix.ENODEV
}

func (f *fakeKernel) LinkList() ([]netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	idx := make([]int, 0, len(f.links))
	for i := range f.links {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	out := make([]netlink.Link, 0, len(idx))
	for _, i := range idx {
		out = append(out, copyLink(f.links[i]))
	}
	if f.interrupted("LinkList") {
		return out[:len(out)/2], netlink.ErrDumpInterrupted
	}
	return out, nil
}

func (f *fakeKernel) LinkByName(name string) (netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.byName(name); l != nil {
		return copyLink(l), nil
	}
	return nil, netlink.LinkNotFoundError{}
}

func (f *fakeKernel) LinkByIndex(index int) (netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.links[index]; l != nil {
		return copyLink(l), nil
	}
	return nil, netlink.LinkNotFoundError{}
}

func (f *fakeKernel) LinkAdd(link netlink.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byName(link.Attrs().Name) != nil {
		return unix.EEXIST
	}
	l := copyLink(link)
	a := l.Attrs()
	a.Index = f.nextIndex
	f.nextIndex++
	if a.MTU == 0 {
		a.MTU = 1500
	}
	if a.HardwareAddr == nil {
		a.HardwareAddr = net.HardwareAddr{0x02, 0, 0, 0, 0, byte(a.Index)}
	}
	f.links[a.Index] = l
	return nil
}

func (f *fakeKernel) LinkDel(link netlink.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, err := f.stored(link)
	if err != nil {
		return err
	}
	idx := l.Attrs().Index
	delete(f.links, idx)
	f.addrs = slices.DeleteFunc(f.addrs, func(a netlink.Addr) bool { return a.LinkIndex == idx })
	for k, r := range f.routes {
		if r.LinkIndex == idx {
			delete(f.routes, k)
		}
	}
	for k := range f.neighs {
		if k.index == idx {
			delete(f.neighs, k)
		}
	}
	return nil
}

func (f *fakeKernel) setAttr(link netlink.Link, set func(*netlink.LinkAttrs)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, err := f.stored(link)
	if err != nil {
		return err
	}
	set(l.Attrs())
	return nil
}

func (f *fakeKernel) LinkSetUp(link netlink.Link) error {
	return f.setAttr(link, func(a *netlink.LinkAttrs) { a.Flags |= net.FlagUp; a.OperState = netlink.OperUp })
}

func (f *fakeKernel) LinkSetMTU(link netlink.Link, mtu int) error {
	return f.setAttr(link, func(a *netlink.LinkAttrs) { a.MTU = mtu })
}

func (f *fakeKernel) LinkSetHardwareAddr(link netlink.Link, hwaddr net.HardwareAddr) error {
	return f.setAttr(link, func(a *netlink.LinkAttrs) { a.HardwareAddr = slices.Clone(hwaddr) })
}

func fam(ip net.IP) int {
	if ip.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func (f *fakeKernel) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netlink.Addr
	for _, a := range f.addrs {
		if (link == nil || a.LinkIndex == link.Attrs().Index) && (family == netlink.FAMILY_ALL || fam(a.IP) == family) {
			out = append(out, a)
		}
	}
	if f.interrupted("AddrList") {
		return out[:len(out)/2], netlink.ErrDumpInterrupted
	}
	return out, nil
}

func sameAddr(a, b netlink.Addr) bool {
	return a.LinkIndex == b.LinkIndex && a.IP.Equal(b.IP) && bytes.Equal(a.Mask, b.Mask)
}

func (f *fakeKernel) AddrReplace(link netlink.Link, addr *netlink.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, err := f.stored(link)
	if err != nil {
		return err
	}
	a := *addr
	a.IPNet = &net.IPNet{IP: slices.Clone(addr.IP), Mask: slices.Clone(addr.Mask)}
	a.LinkIndex = l.Attrs().Index
	for i := range f.addrs {
		if sameAddr(f.addrs[i], a) {
			f.addrs[i] = a
			return nil
		}
	}
	f.addrs = append(f.addrs, a)
	return nil
}

func (f *fakeKernel) AddrDel(link netlink.Link, addr *netlink.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, err := f.stored(link)
	if err != nil {
		return err
	}
	a := *addr
	a.LinkIndex = l.Attrs().Index
	n := len(f.addrs)
	f.addrs = slices.DeleteFunc(f.addrs, func(b netlink.Addr) bool { return sameAddr(a, b) })
	if len(f.addrs) == n {
		return unix.EADDRNOTAVAIL
	}
	return nil
}

// filledRoute fills in what the kernel does for a route it is given.
func filledRoute(r netlink.Route) netlink.Route {
	if r.Table == 0 {
		r.Table = unix.RT_TABLE_MAIN
	}
	if r.Type == 0 {
		r.Type = unix.RTN_UNICAST
	}
	if r.Protocol == 0 {
		r.Protocol = unix.RTPROT_BOOT
	}
	r.Family = fam(r.Dst.IP)
	if r.Family == netlink.FAMILY_V6 && r.Priority == 0 {
		r.Priority = 1024
	}
	r.Dst = &net.IPNet{IP: slices.Clone(r.Dst.IP), Mask: slices.Clone(r.Dst.Mask)}
	return r
}

func routeKeyOf(r netlink.Route) fakeRouteKey {
	return fakeRouteKey{table: r.Table, dst: r.Dst.String(), priority: r.Priority}
}

func (f *fakeKernel) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	if filter == nil {
		panic("RouteListFiltered: nil filter (netlink dereferences it)")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.interrupted("RouteListFiltered") {
		return nil, netlink.ErrDumpInterrupted
	}
	var out []netlink.Route
	for _, r := range f.routes {
		if family != netlink.FAMILY_ALL && r.Family != family {
			continue
		}
		if r.Table != unix.RT_TABLE_MAIN && mask&netlink.RT_FILTER_TABLE == 0 {
			continue
		}
		switch {
		case mask&netlink.RT_FILTER_TABLE != 0 && filter.Table != unix.RT_TABLE_UNSPEC && r.Table != filter.Table,
			mask&netlink.RT_FILTER_PROTOCOL != 0 && r.Protocol != filter.Protocol,
			mask&netlink.RT_FILTER_SCOPE != 0 && r.Scope != filter.Scope,
			mask&netlink.RT_FILTER_TYPE != 0 && r.Type != filter.Type,
			mask&netlink.RT_FILTER_OIF != 0 && r.LinkIndex != filter.LinkIndex,
			mask&netlink.RT_FILTER_GW != 0 && !r.Gw.Equal(filter.Gw),
			mask&netlink.RT_FILTER_SRC != 0 && !r.Src.Equal(filter.Src),
			mask&netlink.RT_FILTER_DST != 0 && (filter.Dst == nil || r.Dst.String() != filter.Dst.String()):
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b netlink.Route) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.Dst.String(), b.Dst.String()), cmp.Compare(a.Priority, b.Priority))
	})
	return out, nil
}

func (f *fakeKernel) RouteReplace(route *netlink.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if route.Dst == nil {
		return unix.EINVAL
	}
	if route.LinkIndex != 0 && f.links[route.LinkIndex] == nil {
		return unix.ENODEV
	}
	r := filledRoute(*route)
	f.routes[routeKeyOf(r)] = r
	f.writes++
	return nil
}

func (f *fakeKernel) RouteDel(route *netlink.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if route.Dst == nil {
		return unix.EINVAL
	}
	want := *route
	if want.Table == 0 {
		want.Table = unix.RT_TABLE_MAIN
	}
	var keys []fakeRouteKey
	for k, r := range f.routes {
		if r.Table != want.Table || r.Dst.String() != want.Dst.String() {
			continue
		}
		if (want.Priority != 0 && r.Priority != want.Priority) || (want.Protocol != 0 && r.Protocol != want.Protocol) ||
			(want.LinkIndex != 0 && r.LinkIndex != want.LinkIndex) || (want.Gw != nil && !r.Gw.Equal(want.Gw)) ||
			(want.Type != 0 && r.Type != want.Type) {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return unix.ESRCH
	}
	// The kernel deletes the first match: the lowest metric.
	slices.SortFunc(keys, func(a, b fakeRouteKey) int { return cmp.Compare(a.priority, b.priority) })
	delete(f.routes, keys[0])
	f.writes++
	return nil
}

func neighKeyOf(n *netlink.Neigh) fakeNeighKey {
	k := fakeNeighKey{index: n.LinkIndex, family: n.Family, addr: n.IP.String()}
	if n.Family == unix.AF_BRIDGE {
		k.addr = n.HardwareAddr.String()
	}
	return k
}

func (f *fakeKernel) NeighList(linkIndex, family int) ([]netlink.Neigh, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netlink.Neigh
	for _, n := range f.neighs {
		if (linkIndex == 0 || n.LinkIndex == linkIndex) && (family == netlink.FAMILY_ALL || n.Family == family) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b netlink.Neigh) int {
		return cmp.Compare(fmt.Sprint(neighKeyOf(&a)), fmt.Sprint(neighKeyOf(&b)))
	})
	if f.interrupted("NeighList") {
		return out[:len(out)/2], netlink.ErrDumpInterrupted
	}
	return out, nil
}

func (f *fakeKernel) NeighSet(neigh *netlink.Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.links[neigh.LinkIndex] == nil {
		return unix.ENODEV
	}
	n := *neigh
	n.IP, n.HardwareAddr = slices.Clone(n.IP), slices.Clone(n.HardwareAddr)
	f.neighs[neighKeyOf(&n)] = n
	return nil
}

func (f *fakeKernel) NeighDel(neigh *netlink.Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := neighKeyOf(neigh)
	if _, ok := f.neighs[k]; !ok {
		return unix.ENOENT
	}
	delete(f.neighs, k)
	return nil
}

func (f *fakeKernel) RuleList(family int) ([]netlink.Rule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netlink.Rule
	for _, r := range f.rules {
		if family == netlink.FAMILY_ALL || r.Family == family {
			out = append(out, r)
		}
	}
	if f.interrupted("RuleList") {
		return out[:len(out)/2], netlink.ErrDumpInterrupted
	}
	return out, nil
}

func (f *fakeKernel) RuleDel(rule *netlink.Rule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r.Family == rule.Family && r.Table == rule.Table && r.Priority == rule.Priority {
			f.rules = slices.Delete(f.rules, i, i+1)
			return nil
		}
	}
	return unix.ENOENT
}

// Test helpers.

// addLink adds an up dummy interface and returns its index.
func (f *fakeKernel) addLink(name string) int {
	if err := f.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		panic(err)
	}
	l, _ := f.LinkByName(name)
	if err := f.LinkSetUp(l); err != nil {
		panic(err)
	}
	return l.Attrs().Index
}

// routeStrings describes the routes of one table, one a string, in the
// manner of `ip route`.
func (f *fakeKernel) routeStrings(table int) []string {
	rs, err := f.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for _, r := range rs {
		s := r.Dst.String()
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		if l := f.links[r.LinkIndex]; l != nil {
			s += " dev " + l.Attrs().Name
		}
		s += fmt.Sprintf(" proto %d", r.Protocol)
		if r.Scope == netlink.SCOPE_LINK {
			s += " scope link"
		}
		if r.Src != nil {
			s += " src " + r.Src.String()
		}
		out = append(out, s)
	}
	return out
}
