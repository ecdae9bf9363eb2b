package dataplane

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// Check implements Dataplane. Routes a chained plugin may have added are
// ignored; only what Setup programmed must be present.
func (k *Kernel) Check(req *Request) error {
	addrs, has4, has6 := podAddrs(req.Addrs)
	routes := podRoutes(req.Routes, has4, has6)
	podNS, err := openNS(req.NetNS)
	if err != nil {
		return err
	}
	defer podNS.Close()

	var peerIndex int
	err = podNS.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(req.IfName)
		if err != nil {
			return fmt.Errorf("pod interface %s: %w", req.IfName, err)
		}
		if err := checkLink(link, "veth", req.PodMAC); err != nil {
			return fmt.Errorf("pod interface %s: %w", req.IfName, err)
		}
		peerIndex = link.Attrs().ParentIndex
		if err := checkAddrs(link, addrs); err != nil {
			return fmt.Errorf("pod interface %s: %w", req.IfName, err)
		}
		want := routes
		if has4 {
			want = append([]netip.Prefix{netip.PrefixFrom(IPv4Gateway, 32)}, routes...)
		}
		if err := checkRoutes(link, want, true); err != nil {
			return fmt.Errorf("pod interface %s: %w", req.IfName, err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	host, err := netlink.LinkByName(req.HostIfName)
	if err != nil {
		return fmt.Errorf("host interface %s: %w", req.HostIfName, err)
	}
	if err := checkLink(host, "veth", HostMAC); err != nil {
		return fmt.Errorf("host interface %s: %w", req.HostIfName, err)
	}
	if peerIndex != 0 && peerIndex != host.Attrs().Index {
		return fmt.Errorf("pod interface %s is not paired with host interface %s", req.IfName, req.HostIfName)
	}
	if err := checkRoutes(host, addrs, false); err != nil {
		return fmt.Errorf("host interface %s: %w", req.HostIfName, err)
	}
	var want [][2]string
	if has4 {
		want = append(want, [2]string{"net/ipv4/conf/" + req.HostIfName + "/proxy_arp", "1"})
	}
	if has6 {
		want = append(want, [2]string{"net/ipv6/conf/" + req.HostIfName + "/proxy_ndp", "1"})
	}
	for _, kv := range want {
		b, err := os.ReadFile("/proc/sys/" + kv[0])
		if err != nil {
			return fmt.Errorf("reading %s: %w", kv[0], err)
		}
		if got := strings.TrimSpace(string(b)); got != kv[1] {
			return fmt.Errorf("%s is %s, want %s", kv[0], got, kv[1])
		}
	}
	return nil
}

func checkLink(l netlink.Link, typ string, mac []byte) error {
	if l.Type() != typ {
		return fmt.Errorf("is a %s, want %s", l.Type(), typ)
	}
	if mac != nil && !bytes.Equal(l.Attrs().HardwareAddr, mac) {
		return fmt.Errorf("has MAC %s, want %s", l.Attrs().HardwareAddr, net.HardwareAddr(mac))
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("is down")
	}
	return nil
}

func checkAddrs(l netlink.Link, want []netip.Prefix) error {
	have, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing addresses: %w", err)
	}
	got := map[netip.Prefix]bool{}
	for _, a := range have {
		if p, ok := netaddr.Prefix(a.IPNet); ok {
			got[p] = true
		}
	}
	for _, w := range want {
		if !got[w] {
			return fmt.Errorf("address %s missing", w)
		}
	}
	return nil
}

// checkRoutes reports the first wanted destination with no route on l;
// viaGateway also requires the pod gateway of its family (except for the
// IPv4 gateway's own on-link route).
func checkRoutes(l netlink.Link, want []netip.Prefix, viaGateway bool) error {
	have, err := netlinksafe.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: l.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	for _, w := range want {
		found := false
		for _, r := range have {
			dst, ok := routeDst(r)
			if !ok || dst != w {
				continue
			}
			if viaGateway && w != netip.PrefixFrom(IPv4Gateway, 32) {
				gw, _ := netaddr.Addr(r.Gw)
				if gw != gatewayFor(w) {
					continue
				}
			}
			found = true
			break
		}
		if !found {
			return fmt.Errorf("route to %s missing", w)
		}
	}
	return nil
}

// routeDst returns a route's destination; a nil Dst is the default route
// of the route's family.
func routeDst(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		if r.Family == netlink.FAMILY_V6 {
			return netip.MustParsePrefix("::/0"), true
		}
		return netip.MustParsePrefix("0.0.0.0/0"), true
	}
	return netaddr.Prefix(r.Dst)
}
