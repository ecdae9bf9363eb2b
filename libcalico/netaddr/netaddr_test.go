package netaddr

import (
	"net"
	"net/netip"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"10.0.0.0/8", "192.168.1.7/32", "0.0.0.0/0", "fd00::/64", "fd00::5/128", "::/0"} {
		p := netip.MustParsePrefix(s)
		got, ok := Prefix(IPNet(p))
		if !ok || got != p {
			t.Errorf("%s: round trip gave %v, %v", s, got, ok)
		}
	}
}

func TestPrefixFromNet(t *testing.T) {
	ip, n, _ := net.ParseCIDR("10.1.2.3/24")
	if p, ok := Prefix(n); !ok || p.String() != "10.1.2.0/24" {
		t.Errorf("10.1.2.0/24 = %v, %v", p, ok)
	}
	// An interface address keeps its host part.
	if p, ok := Prefix(&net.IPNet{IP: ip, Mask: n.Mask}); !ok || p.String() != "10.1.2.3/24" {
		t.Errorf("10.1.2.3/24 = %v, %v", p, ok)
	}
	// An IPv4 address in 16 bytes with a 16-byte mask.
	mapped := &net.IPNet{IP: net.ParseIP("10.1.2.0"), Mask: net.CIDRMask(120, 128)}
	if p, ok := Prefix(mapped); !ok || p.String() != "10.1.2.0/24" {
		t.Errorf("mapped = %v, %v", p, ok)
	}
	for _, bad := range []*net.IPNet{nil, {IP: net.IP{1, 2, 3}, Mask: net.CIDRMask(8, 32)}, {IP: net.IPv4(1, 2, 3, 4), Mask: net.IPMask{255, 0, 255, 0}}} {
		if p, ok := Prefix(bad); ok {
			t.Errorf("%v accepted as %v", bad, p)
		}
	}
	if a, ok := Addr(net.ParseIP("10.0.0.1")); !ok || !a.Is4() {
		t.Errorf("Addr of a 16-byte IPv4 = %v, %v", a, ok)
	}
}
