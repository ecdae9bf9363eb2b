package routing

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/calico-etcd/calico/bgpd/routetable"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

func testPlan(t *testing.T) *Plan {
	t.Helper()
	c := &bgpconfig.Config{
		Version: 1, NodeName: "a", RouterID: "172.31.255.11", ASNumber: 64512,
		NodeIPv4: "172.31.255.11/24", NodeIPv6: "fd00::11/64", RoutePriority4: 1024, RoutePriority6: 512,
		IgnoredInterfaces: []string{"caliignored*"},
		Pools: []bgpconfig.Pool{
			{CIDR: "10.65.0.0/16", Export: true},
			{CIDR: "10.66.0.0/16", Export: true, IPIPMode: ModeAlways},
			{CIDR: "10.67.0.0/16", Export: true, IPIPMode: ModeCrossSubnet},
			{CIDR: "10.68.0.0/16", Export: true, VXLANMode: ModeAlways},
			{CIDR: "10.69.0.0/16", Export: false},
			{CIDR: "10.65.128.0/17", Export: false}, // nested, more specific, not exported
			{CIDR: "fd00:65::/48", Export: true},
		},
		Blocks: []bgpconfig.Block{{CIDR: "10.65.1.0/26", Export: true}, {CIDR: "10.69.1.0/26", Export: false}},
		Communities: []bgpconfig.PrefixCommunities{
			{CIDR: "10.65.0.0/16", Communities: []string{"65000:1"}},
			{CIDR: "10.65.1.0/24", Communities: []string{"65000:2", "65000:1"}},
		},
	}
	p, err := NewPlan(c, Options{WorkloadPrefix: "cali", TunnelDevice: "tunl0"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExport(t *testing.T) {
	p := testPlan(t)
	for _, tc := range []struct {
		dst, iface string
		want       bool
	}{
		{"10.65.2.5/32", "cali123", true},       // borrowed
		{"10.65.1.5/32", "cali123", false},      // inside our block: the block covers it
		{"10.65.200.5/32", "cali123", false},    // nested pool not exported
		{"10.69.0.5/32", "cali123", false},      // pool not exported
		{"192.0.2.5/32", "cali123", false},      // no pool
		{"10.65.2.5/32", "eth0", false},         // not a workload interface
		{"10.65.2.5/32", "caliignored1", false}, // ignored interface
		{"fd00:65::5/128", "cali1", true},       // IPv6 with an IPv6 node address
		{"10.66.3.3/32", "calixyz", true},       // IPIP pool
	} {
		if got := p.Export(netip.MustParsePrefix(tc.dst), tc.iface); got != tc.want {
			t.Errorf("Export(%s, %s) = %v, want %v", tc.dst, tc.iface, got, tc.want)
		}
	}
	if got := p.ExportedBlocks(); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26")}) {
		t.Errorf("exported blocks %v", got)
	}
	if got := p.Blocks(); len(got) != 2 {
		t.Errorf("blocks %v", got)
	}
	if got := p.Communities(netip.MustParsePrefix("10.65.1.0/26")); !slices.Equal(got, []string{"65000:1", "65000:2"}) {
		t.Errorf("communities %v", got)
	}
	if got := p.Communities(netip.MustParsePrefix("10.66.1.0/26")); got != nil {
		t.Errorf("communities outside %v", got)
	}
}

func TestProgram(t *testing.T) {
	p := testPlan(t)
	fake := routetable.NewFake()
	fake.Connected[netip.MustParsePrefix("172.31.255.0/24")] = "eth0"
	fake.DefaultGw, fake.DefaultDev = netip.MustParseAddr("172.31.255.1"), "eth0"
	near, far := netip.MustParseAddr("172.31.255.12"), netip.MustParseAddr("172.31.254.10")
	for _, tc := range []struct {
		name, dst string
		nh        netip.Addr
		want      *routetable.Route
	}{
		{"direct", "10.65.2.0/26", near, &routetable.Route{Gw: near, Dev: "eth0"}},
		{"recursive", "10.65.3.0/26", far, &routetable.Route{Gw: netip.MustParseAddr("172.31.255.1"), Dev: "eth0"}},
		{"ipip always, near", "10.66.2.0/26", near, &routetable.Route{Gw: near, Dev: "tunl0", OnLink: true}},
		{"ipip cross-subnet, near", "10.67.2.0/26", near, &routetable.Route{Gw: near, Dev: "eth0"}},
		{"ipip cross-subnet, far", "10.67.3.0/26", far, &routetable.Route{Gw: far, Dev: "tunl0", OnLink: true}},
		{"vxlan: felix routes it", "10.68.2.0/26", near, nil},
		{"our own block", "10.65.1.0/26", near, nil},
		{"borrowed inside our block", "10.65.1.7/32", near, &routetable.Route{Gw: near, Dev: "eth0"}},
		{"next hop is us", "10.65.2.0/26", netip.MustParseAddr("172.31.255.11"), nil},
		{"no next hop", "10.65.2.0/26", netip.Addr{}, nil},
		{"outside every pool", "203.0.113.0/24", near, &routetable.Route{Gw: near, Dev: "eth0"}},
	} {
		r, ok, err := p.Program(netip.MustParsePrefix(tc.dst), tc.nh, fake.Lookup)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tc.want == nil {
			if ok {
				t.Errorf("%s: programmed %v, want nothing", tc.name, r)
			}
			continue
		}
		tc.want.Dst, tc.want.Metric = netip.MustParsePrefix(tc.dst), 1024
		if !ok || r != *tc.want {
			t.Errorf("%s: got %v (ok=%v), want %v", tc.name, r, ok, *tc.want)
		}
	}
	if b := p.Blackhole(netip.MustParsePrefix("fd00:65::/122")); !b.Blackhole || b.Metric != 512 {
		t.Errorf("IPv6 blackhole %v", b)
	}
	broken := func(netip.Addr) (netip.Addr, string, error) { return netip.Addr{}, "", errors.New("no route") }
	if _, ok, err := p.Program(netip.MustParsePrefix("10.65.2.0/26"), near, broken); ok || err == nil {
		t.Errorf("unresolvable next hop: ok=%v err=%v", ok, err)
	}
}
