package linux

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dataplane/routes"
	"github.com/calico-etcd/calico/felix/dpapi"
)

func TestKernelVXLANDeviceAndRemoteBlockRoutes(t *testing.T) {
	h := newHost(t, dpapi.Config{})
	w1 := addWorkload(t, h.ns, "calia1", "10.65.0.2", "")
	s := baseState(w1.endpoint("allow-all"))
	s.Pools["pool1"].VXLAN = dpapi.EncapAlways
	s.Pools["pool2"] = &dpapi.Pool{Name: "pool2", CIDR: mustPrefix("10.66.0.0/16"), VXLAN: dpapi.EncapCrossSubnet}
	s.Hosts["host1"].VXLANTunnelAddr = netip.MustParseAddr("10.65.0.1")
	s.Hosts["host1"].VXLANTunnelMAC = "66:00:00:00:00:01"
	s.Hosts["host2"] = &dpapi.Host{Name: "host2", IPv4: mustPrefix("192.168.91.2/24"),
		VXLANTunnelAddr: netip.MustParseAddr("10.65.1.1"), VXLANTunnelMAC: "66:00:00:00:00:02"}
	s.Hosts["host3"] = &dpapi.Host{Name: "host3", IPv4: mustPrefix("192.168.90.3/24"),
		VXLANTunnelAddr: netip.MustParseAddr("10.65.2.1"), VXLANTunnelMAC: "66:00:00:00:00:03"}
	s.RemoteBlocks = []dpapi.RemoteBlock{
		{CIDR: mustPrefix("10.65.1.0/26"), Host: "host2"},
		{CIDR: mustPrefix("10.66.1.0/26"), Host: "host2"}, // CrossSubnet, other subnet: encapsulated
		{CIDR: mustPrefix("10.66.2.0/26"), Host: "host3"}, // CrossSubnet, same subnet: direct
	}
	must(t, h.dp.Apply(t.Context(), s))

	link, err := h.ns.Output("ip", "-d", "link", "show", "vxlan.calico")
	must(t, err)
	for _, want := range []string{"vxlan id 4096", "local 192.168.90.1", "dstport 4789", "nolearning", "66:00:00:00:00:01", ",UP"} {
		if !strings.Contains(link, want) {
			t.Errorf("vxlan.calico lacks %q:\n%s", want, link)
		}
	}
	// Routes to other hosts carry felix's own protocol (80), as Calico's.
	rt, err := h.ns.Output("ip", "route", "show", "proto", "80")
	must(t, err)
	for _, want := range []string{
		"10.65.1.0/26 via 10.65.1.1 dev vxlan.calico onlink",
		"10.66.1.0/26 via 10.65.1.1 dev vxlan.calico onlink",
		"10.66.2.0/26 via 192.168.90.3 dev eth0",
	} {
		if !strings.Contains(rt, want) {
			t.Errorf("routes lack %q:\n%s", want, rt)
		}
	}
	neigh, err := h.ns.Output("ip", "neigh", "show", "dev", "vxlan.calico")
	must(t, err)
	fdb, err := h.ns.Output("bridge", "fdb", "show", "dev", "vxlan.calico")
	must(t, err)
	if !strings.Contains(neigh, "10.65.1.1 lladdr 66:00:00:00:00:02 PERMANENT") ||
		!strings.Contains(fdb, "66:00:00:00:00:02 dst 192.168.91.2") ||
		!strings.Contains(fdb, "66:00:00:00:00:03 dst 192.168.90.3") {
		t.Errorf("VTEP entries:\n%s\n%s", neigh, fdb)
	}
	if sv := h.save(t, 4); !strings.Contains(sv, "Allow VXLAN packets from Calico hosts") {
		t.Errorf("no VXLAN input rule:\n%s", sv)
	}

	// host2 leaves: its routes, neighbour and FDB entry go.
	delete(s.Hosts, "host2")
	s.RemoteBlocks = s.RemoteBlocks[2:]
	must(t, h.dp.Apply(t.Context(), s))
	rt, _ = h.ns.Output("ip", "route")
	fdb, _ = h.ns.Output("bridge", "fdb", "show", "dev", "vxlan.calico")
	neigh, _ = h.ns.Output("ip", "neigh", "show", "dev", "vxlan.calico")
	if strings.Contains(rt, "10.65.1.0/26") || strings.Contains(fdb, "66:00:00:00:00:02") || strings.Contains(neigh, "10.65.1.1") {
		t.Errorf("host2's entries remain:\n%s\n%s\n%s", rt, fdb, neigh)
	}

	// No VXLAN pool any more: the device goes.
	s.Pools["pool1"].VXLAN, s.Pools["pool2"].VXLAN = dpapi.EncapNever, dpapi.EncapNever
	must(t, h.dp.Apply(t.Context(), s))
	if out, err := h.ns.Output("ip", "link", "show", "vxlan.calico"); err == nil {
		t.Errorf("vxlan.calico still exists:\n%s", out)
	}
}

// This kernel has no ipip module: the IPIP part reports a clear error and
// everything else is programmed.
func TestKernelIPIPWithoutModuleIsNonFatal(t *testing.T) {
	h := newHost(t, dpapi.Config{})
	w1 := addWorkload(t, h.ns, "calia1", "10.65.0.2", "")
	s := baseState(w1.endpoint("allow-all"))
	s.Pools["pool1"].IPIP = dpapi.EncapAlways
	s.Hosts["host1"].IPIPTunnelAddr = netip.MustParseAddr("10.65.0.1")
	s.Hosts["host2"] = &dpapi.Host{Name: "host2", IPv4: mustPrefix("192.168.91.2/24")}
	s.RemoteBlocks = []dpapi.RemoteBlock{{CIDR: mustPrefix("10.65.1.0/26"), Host: "host2"}}
	if err := h.dp.Apply(t.Context(), s); err != nil {
		t.Fatalf("Apply failed because of IPIP: %v", err)
	}
	if _, err := h.ns.Output("ip", "link", "show", "tunl0"); err == nil {
		t.Skip("this kernel has IPIP; the missing-module path cannot be exercised")
	}
	st := h.dp.IPIPStatus()
	if !errors.Is(st, routes.ErrIPIPUnsupported) {
		t.Fatalf("IPIPStatus() = %v, want ErrIPIPUnsupported", st)
	}
	t.Logf("IPIP status: %v", st)
	rt, err := h.ns.Output("ip", "route")
	must(t, err)
	if !strings.Contains(rt, "10.65.0.2 dev calia1") {
		t.Errorf("workload route missing:\n%s", rt)
	}
	if sv := h.save(t, 4); !strings.Contains(sv, "Allow IPIP packets from Calico hosts") {
		t.Errorf("IPIP input rules missing:\n%s", sv)
	}
}

func TestKernelNATOutgoing(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"", "-m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst -j MASQUERADE --random-fully"},
		{"192.168.90.1", "-m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst -j SNAT --to-source 192.168.90.1 --random-fully"},
	} {
		t.Run("address="+tc.addr, func(t *testing.T) {
			h := newHost(t, dpapi.Config{NATOutgoingAddress: tc.addr})
			s := baseState()
			s.Pools["pool1"].NATOutgoing = true
			s.Pools["nonat"] = &dpapi.Pool{Name: "nonat", CIDR: mustPrefix("10.70.0.0/16")}
			must(t, h.dp.Apply(t.Context(), s))
			out, err := h.ns.Output("iptables-"+h.dp.Backend(), "-t", "nat", "-S", "cali-nat-outgoing")
			must(t, err)
			if !strings.Contains(out, tc.want) {
				t.Fatalf("cali-nat-outgoing:\n%s\nwant rule with %q", out, tc.want)
			}
			masq, _ := h.ns.Output("ipset", "list", "cali40masq-ipam-pools")
			all, _ := h.ns.Output("ipset", "list", "cali40all-ipam-pools")
			if !strings.Contains(masq, "10.65.0.0/16") || strings.Contains(masq, "10.70.0.0/16") ||
				!strings.Contains(all, "10.65.0.0/16") || !strings.Contains(all, "10.70.0.0/16") {
				t.Fatalf("pool sets:\n%s\n%s", masq, all)
			}
			// No NAT-outgoing pool: the chain empties. (A changed object
			// is a new one, as calc makes them.)
			s.Pools["pool1"] = &dpapi.Pool{Name: "pool1", CIDR: s.Pools["pool1"].CIDR}
			must(t, h.dp.Apply(t.Context(), s))
			out, _ = h.ns.Output("iptables-"+h.dp.Backend(), "-t", "nat", "-S", "cali-nat-outgoing")
			if strings.Contains(out, "MASQUERADE") || strings.Contains(out, "SNAT") {
				t.Fatalf("NAT rule remains:\n%s", out)
			}
		})
	}
}

func TestKernelIPv6WorkloadRouteAndChains(t *testing.T) {
	h := newHost(t, dpapi.Config{IPv6Support: true})
	w1 := addWorkload(t, h.ns, "calia1", "10.65.0.2", "fd00:65::2")
	w2 := addWorkload(t, h.ns, "calib2", "10.65.0.3", "fd00:65::3")
	s := baseState(w1.endpoint("allow-all"), w2.endpoint("allow-all"))
	s.Pools["pool6"] = &dpapi.Pool{Name: "pool6", CIDR: mustPrefix("fd00:65::/64"), NATOutgoing: true}
	must(t, h.dp.Apply(t.Context(), s))

	rt, err := h.ns.Output("ip", "-6", "route", "show", "proto", "boot")
	must(t, err)
	if !strings.Contains(rt, "fd00:65::2 dev calia1") {
		t.Fatalf("IPv6 workload route missing:\n%s", rt)
	}
	sv := h.save(t, 6)
	for _, want := range []string{":cali-FORWARD", ":cali-tw-calia1", "cali60masq-ipam-pools", "ipv6-icmp"} {
		if !strings.Contains(sv, want) {
			t.Errorf("ip6tables lacks %q:\n%s", want, sv)
		}
	}
	for _, f := range []string{"ipv6/conf/calia1/proxy_ndp", "ipv6/conf/calia1/forwarding"} {
		if out, _ := h.ns.Output("cat", "/proc/sys/net/"+f); strings.TrimSpace(out) != "1" {
			t.Errorf("%s = %q, want 1", f, out)
		}
	}

	// IPv6 traffic between the workloads, through the host's link-local
	// addresses (the dataplane turned IPv6 forwarding on).
	for _, w := range []*workload{w1, w2} {
		ll := linkLocal(t, h, w.iface)
		must(t, w.ns.Exec("ip", "-6", "route", "add", "default", "via", ll, "dev", "eth0"))
	}
	w2.listen(t, 8080)
	eventually(t, 5*time.Second, "IPv6 connection between workloads", func() bool {
		return w1.canConnect(t, w2.ip6, 8080)
	})

	// A deny policy applies to IPv6 as well.
	deny := dpapi.PolicyID{Tier: "default", Name: "deny"}
	s.Policies[deny] = &dpapi.Policy{Inbound: []dpapi.Rule{{Action: dpapi.Deny}}}
	denied := *s.Workloads[dpapi.WorkloadID("ns/calib2")] // a changed workload is a new object
	denied.Tiers = []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{deny}}}
	s.Workloads[denied.ID] = &denied
	must(t, h.dp.Apply(t.Context(), s))
	if w1.canConnect(t, w2.ip6, 8080) {
		t.Fatal("IPv6 connection despite a deny policy")
	}
}

func linkLocal(t testing.TB, h *host, iface string) string {
	t.Helper()
	var ll string
	eventually(t, 5*time.Second, "link-local address on "+iface, func() bool {
		out, _ := h.ns.Output("ip", "-6", "-o", "addr", "show", "dev", iface, "scope", "link")
		f := strings.Fields(out)
		for i, w := range f {
			if w == "inet6" && i+1 < len(f) && !strings.Contains(out, "tentative") {
				ll = strings.Split(f[i+1], "/")[0]
				return true
			}
		}
		return false
	})
	return ll
}
