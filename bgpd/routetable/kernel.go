package routetable

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// Kernel is the real Netlink: the calling process's network namespace.
// Its route dump is retried when interrupted (netlinksafe).
type Kernel struct {
	h netlinksafe.Handle

	mu    sync.Mutex
	index map[string]int // device name -> ifindex
}

var _ Netlink = (*Kernel)(nil)

// NewKernel opens a netlink handle in the current namespace.
func NewKernel() (*Kernel, error) {
	h, err := netlinksafe.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	return &Kernel{h: h, index: map[string]int{}}, nil
}

// Close releases the handle.
func (k *Kernel) Close() { k.h.Close() }

// List implements Netlink.
func (k *Kernel) List(proto int) ([]Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: netlink.RouteProtocol(proto)}
	rs, err := k.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("listing protocol %d routes: %w", proto, err)
	}
	names := map[int]string{}
	out := make([]Route, 0, len(rs))
	for _, r := range rs {
		dst, ok := netaddr.Prefix(r.Dst)
		if !ok {
			continue
		}
		rt := Route{Dst: dst, Blackhole: r.Type == unix.RTN_BLACKHOLE, OnLink: r.Flags&int(netlink.FLAG_ONLINK) != 0, Metric: r.Priority}
		rt.Gw, _ = netaddr.Addr(r.Gw)
		if r.LinkIndex > 0 && !rt.Blackhole {
			name, ok := names[r.LinkIndex]
			if !ok {
				if l, err := k.h.LinkByIndex(r.LinkIndex); err == nil {
					name = l.Attrs().Name
				}
				names[r.LinkIndex] = name
			}
			rt.Dev = name
		}
		out = append(out, rt)
	}
	return out, nil
}

func (k *Kernel) ifindex(dev string) (int, error) {
	k.mu.Lock()
	idx, ok := k.index[dev]
	k.mu.Unlock()
	if ok {
		return idx, nil
	}
	l, err := k.h.LinkByName(dev)
	if err != nil {
		return 0, fmt.Errorf("device %s: %w", dev, err)
	}
	idx = l.Attrs().Index
	k.mu.Lock()
	k.index[dev] = idx
	k.mu.Unlock()
	return idx, nil
}

// Replace implements Netlink.
func (k *Kernel) Replace(r Route, proto int) error {
	nr := &netlink.Route{Dst: netaddr.IPNet(r.Dst), Table: unix.RT_TABLE_MAIN, Protocol: netlink.RouteProtocol(proto), Priority: r.Metric}
	if r.Blackhole {
		nr.Type = unix.RTN_BLACKHOLE
	} else {
		nr.Type = unix.RTN_UNICAST
		if r.Gw.IsValid() {
			nr.Gw = r.Gw.AsSlice()
		}
		if r.Dev != "" {
			idx, err := k.ifindex(r.Dev)
			if err != nil {
				return err
			}
			nr.LinkIndex = idx
		}
		if r.OnLink {
			nr.Flags = int(netlink.FLAG_ONLINK)
		}
	}
	err := k.h.RouteReplace(nr)
	if err != nil && r.Dev != "" && errors.Is(err, syscall.ENODEV) {
		k.mu.Lock()
		delete(k.index, r.Dev) // the device was re-created; look it up again next time
		k.mu.Unlock()
	}
	return err
}

// Delete implements Netlink.
func (k *Kernel) Delete(dst netip.Prefix, proto int) error {
	err := k.h.RouteDel(&netlink.Route{Dst: netaddr.IPNet(dst), Table: unix.RT_TABLE_MAIN, Protocol: netlink.RouteProtocol(proto)})
	if err != nil && (errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT)) {
		return nil
	}
	return err
}

// Lookup implements Netlink.
func (k *Kernel) Lookup(addr netip.Addr) (netip.Addr, string, error) {
	rs, err := k.h.RouteGet(addr.AsSlice())
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("no route to %s: %w", addr, err)
	}
	if len(rs) == 0 {
		return netip.Addr{}, "", fmt.Errorf("no route to %s", addr)
	}
	r := rs[0]
	gw, _ := netaddr.Addr(r.Gw)
	dev := ""
	if r.LinkIndex > 0 {
		l, err := k.h.LinkByIndex(r.LinkIndex)
		if err != nil {
			return netip.Addr{}, "", fmt.Errorf("device of route to %s: %w", addr, err)
		}
		dev = l.Attrs().Name
	}
	if r.Type == unix.RTN_LOCAL {
		return netip.Addr{}, "", fmt.Errorf("%s is a local address", addr)
	}
	return gw, dev, nil
}
