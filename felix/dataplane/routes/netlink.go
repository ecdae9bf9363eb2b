package routes

import (
	"errors"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// Kernel is the netlink shim: the calls the Manager makes. NewKernel
// gives the real one; tests use a fake.
type Kernel interface {
	LinkList() ([]netlink.Link, error)
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	LinkSetMTU(link netlink.Link, mtu int) error
	LinkSetHardwareAddr(link netlink.Link, hwaddr net.HardwareAddr) error

	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrReplace(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error

	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error

	NeighList(linkIndex, family int) ([]netlink.Neigh, error)
	NeighSet(neigh *netlink.Neigh) error
	NeighDel(neigh *netlink.Neigh) error

	RuleList(family int) ([]netlink.Rule, error)
	RuleDel(rule *netlink.Rule) error
}

// NewKernel returns h (nil: the current namespace) as a Kernel whose
// dumps are retried when interrupted (netlink.ErrDumpInterrupted):
// netlinksafe's for links, routes and rules, dumpRetry's for addresses and
// neighbours, which netlinksafe.Handle does not wrap.
func NewKernel(h *netlink.Handle) Kernel {
	if h == nil {
		h = &netlink.Handle{}
	}
	return kernel{&netlinksafe.Handle{Handle: h}}
}

type kernel struct{ *netlinksafe.Handle }

func (k kernel) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	return dumpRetry(func() ([]netlink.Addr, error) { return k.Handle.Handle.AddrList(link, family) })
}

func (k kernel) NeighList(linkIndex, family int) ([]netlink.Neigh, error) {
	return dumpRetry(func() ([]netlink.Neigh, error) { return k.Handle.Handle.NeighList(linkIndex, family) })
}

// dumpAttempts is how often a dump is tried before its interruption is
// returned (as netlinksafe).
const dumpAttempts = 5

// dumpRetry runs dump until it is not interrupted, at most dumpAttempts
// times. A dump still interrupted returns the error: its partial result
// must not be taken for the kernel's state.
func dumpRetry[T any](dump func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range dumpAttempts {
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}
