package linux

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/testutil"
)

// peer is a namespace on the other end of a host interface.
type peer struct{ ns *testutil.NetNS }

func (p peer) canConnect(t testing.TB, dst string, port int) bool {
	t.Helper()
	return p.ns.RunIn(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(dst, strconv.Itoa(port)), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}) == nil
}

func listenIn(t testing.TB, ns *testutil.NetNS, port int) {
	t.Helper()
	w := &workload{ns: ns}
	w.listen(t, port)
}

// A host endpoint with no policy denies traffic to the host except on the
// failsafe ports; a policy then opens another port.
func TestKernelHostEndpointDenyAllKeepsFailsafe(t *testing.T) {
	ns := newHostNS(t)
	client := peer{testutil.NewNetNS(t)}
	must(t, ns.Exec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", client.ns.Name))
	must(t, ns.Exec("ip", "addr", "add", "192.168.91.1/24", "dev", "eth1"))
	must(t, ns.Exec("ip", "link", "set", "eth1", "up"))
	must(t, client.ns.Exec("ip", "addr", "add", "192.168.91.2/24", "dev", "eth0"))
	must(t, client.ns.Exec("ip", "link", "set", "eth0", "up"))
	listenIn(t, ns, 22)
	listenIn(t, ns, 8080)
	eventually(t, 5*time.Second, "connectivity before any host endpoint", func() bool {
		return client.canConnect(t, "192.168.91.1", 8080)
	})

	h := attach(t, ns, dpapi.Config{FailsafeInbound: []dpapi.ProtoPort{{Protocol: "tcp", Port: 22}}})
	s := baseState()
	s.HostEndpoints["host1-eth1"] = &dpapi.HostEndpoint{Name: "host1-eth1", Iface: "eth1"}
	must(t, h.dp.Apply(t.Context(), s))
	if !client.canConnect(t, "192.168.91.1", 22) {
		t.Fatalf("failsafe port 22 closed by a deny-all host endpoint\n%s", h.diag(t))
	}
	if client.canConnect(t, "192.168.91.1", 8080) {
		t.Fatal("port 8080 open through a host endpoint with no policy")
	}

	allow := dpapi.PolicyID{Tier: "default", Name: "allow-8080"}
	s.Policies[allow] = &dpapi.Policy{Inbound: []dpapi.Rule{{Action: dpapi.Allow, Protocol: "tcp",
		DstPorts: []dpapi.PortRange{{Min: 8080, Max: 8080}}}}}
	s.HostEndpoints["host1-eth1"] = &dpapi.HostEndpoint{Name: "host1-eth1", Iface: "eth1", // a changed object is a new one
		Tiers: []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{allow}}}}
	must(t, h.dp.Apply(t.Context(), s))
	if !client.canConnect(t, "192.168.91.1", 8080) {
		t.Fatal("port 8080 closed despite an allow policy")
	}
}

// richState exercises every rule field, every kind of host endpoint
// policy and both IP versions, so iptables-restore validates the syntax.
func richState() *dpapi.State {
	s := baseState()
	icmpType, icmpCode := 8, 0
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range ss {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	s.IPSets["s:frontend"] = &dpapi.IPSet{ID: "s:frontend", Type: dpapi.IPSetNet, Members: []string{"10.65.1.1", "fd00:65::1", "10.66.0.0/24"}}
	s.IPSets["s:backend"] = &dpapi.IPSet{ID: "s:backend", Type: dpapi.IPSetNet, Members: []string{"10.65.2.1/32"}}
	s.IPSets["n:http"] = &dpapi.IPSet{ID: "n:http", Type: dpapi.IPSetIPPort, Members: []string{"10.65.1.1,tcp:80", "fd00:65::1,tcp:80"}}
	ports := []dpapi.PortRange{}
	for p := uint16(1000); p < 1020; p++ { // more than 15: two multiport matches
		ports = append(ports, dpapi.PortRange{Min: p, Max: p})
	}
	ports = append(ports, dpapi.PortRange{Min: 2000, Max: 3000})
	rich := dpapi.PolicyID{Tier: "default", Namespace: "prod", Name: "a-policy-with-a-long-name-that-must-be-hashed"}
	s.Policies[rich] = &dpapi.Policy{
		Inbound: []dpapi.Rule{
			{Action: dpapi.Allow, Protocol: "tcp", SrcIPSets: []string{"s:frontend"}, DstPorts: ports, DstNamedPortIPSets: []string{"n:http"}},
			{Action: dpapi.Log, SrcNets: pfx("10.0.0.0/8")},
			{Action: dpapi.Pass, NotSrcNets: pfx("192.168.0.0/16")},
			{Action: dpapi.Deny, Protocol: "icmp", ICMPType: &icmpType, ICMPCode: &icmpCode},
			{Action: dpapi.Deny, Protocol: "icmpv6", NotICMPType: &icmpType},
			{Action: dpapi.Allow, Protocol: "udp", SrcNets: pfx("10.1.0.0/16", "10.2.0.0/16", "fd00:1::/64"), NotSrcNets: pfx("10.1.5.0/24"),
				NotDstPorts: []dpapi.PortRange{{Min: 53, Max: 53}}, SrcPorts: []dpapi.PortRange{{Min: 1, Max: 1023}}},
			{Action: dpapi.Allow, NotProtocol: "sctp", DstNets: pfx("10.3.0.0/16"), NotDstNets: pfx("10.3.1.0/24", "10.3.2.0/24"),
				NotSrcIPSets: []string{"s:backend"}, DstIPSets: []string{"s:backend"}, NotDstIPSets: []string{"s:frontend"}},
			{Action: dpapi.Allow, IPVersion: 6, Protocol: "58"},
			{Action: dpapi.Allow, Protocol: "udplite", NotSrcNamedPortIPSets: []string{"n:http"}, NotDstNamedPortIPSets: []string{"n:http"},
				SrcNamedPortIPSets: []string{"n:http"}, NotSrcPorts: []dpapi.PortRange{{Min: 7, Max: 9}}},
		},
		Outbound: []dpapi.Rule{{Action: dpapi.Allow, DstNets: pfx("0.0.0.0/0")}},
	}
	prednat := dpapi.PolicyID{Tier: "default", Name: "prednat"}
	s.Policies[prednat] = &dpapi.Policy{PreDNAT: true, Inbound: []dpapi.Rule{{Action: dpapi.Deny, SrcNets: pfx("10.9.0.0/16")}}}
	untracked := dpapi.PolicyID{Tier: "default", Name: "untracked"}
	s.Policies[untracked] = &dpapi.Policy{Untracked: true,
		Inbound:  []dpapi.Rule{{Action: dpapi.Allow, Protocol: "udp", DstPorts: []dpapi.PortRange{{Min: 5353, Max: 5353}}}},
		Outbound: []dpapi.Rule{{Action: dpapi.Allow, Protocol: "udp", SrcPorts: []dpapi.PortRange{{Min: 5353, Max: 5353}}}}}
	fwd := dpapi.PolicyID{Tier: "security", Name: "fwd"}
	s.Policies[fwd] = &dpapi.Policy{ApplyOnForward: true, Inbound: []dpapi.Rule{{Action: dpapi.Allow}}, Outbound: []dpapi.Rule{{Action: dpapi.Pass}}}
	s.Profiles["kns.prod"] = &dpapi.Profile{Inbound: []dpapi.Rule{{Action: dpapi.Allow, SrcIPSets: []string{"s:frontend"}}}}

	both := []dpapi.TierPolicies{
		{Name: "security", DefaultAction: "Pass", Ingress: []dpapi.PolicyID{fwd}, Egress: []dpapi.PolicyID{fwd}},
		{Name: "default", Ingress: []dpapi.PolicyID{rich}, Egress: []dpapi.PolicyID{rich}},
	}
	s.HostEndpoints["h-eth0"] = &dpapi.HostEndpoint{Name: "h-eth0", Iface: "eth0", Tiers: both,
		PreDNATTiers:   []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{prednat}}},
		UntrackedTiers: []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{untracked}, Egress: []dpapi.PolicyID{untracked}}},
		ForwardTiers:   []dpapi.TierPolicies{{Name: "security", Ingress: []dpapi.PolicyID{fwd}, Egress: []dpapi.PolicyID{fwd}}},
		Profiles:       []string{"kns.prod"}}
	s.HostEndpoints["all"] = &dpapi.HostEndpoint{Name: "all", Iface: "*", Profiles: []string{"allow-all"}}
	for i, name := range []string{"calia1", "calia2", "calia3", "calib1", "calib2", "calic1"} {
		w := &dpapi.Workload{ID: dpapi.WorkloadID("prod/" + name), Iface: name, Tiers: both,
			Profiles: []string{"kns.prod", "allow-all"},
			IPv4:     pfx("10.65.0." + strconv.Itoa(10+i) + "/32"), IPv6: pfx("fd00:65::" + strconv.Itoa(10+i) + "/128")}
		if i == 0 {
			w.NATs = []dpapi.NAT{{Internal: netip.MustParseAddr("10.65.0.10"), External: netip.MustParseAddr("172.16.0.10")}}
		}
		s.Workloads[w.ID] = w
	}
	s.Pools["pool1"].NATOutgoing = true
	s.Pools["pool1"].VXLAN = dpapi.EncapCrossSubnet
	s.Pools["pool6"] = &dpapi.Pool{Name: "pool6", CIDR: netip.MustParsePrefix("fd00:65::/64"), NATOutgoing: true}
	s.Hosts["host1"].VXLANTunnelAddr = netip.MustParseAddr("10.65.0.1")
	return s
}

// Every construct the renderer produces is accepted by iptables-restore
// and ip6tables-restore on both backends, and a second Apply is a no-op.
func TestKernelRichStateIsAccepted(t *testing.T) {
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			h := newHost(t, dpapi.Config{IPv6Support: true, IptablesBackend: backend, FloatingIPs: true,
				FailsafeInbound:  []dpapi.ProtoPort{{Protocol: "tcp", Port: 22}, {Protocol: "udp", Port: 68, Net: "10.0.0.0/8"}},
				FailsafeOutbound: []dpapi.ProtoPort{{Protocol: "udp", Port: 53}, {Protocol: "tcp", Port: 179, Net: "fd00::/8"}}})
			s := richState()
			must(t, h.dp.Apply(t.Context(), s))
			v4, v6 := h.save(t, 4), h.save(t, 6)
			for _, want := range []string{"cali-from-wl-dispatch-a", "cali-thfw-eth0", "cali-fh-any-interface-at-all",
				"NOTRACK", "--to-destination 10.65.0.10", "cali40n:http", "cali40s:frontend"} {
				if !strings.Contains(v4, want) {
					t.Errorf("IPv4 ruleset lacks %q", want)
				}
			}
			for _, want := range []string{"cali60s:frontend", "ipv6-icmp", "cali-pi-_"} {
				if !strings.Contains(v6, want) {
					t.Errorf("IPv6 ruleset lacks %q", want)
				}
			}
			h.rec.Reset()
			h.dp.ipt4.Invalidate()
			h.dp.ipt6.Invalidate()
			h.dp.ipsets.Invalidate()
			must(t, h.dp.Apply(t.Context(), s))
			if in := restoreInputs(h.rec); len(in) != 0 {
				t.Fatalf("re-reading the kernel found differences to rewrite:\n%s", strings.Join(in, "\n"))
			}
			for _, c := range h.rec.Calls() {
				if c.Name == "ipset" && len(c.Args) > 0 && c.Args[0] == "restore" {
					t.Fatalf("re-reading IP sets found differences:\n%s", c.Stdin)
				}
			}
		})
	}
}
