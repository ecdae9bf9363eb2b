package rules

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// smallState: two workloads (one with a tiered policy, one with profiles),
// a host endpoint with every kind of policy, a NAT-outgoing VXLAN pool, an
// IPIP pool and a floating IP.
func smallState() *dpapi.State {
	allowFE := dpapi.PolicyID{Tier: "default", Name: "allow-frontend"}
	nsPol := dpapi.PolicyID{Tier: "default", Namespace: "prod", Name: "db"}
	secPass := dpapi.PolicyID{Tier: "security", Name: "pass-internal"}
	pre := dpapi.PolicyID{Tier: "default", Name: "prednat"}
	untr := dpapi.PolicyID{Tier: "default", Name: "untracked"}
	fwd := dpapi.PolicyID{Tier: "default", Name: "forward"}
	return &dpapi.State{
		InSync: true,
		Workloads: map[dpapi.WorkloadID]*dpapi.Workload{
			"prod/frontend": {ID: "prod/frontend", Iface: "cali1234567890a", IPv4: pfx("10.65.0.2/32"), IPv6: pfx("fd00:65::2/128"),
				NATs: []dpapi.NAT{{Internal: netip.MustParseAddr("10.65.0.2"), External: netip.MustParseAddr("172.16.0.2")}},
				Tiers: []dpapi.TierPolicies{
					{Name: "security", DefaultAction: "Pass", Ingress: []dpapi.PolicyID{secPass}},
					{Name: "default", Ingress: []dpapi.PolicyID{allowFE, nsPol}, Egress: []dpapi.PolicyID{allowFE}},
				},
				Profiles: []string{"kns.prod"}},
			"prod/db": {ID: "prod/db", Iface: "cali99aabbccdd0", IPv4: pfx("10.65.0.3/32"), Profiles: []string{"kns.prod", "ksa.prod.default"}},
		},
		HostEndpoints: map[string]*dpapi.HostEndpoint{
			"host1-eth0": {Name: "host1-eth0", Iface: "eth0",
				Tiers:          []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{allowFE}}},
				PreDNATTiers:   []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{pre}}},
				UntrackedTiers: []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{untr}, Egress: []dpapi.PolicyID{untr}}},
				ForwardTiers:   []dpapi.TierPolicies{{Name: "default", Egress: []dpapi.PolicyID{fwd}}},
				Profiles:       []string{"kns.prod"}},
		},
		Policies: map[dpapi.PolicyID]*dpapi.Policy{
			allowFE: {Inbound: []dpapi.Rule{{Action: dpapi.Allow, Protocol: "tcp", SrcIPSets: []string{"s:frontend"},
				DstPorts: []dpapi.PortRange{{Min: 80, Max: 80}}}}, Outbound: []dpapi.Rule{{Action: dpapi.Allow}}},
			nsPol:   {Inbound: []dpapi.Rule{{Action: dpapi.Deny, DstNamedPortIPSets: []string{"n:db"}, Protocol: "tcp"}}},
			secPass: {Inbound: []dpapi.Rule{{Action: dpapi.Pass, SrcNets: pfx("10.0.0.0/8", "fd00::/8")}}},
			pre:     {PreDNAT: true, Inbound: []dpapi.Rule{{Action: dpapi.Deny, SrcNets: pfx("192.0.2.0/24")}}},
			untr:    {Untracked: true, Inbound: []dpapi.Rule{{Action: dpapi.Allow, Protocol: "udp", DstPorts: []dpapi.PortRange{{Min: 53, Max: 53}}}}},
			fwd:     {ApplyOnForward: true, Outbound: []dpapi.Rule{{Action: dpapi.Allow}}},
		},
		Profiles: map[string]*dpapi.Profile{
			"kns.prod":         {Inbound: []dpapi.Rule{{Action: dpapi.Allow}}, Outbound: []dpapi.Rule{{Action: dpapi.Allow}}},
			"ksa.prod.default": {},
		},
		IPSets: map[string]*dpapi.IPSet{
			"s:frontend": {ID: "s:frontend", Type: dpapi.IPSetNet, Members: []string{"10.65.0.2", "fd00:65::2"}},
			"n:db":       {ID: "n:db", Type: dpapi.IPSetIPPort, Members: []string{"10.65.0.3,tcp:5432"}},
		},
		Pools: map[string]*dpapi.Pool{
			"vx":   {Name: "vx", CIDR: netip.MustParsePrefix("10.65.0.0/16"), NATOutgoing: true, VXLAN: dpapi.EncapAlways},
			"ipip": {Name: "ipip", CIDR: netip.MustParsePrefix("10.66.0.0/16"), IPIP: dpapi.EncapCrossSubnet},
			"v6":   {Name: "v6", CIDR: netip.MustParsePrefix("fd00:65::/64"), NATOutgoing: true},
		},
		Hosts: map[string]*dpapi.Host{
			"host1": {Name: "host1", IPv4: netip.MustParsePrefix("192.168.1.10/24"),
				VXLANTunnelAddr: netip.MustParseAddr("10.65.0.1"), IPIPTunnelAddr: netip.MustParseAddr("10.66.0.1")},
		},
	}
}

func renderText(t *testing.T, s *dpapi.State, ipv int, cfg dpapi.Config) (string, *Output) {
	t.Helper()
	cfg.Hostname = "host1"
	rc, err := NewConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := Render(s, &rc, ipv, HostEndpointsByIface(s, nil), nil)
	tb := iptables.New(iptables.Config{IPVersion: ipv, Backend: "nft", LookPath: func(string) (string, error) { return "", nil }})
	return string(tb.Plan(out.Tables)), out
}

func TestRenderGolden(t *testing.T) {
	cfg := dpapi.Config{
		FailsafeInbound:        []dpapi.ProtoPort{{Protocol: "tcp", Port: 22}, {Protocol: "udp", Port: 68}},
		FailsafeOutbound:       []dpapi.ProtoPort{{Protocol: "udp", Port: 53}, {Protocol: "tcp", Port: 2379, Net: "192.168.1.0/24"}},
		FloatingIPs:            true,
		WorkloadSourceSpoofing: true,
		LogPrefix:              "%k-%t-%p",
	}
	for _, ipv := range []int{4, 6} {
		s := smallState()
		s.ServiceCIDRs = pfx("10.96.0.0/12", "fd00:96::/112")
		s.Workloads["prod/db"].AllowSpoofedSourcePrefixes = pfx("10.99.0.0/24")
		p := s.Policies[dpapi.PolicyID{Tier: "default", Namespace: "prod", Name: "db"}]
		p.Inbound = append(p.Inbound, dpapi.Rule{Action: dpapi.Log, Annotations: []string{"owner=db team", "ticket=OPS-1"}})
		text, _ := renderText(t, s, ipv, cfg)
		path := filepath.Join("testdata", "small-v"+itoa(ipv)+".golden")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		if text != string(want) {
			t.Errorf("IPv%d rendering differs from %s (run with -update after checking):\n%s", ipv, path, diffLines(string(want), text))
		}
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inW, inG := map[string]bool{}, map[string]bool{}
	for _, l := range w {
		inW[l] = true
	}
	for _, l := range g {
		inG[l] = true
	}
	var b strings.Builder
	for _, l := range w {
		if !inG[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !inW[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// Every chain a rule jumps to is defined in the same table, and every IP
// set a rule names is reported in Output.IPSets, so iptables-restore never
// meets an unknown target or set.
func TestRenderReferencesAreDefined(t *testing.T) {
	s := smallState()
	// A policy the State forgot is rendered as an empty chain.
	missing := dpapi.PolicyID{Tier: "default", Name: "missing"}
	s.Workloads["prod/db"].Tiers = []dpapi.TierPolicies{{Name: "default", Egress: []dpapi.PolicyID{missing}}}
	s.HostEndpoints["wild"] = &dpapi.HostEndpoint{Name: "wild", Iface: "*", Profiles: []string{"nope"}}
	builtin := map[string]bool{"ACCEPT": true, "DROP": true, "RETURN": true, "MARK": true, "LOG": true,
		"MASQUERADE": true, "SNAT": true, "DNAT": true, "NOTRACK": true}
	for _, ipv := range []int{4, 6} {
		_, out := renderText(t, s, ipv, dpapi.Config{})
		for table, d := range out.Tables {
			defined := map[string]bool{}
			for _, c := range d.Chains {
				if defined[c.Name] {
					t.Errorf("IPv%d %s: chain %s rendered twice", ipv, table, c.Name)
				}
				defined[c.Name] = true
				if len(c.Name) > iptables.MaxChainNameLength {
					t.Errorf("chain name %s too long", c.Name)
				}
			}
			check := func(rules []iptables.Rule) {
				for _, r := range rules {
					if tgt, ok := iptables.JumpTarget(r.Action); ok && !defined[tgt] && !builtin[tgt] {
						t.Errorf("IPv%d %s: jump to undefined chain %s", ipv, table, tgt)
					}
					for _, f := range r.Match {
						if strings.Contains(f, "--match-set ") {
							name := strings.Fields(strings.SplitN(f, "--match-set ", 2)[1])[0]
							found := false
							for id := range out.IPSets {
								if "cali"+itoa(ipv)+"0"+id == name {
									found = true
								}
							}
							if !found {
								t.Errorf("IPv%d %s: set %s not reported", ipv, table, name)
							}
						}
					}
				}
			}
			for _, c := range d.Chains {
				check(c.Rules)
			}
			for _, rs := range d.Inserts {
				check(rs)
			}
			for _, rs := range d.Appends {
				check(rs)
			}
		}
		if !strings.Contains(strings.Join(chainNames(out.Tables["filter"]), " "), "cali-po-default/missing") {
			t.Error("missing policy not rendered as an empty chain")
		}
	}
}

func chainNames(d *iptables.Desired) []string {
	var out []string
	for _, c := range d.Chains {
		out = append(out, c.Name)
	}
	return out
}

// DefaultEndpointToHostAction decides the end of cali-wl-to-host.
func TestEndpointToHostAction(t *testing.T) {
	for action, want := range map[string]string{"": "--jump DROP", "Drop": "--jump DROP", "Return": "--jump RETURN", "Accept": "--jump ACCEPT"} {
		rc, err := NewConfig(dpapi.Config{DefaultEndpointToHostAction: action})
		if err != nil {
			t.Fatal(err)
		}
		r := &renderer{cfg: &rc, ipv: 4}
		c := r.workloadToHost()
		last := c.Rules[len(c.Rules)-1].String()
		if !strings.HasSuffix(last, want) || !strings.Contains(last, "Configured DefaultEndpointToHostAction") {
			t.Errorf("%q: last rule %q", action, last)
		}
	}
}
