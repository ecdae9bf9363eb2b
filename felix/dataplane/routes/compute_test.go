package routes

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/felix/dpapi"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// text renders a Desired the way `ip` would describe it, one object a line.
func text(d *Desired) string {
	var b strings.Builder
	for _, v := range []*VXLAN{d.VXLAN, d.VXLANV6} {
		if v != nil {
			fmt.Fprintf(&b, "link %s type vxlan id %d dstport %d local %s nolearning mtu %d mac %q addr %s\n",
				v.Name, v.VNI, v.Port, v.LocalIP, v.MTU, v.MAC, v.Addr)
		}
	}
	if i := d.IPIP; i != nil {
		fmt.Fprintf(&b, "link %s type ipip mtu %d addr %s\n", i.Name, i.MTU, i.Addr)
	}
	for _, i := range d.Ifaces {
		fmt.Fprintf(&b, "sysctls %s ipv6=%v\n", i.Name, i.IPv6)
	}
	for _, r := range d.Routes {
		fmt.Fprintf(&b, "route %s", r.Dst)
		if r.Gw.IsValid() {
			fmt.Fprintf(&b, " via %s", r.Gw)
		}
		fmt.Fprintf(&b, " dev %s", r.Dev)
		if r.LinkScope {
			b.WriteString(" scope link")
		}
		if r.OnLink {
			b.WriteString(" onlink")
		}
		b.WriteString("\n")
	}
	for _, n := range d.Neighs {
		fmt.Fprintf(&b, "neigh %s lladdr %s dev %s permanent\n", n.IP, n.MAC, n.Dev)
	}
	for _, f := range d.FDBs {
		fmt.Fprintf(&b, "fdb %s dst %s dev %s permanent\n", f.MAC, f.Dst, f.Dev)
	}
	for _, p := range d.Problems {
		fmt.Fprintf(&b, "problem %s\n", p)
	}
	return b.String()
}

func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func a(s string) netip.Addr   { return netip.MustParseAddr(s) }

func encapState(vxlan, ipip dpapi.EncapMode) *dpapi.State {
	return &dpapi.State{
		InSync: true,
		Workloads: map[dpapi.WorkloadID]*dpapi.Workload{
			"ns/a": {Iface: "calia", MAC: "EE:EE:EE:EE:EE:01", IPv4: []netip.Prefix{p("10.65.0.2/32")}, IPv6: []netip.Prefix{p("fd00::2/128")}},
			"ns/b": {Iface: "calib", IPv4: []netip.Prefix{p("10.65.0.3/32")}},
		},
		Pools: map[string]*dpapi.Pool{
			"vx":   {CIDR: p("10.65.0.0/16"), VXLAN: vxlan},
			"ipip": {CIDR: p("10.66.0.0/16"), IPIP: ipip},
			"bgp":  {CIDR: p("10.67.0.0/16")},
		},
		Hosts: map[string]*dpapi.Host{
			"me":     {IPv4: p("192.168.1.10/24"), VXLANTunnelAddr: a("10.65.0.1"), VXLANTunnelMAC: "66:00:00:00:00:0a", IPIPTunnelAddr: a("10.66.0.1")},
			"near":   {IPv4: p("192.168.1.20/24"), VXLANTunnelAddr: a("10.65.1.1"), VXLANTunnelMAC: "66:00:00:00:00:14"},
			"far":    {IPv4: p("192.168.2.30/24"), VXLANTunnelAddr: a("10.65.2.1"), VXLANTunnelMAC: "66:00:00:00:00:1e"},
			"noaddr": {},
		},
		RemoteBlocks: []dpapi.RemoteBlock{
			{CIDR: p("10.65.1.0/26"), Host: "near"},
			{CIDR: p("10.65.2.0/26"), Host: "far"},
			{CIDR: p("10.66.1.0/26"), Host: "near"},
			{CIDR: p("10.66.2.0/26"), Host: "far"},
			{CIDR: p("10.67.2.0/26"), Host: "far"},    // BGP-only pool: no route from felix
			{CIDR: p("10.68.0.0/26"), Host: "far"},    // in no pool
			{CIDR: p("10.65.0.0/26"), Host: "me"},     // our own block
			{CIDR: p("10.65.9.0/26"), Host: "noaddr"}, // host without an address
		},
	}
}

func TestComputeGolden(t *testing.T) {
	for _, tc := range []struct {
		name        string
		vxlan, ipip dpapi.EncapMode
		cfg         Config
	}{
		{"always", dpapi.EncapAlways, dpapi.EncapAlways, Config{Hostname: "me"}},
		{"crosssubnet", dpapi.EncapCrossSubnet, dpapi.EncapCrossSubnet, Config{Hostname: "me", IPv6: true, VXLANMTU: 1400, IPIPMTU: 1440}},
		{"never", dpapi.EncapNever, dpapi.EncapNever, Config{Hostname: "me"}},
		{"nohostip", dpapi.EncapAlways, dpapi.EncapNever, Config{Hostname: "stranger"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := text(Compute(encapState(tc.vxlan, tc.ipip), tc.cfg))
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// The key decisions, stated directly as well as in the golden files.
func TestComputeEncapsulationDecisions(t *testing.T) {
	d := Compute(encapState(dpapi.EncapCrossSubnet, dpapi.EncapCrossSubnet), Config{Hostname: "me"})
	got := text(d)
	for _, want := range []string{
		"route 10.65.1.0/26 via 192.168.1.20 dev @parent\n",          // VXLAN, same subnet: direct
		"route 10.65.2.0/26 via 10.65.2.1 dev vxlan.calico onlink\n", // VXLAN, other subnet: tunnel
		"route 10.66.1.0/26 via 192.168.1.20 dev @parent\n",          // IPIP, same subnet: direct
		"route 10.66.2.0/26 via 192.168.2.30 dev tunl0 onlink\n",     // IPIP, other subnet: tunnel
		"route 10.65.0.2/32 dev calia scope link\n",                  // workload
		"link vxlan.calico type vxlan id 4096 dstport 4789 local 192.168.1.10",
		"link tunl0 type ipip mtu 0 addr 10.66.0.1/32",
		"neigh 10.65.0.2 lladdr ee:ee:ee:ee:ee:01 dev calia permanent",
		"fdb 66:00:00:00:00:1e dst 192.168.2.30 dev vxlan.calico permanent",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	for _, bad := range []string{"10.67.2.0", "10.68.0.0", "10.65.0.0/26", "10.65.9.0", "fd00::2"} {
		if strings.Contains(got, bad) {
			t.Errorf("unexpected %q in\n%s", bad, got)
		}
	}
}

// vxlan6State is a dual-stack cluster whose IPv6 pool uses VXLAN: near
// shares this host's IPv6 subnet, far does not.
func vxlan6State(mode dpapi.EncapMode) *dpapi.State {
	s := encapState(dpapi.EncapNever, dpapi.EncapNever)
	s.Pools["vx6"] = &dpapi.Pool{CIDR: p("fd00:65::/64"), VXLAN: mode}
	set := func(name, ip6, tun6, mac string) {
		h := s.Hosts[name]
		h.IPv6, h.VXLANTunnelAddrV6, h.VXLANTunnelMACV6 = p(ip6), a(tun6), mac
	}
	set("me", "fd00:1::10/64", "fd00:65::1", "66:00:00:00:06:0a")
	set("near", "fd00:1::20/64", "fd00:65::1:1", "66:00:00:00:06:14")
	set("far", "fd00:2::30/64", "fd00:65::2:1", "66:00:00:00:06:1e")
	s.RemoteBlocks = append(s.RemoteBlocks,
		dpapi.RemoteBlock{CIDR: p("fd00:65::1:0/122"), Host: "near"},
		dpapi.RemoteBlock{CIDR: p("fd00:65::2:0/122"), Host: "far"},
		dpapi.RemoteBlock{CIDR: p("fd00:65::/122"), Host: "me"})
	return s
}

func TestComputeIPv6VXLAN(t *testing.T) {
	d := Compute(vxlan6State(dpapi.EncapCrossSubnet), Config{Hostname: "me", IPv6: true})
	got := text(d)
	for _, want := range []string{
		"link vxlan-v6.calico type vxlan id 4096 dstport 4789 local fd00:1::10 nolearning mtu 0 mac \"66:00:00:00:06:0a\" addr fd00:65::1/128\n",
		"route fd00:65::1:0/122 via fd00:1::20 dev @parent\n",                  // same subnet: direct
		"route fd00:65::2:0/122 via fd00:65::2:1 dev vxlan-v6.calico onlink\n", // other subnet: tunnel
		"neigh fd00:65::2:1 lladdr 66:00:00:00:06:1e dev vxlan-v6.calico permanent\n",
		"fdb 66:00:00:00:06:1e dst fd00:2::30 dev vxlan-v6.calico permanent\n",
		"fdb 66:00:00:00:06:14 dst fd00:1::20 dev vxlan-v6.calico permanent\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "link vxlan.calico") || strings.Contains(got, "fd00:65::/122") {
		t.Errorf("IPv4 device or own block:\n%s", got)
	}

	always := text(Compute(vxlan6State(dpapi.EncapAlways), Config{Hostname: "me", IPv6: true}))
	if !strings.Contains(always, "route fd00:65::1:0/122 via fd00:65::1:1 dev vxlan-v6.calico onlink\n") {
		t.Errorf("Always: same-subnet block not encapsulated:\n%s", always)
	}
	// Without IPv6 support, nothing IPv6 is programmed.
	if off := text(Compute(vxlan6State(dpapi.EncapAlways), Config{Hostname: "me"})); strings.Contains(off, "fd00") {
		t.Errorf("IPv6 off:\n%s", off)
	}
	// No IPv6 address on this host: no device, and the reason.
	s := vxlan6State(dpapi.EncapAlways)
	s.Hosts["me"].IPv6 = netip.Prefix{}
	if d := Compute(s, Config{Hostname: "me", IPv6: true}); d.VXLANV6 != nil || !strings.Contains(text(d), "problem VXLAN: this host has no IPv6 address") {
		t.Errorf("no IPv6 address:\n%s", text(d))
	}
}
