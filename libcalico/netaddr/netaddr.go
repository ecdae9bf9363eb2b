// Package netaddr converts between net/netip's values and the net.IP and
// *net.IPNet that netlink, CNI and gobgp use. Addresses come out unmapped:
// a 4-in-6 slice is the IPv4 address.
package netaddr

import (
	"net"
	"net/netip"
)

// Addr is ip as a netip.Addr; false when ip is not 4 or 16 bytes.
func Addr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// Prefix is n as a netip.Prefix, its address kept as it is (an interface
// address is not masked); false when n is nil or malformed.
func Prefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := Addr(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	p := netip.PrefixFrom(a, ones)
	return p, p.IsValid()
}

// IPNet is p as a *net.IPNet (4-byte IP and mask for IPv4).
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
