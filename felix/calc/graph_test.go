package calc

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/selector"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

func TestLocalEndpointsAndProfiles(t *testing.T) {
	w1 := wep("ns1", "a", me, lbl("app", "web"), "10.0.0.1/32")
	w1.Spec.Profiles = []string{"kns.ns1", "missing", DefaultAllowProfile}
	remote := wep("ns1", "b", "host-b", lbl("app", "web"), "10.0.1.1/32")
	_, st := run(t, put(w1), put(remote), put(profileRes("kns.ns1", nil, nil, nil)))

	if len(st.Workloads) != 1 {
		t.Fatalf("want 1 local workload, got %d", len(st.Workloads))
	}
	w := st.Workloads["ns1/a"]
	if w == nil || w.Iface != "calia" || !slices.Equal(w.IPv4, []netip.Prefix{mustPrefix("10.0.0.1/32")}) {
		t.Fatalf("workload = %+v", w)
	}
	if want := []string{"kns.ns1", "missing", DefaultAllowProfile}; !slices.Equal(w.Profiles, want) {
		t.Errorf("profiles = %v, want %v (missing ones kept, as deny profiles)", w.Profiles, want)
	}
	if len(w.Tiers) != 0 {
		t.Errorf("no policy should apply, got %+v", w.Tiers)
	}
	if p := st.Profiles[DefaultAllowProfile]; p == nil || len(p.Inbound) != 1 || p.Inbound[0].Action != dpapi.Allow {
		t.Errorf("default-allow profile not synthesized: %+v", p)
	}
	if !st.InSync {
		t.Error("state not in sync")
	}
}

func TestNotInSyncUntilSyncer(t *testing.T) {
	g := New(me, nil)
	g.OnUpdates([]syncer.Update{put(wep("ns", "a", me, nil, "10.0.0.1/32"))})
	if g.State().InSync {
		t.Fatal("in sync before the syncer said so")
	}
	g.OnStatusUpdated(syncer.ResyncInProgress)
	g.OnStatusUpdated(syncer.InSync)
	g.OnStatusUpdated(syncer.ResyncInProgress)
	if !g.State().InSync {
		t.Fatal("InSync must stick after the first InSync")
	}
}

func TestSelectorIPSetMembers(t *testing.T) {
	pol := gnp("p", nil, "app == 'web'", []v3.Rule{allowFrom("role == 'db'")}, nil)
	_, st := run(t,
		put(wep("ns1", "web", me, lbl("app", "web"), "10.0.0.1/32")),
		put(wep("ns1", "db1", me, lbl("role", "db"), "10.0.0.2/32", "fd00::2/128")),
		put(wep("ns2", "db2", "host-b", lbl("role", "db"), "10.0.1.2/32")),
		put(wep("ns2", "other", "host-b", lbl("role", "x"), "10.0.1.3/32")),
		put(hep("h1", "host-c", "eth0", lbl("role", "db"), "192.168.0.5")),
		put(gns("ext", lbl("role", "db"), "172.16.0.0/16")),
		put(nset("ns3", "n", lbl("role", "db"), "172.17.0.0/16")),
		put(pol),
	)
	p := st.Policies[pid("", "p")]
	if p == nil || len(p.Inbound) != 1 {
		t.Fatalf("policy = %+v", p)
	}
	id := selector.MustParse("role == 'db'").UniqueID()
	if got := p.Inbound[0].SrcIPSets; !slices.Equal(got, []string{id}) {
		t.Fatalf("src sets = %v, want [%s] (Calico's selector ID)", got, id)
	}
	want := []string{"10.0.0.2/32", "10.0.1.2/32", "172.16.0.0/16", "172.17.0.0/16", "192.168.0.5/32", "fd00::2/128"}
	if got := setOf(t, st, id); !slices.Equal(got, want) {
		t.Errorf("members = %v\nwant %v", got, want)
	}
	if len(st.IPSets) != 1 {
		t.Errorf("want only the active set, got %d", len(st.IPSets))
	}
}

func TestIPSetFollowsChanges(t *testing.T) {
	g := New(me, nil)
	g.OnStatusUpdated(syncer.InSync)
	db := wep("ns", "db", "host-b", lbl("role", "db"), "10.0.1.2/32")
	g.OnUpdates([]syncer.Update{
		put(wep("ns", "web", me, lbl("app", "web"), "10.0.0.1/32")),
		put(gnp("p", nil, "app == 'web'", []v3.Rule{allowFrom("role == 'db'")}, nil)),
		put(db),
	})
	id := selector.MustParse("role == 'db'").UniqueID()
	first := g.State()
	if got := setOf(t, first, id); !slices.Equal(got, []string{"10.0.1.2/32"}) {
		t.Fatalf("members = %v", got)
	}
	db2 := wep("ns", "db", "host-b", lbl("role", "db"), "10.0.1.9/32")
	g.OnUpdates([]syncer.Update{put(db2)})
	if got := setOf(t, g.State(), id); !slices.Equal(got, []string{"10.0.1.9/32"}) {
		t.Fatalf("after IP change members = %v", got)
	}
	if got := setOf(t, first, id); !slices.Equal(got, []string{"10.0.1.2/32"}) {
		t.Fatalf("an earlier State changed: %v", got)
	}
	g.OnUpdates([]syncer.Update{put(wep("ns", "db", "host-b", lbl("role", "x"), "10.0.1.9/32"))})
	if got := setOf(t, g.State(), id); len(got) != 0 {
		t.Fatalf("after relabel members = %v", got)
	}
	g.OnUpdates([]syncer.Update{put(db2), del(db2)})
	if got := setOf(t, g.State(), id); len(got) != 0 {
		t.Fatalf("after delete members = %v", got)
	}
	// The policy stops applying: its set goes away.
	g.OnUpdates([]syncer.Update{del(wep("ns", "web", me, nil))})
	if st := g.State(); len(st.IPSets) != 0 || len(st.Policies) != 0 {
		t.Fatalf("inactive policy left sets %v policies %v", st.IPSets, st.Policies)
	}
}

func TestPolicyOrderAndTypes(t *testing.T) {
	all := "all()"
	in := []v3.Rule{{Action: v3.Allow}}
	eg := []v3.Rule{{Action: v3.Deny}}
	_, st := run(t,
		put(wep("ns", "a", me, nil, "10.0.0.1/32")),
		put(gnp("z-nil", nil, all, in, nil)),
		put(gnp("a-nil", nil, all, in, eg)),
		put(gnp("b-10", ord(10), all, in, nil)),
		put(gnp("a-10", ord(10), all, nil, eg)),
		put(gnp("c-5", ord(5), all, in, nil)),
		put(np("ns", "n-7", ord(7), all, in, nil)),
		put(np("other", "n-1", ord(1), all, in, nil)), // other namespace: never applies
	)
	w := st.Workloads["ns/a"]
	if len(w.Tiers) != 1 || w.Tiers[0].Name != "default" || w.Tiers[0].DefaultAction != "Deny" {
		t.Fatalf("tiers = %+v", w.Tiers)
	}
	wantIn := []dpapi.PolicyID{pid("", "c-5"), pid("ns", "n-7"), pid("", "b-10"), pid("", "a-nil"), pid("", "z-nil")}
	if !slices.Equal(w.Tiers[0].Ingress, wantIn) {
		t.Errorf("ingress = %v\nwant %v", w.Tiers[0].Ingress, wantIn)
	}
	wantEg := []dpapi.PolicyID{pid("", "a-10"), pid("", "a-nil")}
	if !slices.Equal(w.Tiers[0].Egress, wantEg) {
		t.Errorf("egress = %v\nwant %v", w.Tiers[0].Egress, wantEg)
	}
	if _, ok := st.Policies[pid("other", "n-1")]; ok {
		t.Error("policy of another namespace is active")
	}
	if len(st.Policies) != 6 {
		t.Errorf("active policies = %d, want 6", len(st.Policies))
	}
}

func TestTiersAndPass(t *testing.T) {
	sec := gnp("sec-pass", ord(1), "all()", []v3.Rule{{Action: v3.Pass, Source: v3.EntityRule{Nets: []string{"10.0.0.0/8"}}}}, nil)
	sec.Spec.Tier = "security"
	late := gnp("late", nil, "all()", []v3.Rule{{Action: v3.Allow}}, nil)
	late.Spec.Tier = "zz-untiered" // no Tier resource: sorts last
	_, st := run(t,
		put(wep("ns", "a", me, nil, "10.0.0.1/32")),
		put(tierRes("security", 100, v3.Pass)),
		put(tierRes("empty", 50, v3.Deny)),
		put(sec), put(late),
		put(gnp("d", nil, "all()", []v3.Rule{{Action: v3.Allow}}, nil)),
	)
	w := st.Workloads["ns/a"]
	var names, actions []string
	for _, tp := range w.Tiers {
		names = append(names, tp.Name)
		actions = append(actions, tp.DefaultAction)
	}
	if want := []string{"security", "default", "zz-untiered"}; !slices.Equal(names, want) {
		t.Fatalf("tier order = %v, want %v", names, want)
	}
	if want := []string{"Pass", "Deny", "Deny"}; !slices.Equal(actions, want) {
		t.Errorf("default actions = %v, want %v", actions, want)
	}
	p := st.Policies[dpapi.PolicyID{Tier: "security", Name: "sec-pass"}]
	if p == nil || p.Inbound[0].Action != dpapi.Pass || p.Inbound[0].SrcNets[0] != mustPrefix("10.0.0.0/8") {
		t.Fatalf("pass policy = %+v", p)
	}
}

func TestNamespaceScoping(t *testing.T) {
	teamA := profileRes("kns.a", lbl("pcns.team", "a"), nil, nil)
	teamB := profileRes("kns.b", lbl("pcns.team", "b"), nil, nil)
	pol := gnp("p", nil, "app == 'srv'", []v3.Rule{
		{Action: v3.Allow, Source: v3.EntityRule{NamespaceSelector: "team == 'a'"}},
		{Action: v3.Allow, Source: v3.EntityRule{NamespaceSelector: "global()"}},
		{Action: v3.Allow, Source: v3.EntityRule{NamespaceSelector: "all()", Selector: "role == 'c'"}},
	}, nil)
	npol := np("b", "own", nil, "all()", []v3.Rule{allowFrom("role == 'c'"), {Action: v3.Allow}}, nil)
	sa := np("b", "sa", nil, "all()", []v3.Rule{{Action: v3.Allow, Source: v3.EntityRule{
		ServiceAccounts: &v3.ServiceAccountMatch{Names: []string{"robot"}}}}}, nil)
	clientSA := wep("b", "c3", "host-b", lbl("role", "c"), "10.0.2.3/32")
	clientSA.Spec.ServiceAccountName = "robot"
	_, st := run(t, put(teamA), put(teamB), put(pol), put(npol), put(sa), put(clientSA),
		put(wep("a", "srv", me, lbl("app", "srv"), "10.0.0.1/32")),
		put(wep("b", "srv2", me, lbl("app", "srv"), "10.0.0.2/32")),
		put(wep("a", "c1", "host-b", lbl("role", "c"), "10.0.2.1/32")),
		put(wep("b", "c2", "host-b", lbl("role", "c"), "10.0.2.2/32")),
		put(hep("h", "host-c", "eth0", lbl("role", "c"), "192.168.0.9")),
		put(gns("g", nil, "8.8.8.0/24")),
		put(nset("a", "ns-net", nil, "9.9.9.0/24")),
	)
	in := st.Policies[pid("", "p")].Inbound
	if got, want := setOf(t, st, in[0].SrcIPSets[0]), []string{"10.0.0.1/32", "10.0.2.1/32", "9.9.9.0/24"}; !slices.Equal(got, want) {
		t.Errorf("namespaceSelector team == 'a': %v, want %v", got, want)
	}
	if got, want := setOf(t, st, in[1].SrcIPSets[0]), []string{"192.168.0.9/32", "8.8.8.0/24"}; !slices.Equal(got, want) {
		t.Errorf("namespaceSelector global(): %v, want %v", got, want)
	}
	if got, want := setOf(t, st, in[2].SrcIPSets[0]), []string{"10.0.2.1/32", "10.0.2.2/32", "10.0.2.3/32"}; !slices.Equal(got, want) {
		t.Errorf("namespaceSelector all() && role == 'c': %v, want %v", got, want)
	}
	own := st.Policies[pid("b", "own")].Inbound
	if got, want := setOf(t, st, own[0].SrcIPSets[0]), []string{"10.0.2.2/32", "10.0.2.3/32"}; !slices.Equal(got, want) {
		t.Errorf("NetworkPolicy rule selector is limited to its namespace: %v, want %v", got, want)
	}
	if len(own[1].SrcIPSets) != 0 {
		t.Errorf("a rule without selectors must not be namespaced: %+v", own[1])
	}
	sar := st.Policies[pid("b", "sa")].Inbound
	if got, want := setOf(t, st, sar[0].SrcIPSets[0]), []string{"10.0.2.3/32"}; !slices.Equal(got, want) {
		t.Errorf("service account names: %v, want %v", got, want)
	}
	// The NetworkPolicy in b applies to b/srv2 only.
	if w := st.Workloads["a/srv"]; len(w.Tiers[0].Ingress) != 1 {
		t.Errorf("a/srv ingress = %v", w.Tiers[0].Ingress)
	}
	if w := st.Workloads["b/srv2"]; len(w.Tiers[0].Ingress) != 3 {
		t.Errorf("b/srv2 ingress = %v", w.Tiers[0].Ingress)
	}
}

func TestNamespaceLabelsFollowProfile(t *testing.T) {
	g := New(me, nil)
	g.OnStatusUpdated(syncer.InSync)
	pol := gnp("p", nil, "all()", []v3.Rule{{Action: v3.Allow, Source: v3.EntityRule{NamespaceSelector: "team == 'a'"}}}, nil)
	g.OnUpdates([]syncer.Update{put(pol), put(wep("x", "w", me, nil, "10.0.0.1/32"))})
	id := g.State().Policies[pid("", "p")].Inbound[0].SrcIPSets[0]
	if got := setOf(t, g.State(), id); len(got) != 0 {
		t.Fatalf("before the namespace profile: %v", got)
	}
	g.OnUpdates([]syncer.Update{put(profileRes("kns.x", lbl("pcns.team", "a"), nil, nil))})
	if got := setOf(t, g.State(), id); !slices.Equal(got, []string{"10.0.0.1/32"}) {
		t.Fatalf("after the namespace profile: %v", got)
	}
	g.OnUpdates([]syncer.Update{del(profileRes("kns.x", nil, nil, nil))})
	if got := setOf(t, g.State(), id); len(got) != 0 {
		t.Fatalf("after deleting the namespace profile: %v", got)
	}
}

// An endpoint's own pcns./pcsa. labels (a pod's labels, say) cannot make
// a namespaceSelector or serviceAccountSelector match it.
func TestNamespaceLabelsCannotBeForged(t *testing.T) {
	pol := gnp("p", nil, "all()", []v3.Rule{
		{Action: v3.Allow, Source: v3.EntityRule{NamespaceSelector: "team == 'a'"}},
		{Action: v3.Allow, Source: v3.EntityRule{ServiceAccounts: &v3.ServiceAccountMatch{Selector: "role == 'admin'"}}},
	}, nil)
	forger := wep("x", "w", me, map[string]string{"pcns.team": "a", "pcsa.role": "admin", "app": "w"}, "10.0.0.1/32")
	forger.Spec.ServiceAccountName = "sa"
	_, st := run(t, put(pol), put(forger), put(profileRes("kns.x", lbl("pcns.team", "b"), nil, nil)),
		put(profileRes("ksa.x.sa", lbl("pcsa.role", "user"), nil, nil)))
	in := st.Policies[pid("", "p")].Inbound
	for i, r := range in {
		if got := setOf(t, st, r.SrcIPSets[0]); len(got) != 0 {
			t.Errorf("rule %d matches the forged labels: %v", i, got)
		}
	}
}

func TestNamedPorts(t *testing.T) {
	srv := wep("ns", "srv", "host-b", lbl("app", "srv"), "10.0.1.1/32")
	srv.Spec.Ports = []v3.WorkloadEndpointPort{{Name: "http", Protocol: v3.ProtocolFromString("TCP"), Port: 8080}}
	other := wep("ns", "o", "host-b", lbl("app", "x"), "10.0.1.2/32")
	other.Spec.Ports = []v3.WorkloadEndpointPort{{Name: "http", Protocol: v3.ProtocolFromString("TCP"), Port: 80}}
	pol := gnp("p", nil, "all()", nil, []v3.Rule{{
		Action: v3.Allow, Protocol: tcp(),
		Destination: v3.EntityRule{Selector: "app == 'srv'", Ports: []v3.Port{v3.SinglePort(443), v3.NamedPort("http")}},
	}})
	_, st := run(t, put(wep("ns", "me", me, nil, "10.0.0.1/32")), put(srv), put(other), put(pol))
	out := st.Policies[pid("", "p")].Outbound
	if len(out) != 2 {
		t.Fatalf("want the rule split in numeric + named, got %+v", out)
	}
	if !slices.Equal(out[0].DstPorts, []dpapi.PortRange{{Min: 443, Max: 443}}) || len(out[0].DstIPSets) != 1 {
		t.Errorf("numeric part = %+v", out[0])
	}
	if len(out[1].DstPorts) != 0 || len(out[1].DstIPSets) != 0 || len(out[1].DstNamedPortIPSets) != 1 {
		t.Fatalf("named part = %+v", out[1])
	}
	if out[0].ID == out[1].ID || out[0].Protocol != "tcp" {
		t.Errorf("split rules need distinct IDs and keep the protocol: %+v", out)
	}
	s := st.IPSets[out[1].DstNamedPortIPSets[0]]
	if s.Type != dpapi.IPSetIPPort || !slices.Equal(s.Members, []string{"10.0.1.1,tcp:8080"}) {
		t.Errorf("named port set = %+v", s)
	}
}

func TestHostEndpointLists(t *testing.T) {
	mk := func(name string, f func(*v3.GlobalNetworkPolicySpec)) *v3.GlobalNetworkPolicy {
		p := gnp(name, nil, "role == 'host'", []v3.Rule{{Action: v3.Deny}}, nil)
		f(&p.Spec)
		return p
	}
	_, st := run(t,
		put(hep("eth0", me, "eth0", lbl("role", "host"), "192.168.0.1")),
		put(hep("other", "host-b", "eth0", lbl("role", "host"))),
		put(mk("normal", func(*v3.GlobalNetworkPolicySpec) {})),
		put(mk("fwd", func(s *v3.GlobalNetworkPolicySpec) { s.ApplyOnForward = true })),
		put(mk("prednat", func(s *v3.GlobalNetworkPolicySpec) { s.PreDNAT, s.ApplyOnForward = true, true })),
		put(mk("untracked", func(s *v3.GlobalNetworkPolicySpec) { s.DoNotTrack, s.ApplyOnForward = true, true })),
		put(wep("ns", "w", me, lbl("role", "host"), "10.0.0.1/32")),
	)
	if len(st.HostEndpoints) != 1 {
		t.Fatalf("host endpoints = %v", st.HostEndpoints)
	}
	h := st.HostEndpoints["eth0"]
	names := func(tp []dpapi.TierPolicies) []string {
		var out []string
		for _, t := range tp {
			for _, p := range t.Ingress {
				out = append(out, p.Name)
			}
		}
		return out
	}
	for _, c := range []struct {
		what string
		got  []dpapi.TierPolicies
		want []string
	}{
		{"normal", h.Tiers, []string{"fwd", "normal"}},
		{"forward", h.ForwardTiers, []string{"fwd"}},
		{"preDNAT", h.PreDNATTiers, []string{"prednat"}},
		{"untracked", h.UntrackedTiers, []string{"untracked"}},
		{"workload", st.Workloads["ns/w"].Tiers, []string{"fwd", "normal"}},
	} {
		if got := names(c.got); !slices.Equal(got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, got, c.want)
		}
	}
	if !st.Policies[pid("", "prednat")].PreDNAT || !st.Policies[pid("", "untracked")].Untracked {
		t.Error("policy flags lost")
	}
	if h.Iface != "eth0" || !slices.Equal(h.Expected, []netip.Addr{netip.MustParseAddr("192.168.0.1")}) {
		t.Errorf("host endpoint = %+v", h)
	}
}

func TestRuleConversion(t *testing.T) {
	icmp := v3.ProtocolFromString("ICMP")
	typ, code := 8, 0
	pol := gnp("p", nil, "all()", []v3.Rule{
		{Action: v3.Allow, Protocol: &icmp, ICMP: &v3.ICMPFields{Type: &typ, Code: &code}},
		{Action: v3.Deny, Protocol: tcp(), Source: v3.EntityRule{NotNets: []string{"10.1.0.0/16"}, NotSelector: "bad == 'yes'"},
			Destination: v3.EntityRule{Ports: []v3.Port{{MinPort: 1000, MaxPort: 2000}}, NotPorts: []v3.Port{v3.SinglePort(1500)}}},
		{Action: v3.Log},
	}, nil)
	_, st := run(t, put(wep("ns", "a", me, nil, "10.0.0.1/32")), put(pol))
	in := st.Policies[pid("", "p")].Inbound
	if len(in) != 3 {
		t.Fatalf("rules = %+v", in)
	}
	if in[0].Protocol != "icmp" || *in[0].ICMPType != 8 || *in[0].ICMPCode != 0 {
		t.Errorf("icmp rule = %+v", in[0])
	}
	r := in[1]
	if r.Action != dpapi.Deny || !slices.Equal(r.NotSrcNets, []netip.Prefix{mustPrefix("10.1.0.0/16")}) ||
		!slices.Equal(r.DstPorts, []dpapi.PortRange{{Min: 1000, Max: 2000}}) ||
		!slices.Equal(r.NotDstPorts, []dpapi.PortRange{{Min: 1500, Max: 1500}}) ||
		!slices.Equal(r.NotSrcIPSets, []string{selector.MustParse("bad == 'yes'").UniqueID()}) {
		t.Errorf("deny rule = %+v", r)
	}
	if in[2].Action != dpapi.Log {
		t.Errorf("log rule = %+v", in[2])
	}
	seen := map[string]bool{}
	for _, r := range in {
		if r.ID == "" || seen[r.ID] {
			t.Errorf("rule IDs must be set and distinct: %q", r.ID)
		}
		seen[r.ID] = true
	}
	// Same content, same IDs; other content, other IDs.
	_, st2 := run(t, put(wep("ns", "a", me, nil, "10.0.0.1/32")), put(pol))
	if !reflect.DeepEqual(st2.Policies, st.Policies) {
		t.Error("rule IDs are not stable")
	}
}

func TestEquivalentSelectorsShareSet(t *testing.T) {
	pol := gnp("p", nil, "all()", []v3.Rule{allowFrom("a == 'x' && b == 'y'"), allowFrom("a=='x'&&b=='y'")}, nil)
	_, st := run(t, put(wep("ns", "w", me, nil, "10.0.0.1/32")), put(pol))
	in := st.Policies[pid("", "p")].Inbound
	if in[0].SrcIPSets[0] != in[1].SrcIPSets[0] || len(st.IPSets) != 1 {
		t.Errorf("equivalent selectors got different sets: %v %v", in[0].SrcIPSets, in[1].SrcIPSets)
	}
}

func TestPoolsBlocksHosts(t *testing.T) {
	pool := v3.NewIPPool()
	pool.Name = "p1"
	pool.Spec = v3.IPPoolSpec{CIDR: "10.10.0.0/16", VXLANMode: v3.VXLANModeAlways, NATOutgoing: true}
	node := v3.NewNode()
	node.Name = "host-b"
	node.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "192.168.1.2/24"}
	node.Spec.IPv4VXLANTunnelAddr = "10.10.1.0"
	other, mine := "host:host-b", "host:"+me
	ups := []syncer.Update{
		put(pool), put(node),
		{Key: model.BlockKey{CIDR: mustPrefix("10.10.1.0/26")}, Value: &model.AllocationBlock{Affinity: &other}},
		{Key: model.BlockKey{CIDR: mustPrefix("10.10.0.0/26")}, Value: &model.AllocationBlock{Affinity: &mine}},
		{Key: model.BlockAffinityKey{Host: "host-c", CIDR: mustPrefix("10.10.2.0/26")}, Value: &model.BlockAffinity{State: "confirmed"}},
	}
	_, st := run(t, ups...)
	if p := st.Pools["p1"]; p == nil || p.VXLAN != dpapi.EncapAlways || p.IPIP != dpapi.EncapNever || !p.NATOutgoing {
		t.Errorf("pool = %+v", p)
	}
	want := []dpapi.RemoteBlock{{CIDR: mustPrefix("10.10.1.0/26"), Host: "host-b"}, {CIDR: mustPrefix("10.10.2.0/26"), Host: "host-c"}}
	if !slices.Equal(st.RemoteBlocks, want) {
		t.Errorf("remote blocks = %v, want %v", st.RemoteBlocks, want)
	}
	if h := st.Hosts["host-b"]; h == nil || h.IPv4 != mustPrefix("192.168.1.2/24") || h.VXLANTunnelAddr != netip.MustParseAddr("10.10.1.0") {
		t.Errorf("host = %+v", h)
	}
}

func TestStats(t *testing.T) {
	g, _ := run(t,
		put(wep("ns", "a", me, nil, "10.0.0.1/32")),
		put(wep("ns", "b", "host-b", nil, "10.0.0.2/32")),
		put(gnp("p", nil, "all()", []v3.Rule{allowFrom("x == 'y'")}, nil)),
		put(gnp("q", nil, "nothing == 'here'", nil, nil)),
	)
	s := g.Stats()
	if s.LocalEndpoints != 1 || s.ActivePolicies != 1 || s.ActiveSelectors != 1 || s.ClusterWorkloads != 2 || s.ClusterPolicies != 2 || s.UpdatesProcessed != 4 {
		t.Errorf("stats = %+v", s)
	}
}

// A State's maps are shared with later States until something in them
// changes; then the graph changes a copy, and the earlier State stays.
func TestStatesShareMapsUntilTheyChange(t *testing.T) {
	pool := v3.NewIPPool()
	pool.Name = "p1"
	pool.Spec = v3.IPPoolSpec{CIDR: "10.10.0.0/16"}
	node := v3.NewNode()
	node.Name = "host-b"
	g, first := run(t, put(pool), put(node), put(wep("ns", "a", me, nil, "10.0.0.1/32")))
	// A remote endpoint changes nothing the maps hold.
	g.OnUpdates([]syncer.Update{put(wep("ns", "b", "host-b", nil, "10.0.0.2/32"))})
	second := g.State()
	if !sameMap(first.Workloads, second.Workloads) || !sameMap(first.Pools, second.Pools) || !sameMap(first.Hosts, second.Hosts) {
		t.Error("an unchanged map was copied")
	}
	pool2 := v3.NewIPPool()
	pool2.Name = "p2"
	pool2.Spec = v3.IPPoolSpec{CIDR: "10.11.0.0/16"}
	g.OnUpdates([]syncer.Update{put(pool2), del(node), put(wep("ns", "c", me, nil, "10.0.0.3/32"))})
	third := g.State()
	if len(first.Pools) != 1 || len(first.Hosts) != 1 || len(first.Workloads) != 1 {
		t.Errorf("an earlier State changed: %d pools, %d hosts, %d workloads", len(first.Pools), len(first.Hosts), len(first.Workloads))
	}
	if len(third.Pools) != 2 || len(third.Hosts) != 0 || len(third.Workloads) != 2 {
		t.Errorf("the new State: %d pools, %d hosts, %d workloads", len(third.Pools), len(third.Hosts), len(third.Workloads))
	}
}

// sameMap reports whether a and b are one map.
func sameMap[K comparable, V any](a, b map[K]V) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// An edit of a policy's rules leaves the endpoints it applies to as they
// were: the same objects, so the dataplane keeps their chains.
func TestPolicyRuleEditKeepsEndpointObjects(t *testing.T) {
	g, first := run(t, put(wep("ns", "a", me, lbl("app", "web"), "10.0.0.1/32")),
		put(gnp("p", nil, "app == 'web'", []v3.Rule{allowFrom("role == 'db'")}, nil)))
	id := dpapi.WorkloadID("ns/a")
	g.OnUpdates([]syncer.Update{put(gnp("p", nil, "app == 'web'", []v3.Rule{allowFrom("role == 'cache'")}, nil))})
	second := g.State()
	if second.Workloads[id] != first.Workloads[id] {
		t.Error("a rule edit made a new workload object")
	}
	if second.Policies[pid("", "p")] == first.Policies[pid("", "p")] {
		t.Error("the edited policy kept its object")
	}
	// A selector edit that stops the policy applying changes the endpoint.
	g.OnUpdates([]syncer.Update{put(gnp("p", nil, "app == 'other'", nil, nil))})
	third := g.State()
	if third.Workloads[id] == second.Workloads[id] || len(third.Workloads[id].Tiers) != 0 {
		t.Errorf("the endpoint kept a policy that no longer applies: %+v", third.Workloads[id].Tiers)
	}
}
