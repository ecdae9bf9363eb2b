package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// Kernel is the Dataplane over netlink and /proc/sys.
type Kernel struct {
	log *logrus.Entry
}

var _ Dataplane = (*Kernel)(nil)

// NewKernel returns the real dataplane.
func NewKernel(log *logrus.Entry) *Kernel { return &Kernel{log: log} }

// openNS opens a network namespace by path, mapping "no such
// namespace" (path missing, or no longer a namespace) to ErrNetNSNotFound.
func openNS(path string) (ns.NetNS, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no path given", ErrNetNSNotFound)
	}
	n, err := ns.GetNS(path)
	if err != nil {
		var notExist ns.NSPathNotExistErr
		var notNS ns.NSPathNotNSErr
		if errors.As(err, &notExist) || errors.As(err, &notNS) {
			return nil, fmt.Errorf("%w: %s", ErrNetNSNotFound, path)
		}
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	return n, nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// linkAbsent returns nil when no link has the name, wrapping exists when
// one does.
func linkAbsent(name string, exists error, where string) error {
	_, err := netlink.LinkByName(name)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s", exists, name)
	case isLinkNotFound(err):
		return nil
	default:
		return fmt.Errorf("looking up %s in %s: %w", name, where, err)
	}
}

// hostConflict says why the host-side name of req is taken: by a pair
// into this very pod (ErrAlreadyAttached) or by another one.
func hostConflict(podNS ns.NetNS, req *Request) error {
	host, err := netlink.LinkByName(req.HostIfName)
	if err != nil {
		return fmt.Errorf("creating veth %s: host interface %s exists, and looking it up: %w", req.IfName, req.HostIfName, err)
	}
	if id, err := netlink.GetNetNsIdByFd(int(podNS.Fd())); err == nil && id >= 0 && host.Attrs().NetNsID == id {
		return fmt.Errorf("%w: through %s", ErrAlreadyAttached, req.HostIfName)
	}
	return fmt.Errorf("%w: %s", ErrHostInterfaceExists, req.HostIfName)
}

// Setup implements Dataplane.
func (k *Kernel) Setup(req *Request) (*Result, error) {
	res, err := k.Create(req)
	if err != nil {
		return nil, err
	}
	if err := k.Configure(req); err != nil {
		return nil, err
	}
	return res, nil
}

// errHostNameTaken is Create's note to itself that the host-side name
// exists (see hostConflict).
var errHostNameTaken = errors.New("host-side name taken")

// Create implements Dataplane: the pair is made in the pod namespace with
// its peer already in the host namespace (no move, so no second "up").
func (k *Kernel) Create(req *Request) (_ *Result, err error) {
	podNS, err := openNS(req.NetNS)
	if err != nil {
		return nil, err
	}
	defer podNS.Close()
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return nil, fmt.Errorf("opening the host network namespace: %w", err)
	}
	defer hostNS.Close()

	var podMAC net.HardwareAddr
	err = podNS.Do(func(ns.NetNS) error {
		if err := linkAbsent(req.IfName, ErrInterfaceExists, "the pod"); err != nil {
			return err
		}
		veth := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: req.IfName, MTU: req.MTU, HardwareAddr: req.PodMAC},
			PeerName:         req.HostIfName,
			PeerHardwareAddr: HostMAC,
			PeerNamespace:    netlink.NsFd(int(hostNS.Fd())),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return errHostNameTaken
			}
			return fmt.Errorf("creating veth %s with peer %s: %w", req.IfName, req.HostIfName, err)
		}
		link, err := netlink.LinkByName(req.IfName)
		if err != nil {
			if uerr := deleteLink(req.IfName); uerr != nil {
				k.log.WithError(uerr).Warn("could not remove the half-made interface")
			}
			return fmt.Errorf("looking up %s in the pod: %w", req.IfName, err)
		}
		podMAC = link.Attrs().HardwareAddr
		if !req.Families.Known() {
			return nil
		}
		if err := podLinks(link, req); err != nil {
			if uerr := deleteLink(req.IfName); uerr != nil {
				k.log.WithError(uerr).Warn("could not remove the half-made interface")
			}
			return err
		}
		return nil
	})
	if errors.Is(err, errHostNameTaken) {
		return nil, hostConflict(podNS, req)
	}
	if err != nil {
		return nil, err
	}
	if req.Families.Known() {
		if _, err := hostLinks(req.HostIfName, req.Families); err != nil {
			if uerr := k.DeleteHostVeth(req.HostIfName); uerr != nil {
				k.log.WithError(uerr).Warn("could not remove the half-made interface")
			}
			return nil, err
		}
	}
	return &Result{HostIfName: req.HostIfName, HostMAC: HostMAC, PodMAC: podMAC}, nil
}

// Configure implements Dataplane. The pod side is done first, in one
// visit to its namespace (routes may be added while the peer is still
// down); the host side's sysctls go in before it is brought up (DAD), and
// its /32 routes after.
func (k *Kernel) Configure(req *Request) (err error) {
	log := k.log.WithFields(logrus.Fields{"netns": req.NetNS, "iface": req.IfName, "hostIface": req.HostIfName})
	addrs, has4, has6 := podAddrs(req.Addrs)
	if len(addrs) == 0 {
		return errors.New("no addresses to program")
	}
	fam, linked := Families{V4: has4, V6: has6}, req.Families.Known()
	podNS, err := openNS(req.NetNS)
	if err != nil {
		return err
	}
	defer podNS.Close()
	defer func() {
		if err != nil {
			if uerr := k.undo(podNS, req); uerr != nil {
				log.WithError(uerr).Warn("could not remove the half-made interface")
			}
		}
	}()
	if linked && fam != req.Families {
		return fmt.Errorf("%w: %v", ErrFamilies, req.Addrs)
	}

	err = podNS.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(req.IfName)
		if err != nil {
			return fmt.Errorf("looking up %s in the pod: %w", req.IfName, err)
		}
		if !linked {
			r := *req
			r.Families = fam
			if err := podLinks(link, &r); err != nil {
				return err
			}
		}
		return podAddresses(link, addrs)
	})
	if err != nil {
		return err
	}

	var host netlink.Link
	if linked {
		host, err = netlink.LinkByName(req.HostIfName)
		if err != nil {
			return fmt.Errorf("looking up %s on the host: %w", req.HostIfName, err)
		}
	} else if host, err = hostLinks(req.HostIfName, fam); err != nil {
		return err
	}
	for _, a := range addrs {
		if err := addHostRoute(host, a); err != nil {
			return err
		}
	}
	log.WithField("addrs", addrs).Debug("workload interface programmed")
	return nil
}

// podLinks brings the pod side up for req.Families: IPv6 sysctls (before
// up, for DAD), link up, gateway route, routes and forwarding. It runs
// inside the pod's namespace.
func podLinks(link netlink.Link, req *Request) error {
	fam := req.Families
	if fam.V6 {
		if err := podIPv6Sysctls(req.IfName); err != nil {
			return err
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting %s up in the pod: %w", req.IfName, err)
	}
	idx := link.Attrs().Index
	name := link.Attrs().Name
	if fam.V4 {
		gw := &netlink.Route{LinkIndex: idx, Scope: netlink.SCOPE_LINK, Dst: netaddr.IPNet(netip.PrefixFrom(IPv4Gateway, 32))}
		if err := netlink.RouteAdd(gw); err != nil {
			return fmt.Errorf("adding route to %s dev %s in the pod: %w", IPv4Gateway, name, err)
		}
	}
	for _, r := range podRoutes(req.Routes, fam.V4, fam.V6) {
		gw := gatewayFor(r)
		rt := &netlink.Route{LinkIndex: idx, Dst: netaddr.IPNet(r), Gw: net.IP(gw.AsSlice())}
		if err := netlink.RouteAdd(rt); err != nil {
			return fmt.Errorf("adding route %s via %s dev %s in the pod: %w", r, gw, name, err)
		}
	}
	return podForwarding(fam.V4, fam.V6, req.AllowIPForwarding)
}

// podAddresses adds the pod's addresses; it runs inside the pod's
// namespace.
func podAddresses(link netlink.Link, addrs []netip.Prefix) error {
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: netaddr.IPNet(a)}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("adding address %s to %s in the pod: %w", a, link.Attrs().Name, err)
		}
	}
	return nil
}

// hostLinks sets the host side's sysctls for fam and brings it up.
func hostLinks(name string, fam Families) (netlink.Link, error) {
	host, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("looking up %s on the host: %w", name, err)
	}
	if err := hostSysctls(name, fam.V4, fam.V6); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return nil, fmt.Errorf("setting %s up on the host: %w", name, err)
	}
	return host, nil
}

// addHostRoute adds "<addr> dev <host> scope link", accepting the same
// route already there (felix may have programmed it) and naming the
// interface of a conflicting one.
func addHostRoute(host netlink.Link, a netip.Prefix) error {
	name := host.Attrs().Name
	rt := &netlink.Route{LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK, Dst: netaddr.IPNet(a)}
	err := netlink.RouteAdd(rt)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding host route %s dev %s: %w", a, name, err)
	}
	existing, lerr := netlinksafe.RouteListFiltered(family(a), &netlink.Route{Dst: netaddr.IPNet(a)}, netlink.RT_FILTER_DST)
	if lerr != nil {
		return fmt.Errorf("adding host route %s dev %s: %w (and listing routes: %v)", a, name, err, lerr)
	}
	other := "unknown"
	for _, r := range existing {
		if r.LinkIndex == host.Attrs().Index {
			return nil
		}
		if l, e := netlink.LinkByIndex(r.LinkIndex); e == nil {
			other = l.Attrs().Name
		}
	}
	return fmt.Errorf("adding host route %s dev %s: a route to it already exists via %s: %w", a, name, other, err)
}

// undo removes a half-made pair: deleting either end deletes both.
func (k *Kernel) undo(podNS ns.NetNS, req *Request) error {
	if err := k.DeleteHostVeth(req.HostIfName); err != nil {
		return err
	}
	return podNS.Do(func(ns.NetNS) error { return deleteLink(req.IfName) })
}

// deleteLink deletes a link in the current namespace; absent is success.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// Teardown implements Dataplane. The host side is found as the pod
// side's peer (not by name: a Kubernetes pod's later sandbox reuses the
// name); its routes go first, then the pair.
func (k *Kernel) Teardown(netnsPath, ifName string, detached func()) error {
	if netnsPath == "" {
		return nil
	}
	podNS, err := openNS(netnsPath)
	if errors.Is(err, ErrNetNSNotFound) {
		k.log.WithField("netns", netnsPath).Debug("pod network namespace already gone")
		return nil
	}
	if err != nil {
		return err
	}
	defer podNS.Close()
	var podIndex, peerIndex int
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if isLinkNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("looking up %s in the pod: %w", ifName, err)
		}
		podIndex, peerIndex = l.Attrs().Index, l.Attrs().ParentIndex
		return nil
	})
	if err != nil || podIndex == 0 {
		return err
	}
	if detached != nil {
		if err := detachHost(podIndex, peerIndex); err != nil {
			return err
		}
		detached()
	}
	return podNS.Do(func(ns.NetNS) error { return deleteLink(ifName) })
}

// detachHost deletes the routes of the host side of a pair, found by
// index and checked to be a veth whose peer is the pod side, so that an
// index from another namespace can never hit a host interface.
func detachHost(podIndex, peerIndex int) error {
	if peerIndex == 0 {
		return nil
	}
	host, err := netlink.LinkByIndex(peerIndex)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up the host side of the pod interface: %w", err)
	}
	if host.Type() != "veth" || host.Attrs().ParentIndex != podIndex {
		return nil
	}
	routes, err := netlinksafe.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: peerIndex}, netlink.RT_FILTER_OIF)
	if err != nil {
		return fmt.Errorf("listing routes of %s: %w", host.Attrs().Name, err)
	}
	for _, r := range routes {
		// Only routes to single addresses: ours (and felix's); the
		// kernel's own fe80::/64 goes with the link.
		if ones, bits := maskSize(r.Dst); ones != bits {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("deleting route %s dev %s: %w", r.Dst, host.Attrs().Name, err)
		}
	}
	return nil
}

// DeleteHostVeth implements Dataplane. Only a veth is deleted, so a
// wrong name never takes down another kind of interface.
func (k *Kernel) DeleteHostVeth(name string) error {
	l, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s on the host: %w", name, err)
	}
	if l.Type() != "veth" {
		return fmt.Errorf("host interface %s is a %s, not a veth: not deleting it", name, l.Type())
	}
	if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("deleting %s on the host: %w", name, err)
	}
	return nil
}

// DeletePair implements Dataplane. The pod side must be a veth whose
// peer is the host's HostIfName: same index, and that one's peer is the
// pod side, in the pod's namespace.
func (k *Kernel) DeletePair(req *Request) (bool, error) {
	podNS, err := openNS(req.NetNS)
	if err != nil {
		return false, err
	}
	defer podNS.Close()
	var podIndex, peerIndex int
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(req.IfName)
		if isLinkNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("looking up %s in the pod: %w", req.IfName, err)
		}
		if l.Type() == "veth" {
			podIndex, peerIndex = l.Attrs().Index, l.Attrs().ParentIndex
		}
		return nil
	})
	if err != nil || podIndex == 0 || peerIndex == 0 {
		return false, err
	}
	host, err := netlink.LinkByName(req.HostIfName)
	if isLinkNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up %s on the host: %w", req.HostIfName, err)
	}
	id, err := netlink.GetNetNsIdByFd(int(podNS.Fd()))
	if err != nil || id < 0 || host.Type() != "veth" || host.Attrs().Index != peerIndex ||
		host.Attrs().ParentIndex != podIndex || host.Attrs().NetNsID != id {
		return false, nil
	}
	if err := netlink.LinkDel(host); err != nil && !isLinkNotFound(err) {
		return false, fmt.Errorf("deleting %s on the host: %w", req.HostIfName, err)
	}
	k.log.WithFields(logrus.Fields{"iface": req.IfName, "hostIface": req.HostIfName}).Info("deleted the veth an earlier ADD of this attachment left")
	return true, nil
}

// sysctl writes one value under /proc/sys in the current namespace.
func sysctl(path, value string) error {
	f, err := os.OpenFile("/proc/sys/"+path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("setting %s=%s: %w", path, value, err)
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("setting %s=%s: %w", path, value, err)
	}
	return nil
}

func sysctls(kv [][2]string) error {
	for _, s := range kv {
		if err := sysctl(s[0], s[1]); err != nil {
			return err
		}
	}
	return nil
}

// hostSysctls are Calico's settings of the host-side interface.
func hostSysctls(name string, has4, has6 bool) error {
	var kv [][2]string
	if has4 {
		kv = append(kv,
			[2]string{"net/ipv4/conf/" + name + "/route_localnet", "1"},
			[2]string{"net/ipv4/neigh/" + name + "/proxy_delay", "0"},
			[2]string{"net/ipv4/conf/" + name + "/proxy_arp", "1"},
			[2]string{"net/ipv4/conf/" + name + "/forwarding", "1"},
		)
	}
	if has6 {
		kv = append(kv,
			[2]string{"net/ipv6/conf/" + name + "/disable_ipv6", "0"},
			[2]string{"net/ipv6/conf/" + name + "/accept_dad", "0"},
			[2]string{"net/ipv6/conf/" + name + "/proxy_ndp", "1"},
			[2]string{"net/ipv6/conf/" + name + "/forwarding", "1"},
			[2]string{"net/ipv6/conf/" + name + "/accept_ra", "0"},
		)
	}
	return sysctls(kv)
}

// podIPv6Sysctls makes sure IPv6 is on in the pod and turns DAD off on
// the point-to-point link, before it is brought up.
func podIPv6Sysctls(name string) error {
	return sysctls([][2]string{
		{"net/ipv6/conf/all/disable_ipv6", "0"},
		{"net/ipv6/conf/default/disable_ipv6", "0"},
		{"net/ipv6/conf/lo/disable_ipv6", "0"},
		{"net/ipv6/conf/" + name + "/disable_ipv6", "0"},
		{"net/ipv6/conf/" + name + "/accept_dad", "0"},
	})
}

// podForwarding sets forwarding in the pod for each family it has.
func podForwarding(has4, has6, forward bool) error {
	v := "0"
	if forward {
		v = "1"
	}
	var kv [][2]string
	if has4 {
		kv = append(kv, [2]string{"net/ipv4/ip_forward", v})
	}
	if has6 {
		kv = append(kv, [2]string{"net/ipv6/conf/all/forwarding", v})
	}
	return sysctls(kv)
}

// maskSize is net.IPMask.Size of a destination; a nil one (the default
// route) is 0/0.
func maskSize(n *net.IPNet) (ones, bits int) {
	if n == nil {
		return 0, 0
	}
	ones, bits = n.Mask.Size()
	if bits == 0 {
		return 0, 0
	}
	return ones, bits
}

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
