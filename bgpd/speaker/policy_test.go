package speaker

import (
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

func TestBuildPolicy(t *testing.T) {
	pools := []bgpconfig.Pool{
		{CIDR: "10.65.0.0/16", Export: true},
		{CIDR: "10.65.128.0/17", Export: false},
		{CIDR: "fd00:65::/48", Export: true},
	}
	peers := []bgpconfig.Peer{
		{Address: "172.31.255.12", ASNumber: 64512},
		{Address: "172.31.255.1", ASNumber: 65001, NextHop: bgpconfig.NextHopKeep,
			ExportRules: []bgpconfig.FilterRule{
				{Filter: "f", CIDR: "10.65.9.0/24", MatchOperator: bgpconfig.MatchNotIn, PrefixLengthMax: 28, Action: bgpconfig.ActionReject},
				{Filter: "f", CIDR: "10.65.0.0/16", MatchOperator: bgpconfig.MatchIn, Source: bgpconfig.SourceRemotePeers,
					Action: bgpconfig.ActionAccept, AddCommunities: []string{"65001:7", "65001:7:1"}, PrependASPath: []uint32{64512, 64513}},
				{Filter: "f", Interface: "eth*", Action: bgpconfig.ActionReject},
			},
			ImportRules: []bgpconfig.FilterRule{
				{Filter: "f", CIDR: "198.51.100.0/24", MatchOperator: bgpconfig.MatchEqual, Communities: []string{"65001:666"},
					ASPathPrefix: []uint32{65001}, Action: bgpconfig.ActionReject},
			}},
	}
	req, err := buildPolicy(pools, peers, 7)
	if err != nil {
		t.Fatal(err)
	}
	exp, imp := req.Policies[0], req.Policies[1]
	if exp.Name != exportPolicy || imp.Name != importPolicy {
		t.Fatalf("policy names %s %s", exp.Name, imp.Name)
	}
	// next hop keep, NotIn rule, the remote-peers rule (x internal/external:
	// prepend, add large communities, accept = 6), the interface rule
	// (dropped), 3 pools.
	if len(exp.Statements) != 1+1+6+3 {
		for _, s := range exp.Statements {
			t.Log(s)
		}
		t.Fatalf("export statements: %d", len(exp.Statements))
	}
	sets := map[string]*api.DefinedSet{}
	for _, s := range req.DefinedSets {
		sets[s.Name] = s
	}
	nh := exp.Statements[0]
	if !nh.Actions.Nexthop.Unchanged || nh.Actions.RouteAction != api.RouteAction_NONE ||
		sets[nh.Conditions.NeighborSet.Name].List[0] != "172.31.255.1/32" {
		t.Errorf("next hop statement %v", nh)
	}
	notIn := exp.Statements[1]
	ps := sets[notIn.Conditions.PrefixSet.Name].Prefixes[0]
	if notIn.Conditions.PrefixSet.Type != api.MatchSet_INVERT || ps.MaskLengthMin != 24 || ps.MaskLengthMax != 28 ||
		notIn.Actions.RouteAction != api.RouteAction_REJECT {
		t.Errorf("NotIn statement %v prefix %v", notIn, ps)
	}
	chain := exp.Statements[2:8]
	if chain[0].Conditions.RouteType != api.Conditions_ROUTE_TYPE_INTERNAL || chain[3].Conditions.RouteType != api.Conditions_ROUTE_TYPE_EXTERNAL {
		t.Errorf("route types %v %v", chain[0].Conditions.RouteType, chain[3].Conditions.RouteType)
	}
	if chain[0].Actions.AsPrepend.Asn != 64513 || chain[0].Actions.RouteAction != api.RouteAction_NONE ||
		chain[1].Actions.LargeCommunity.Communities[0] != "65001:7:1" || chain[1].Actions.RouteAction != api.RouteAction_NONE ||
		chain[2].Actions.AsPrepend.Asn != 64512 || chain[2].Actions.RouteAction != api.RouteAction_ACCEPT ||
		chain[2].Actions.Community.Communities[0] != "65001:7" {
		t.Errorf("prepend chain %v", chain[:3])
	}
	// Pools: most specific first, the nested unexported pool rejects.
	p0 := exp.Statements[8]
	if sets[p0.Conditions.PrefixSet.Name].Prefixes[0].IpPrefix != "fd00:65::/48" {
		t.Errorf("first pool statement %v", p0)
	}
	p1 := exp.Statements[9]
	if pp := sets[p1.Conditions.PrefixSet.Name].Prefixes[0]; pp.IpPrefix != "10.65.128.0/17" || pp.MaskLengthMax != 32 ||
		p1.Actions.RouteAction != api.RouteAction_REJECT {
		t.Errorf("nested pool statement %v %v", p1, pp)
	}
	// Accepting export statements remove the generation stamp.
	for _, st := range exp.Statements {
		if st.Actions.RouteAction != api.RouteAction_ACCEPT {
			continue
		}
		if lc := st.Actions.LargeCommunity; lc == nil || lc.Type != api.CommunityAction_REMOVE || lc.Communities[0] != markerAnyGen {
			t.Errorf("statement %s accepts without removing the stamp: %v", st.Name, lc)
		}
	}
	// Import: remove any stamp, stamp generation 7, then the rule.
	if len(imp.Statements) != 3 {
		t.Fatalf("import statements %d", len(imp.Statements))
	}
	if a := imp.Statements[0].Actions.LargeCommunity; a.Type != api.CommunityAction_REMOVE || a.Communities[0] != markerAnyGen {
		t.Errorf("first import statement %v", imp.Statements[0])
	}
	if a := imp.Statements[1].Actions.LargeCommunity; a.Type != api.CommunityAction_ADD || a.Communities[0] != "4294967294:1128352841:7" {
		t.Errorf("second import statement %v", imp.Statements[1])
	}
	if sets[markerSet].List[0] != "^4294967294:1128352841:7$" {
		t.Errorf("generation set %v", sets[markerSet])
	}
	is := imp.Statements[2]
	if sets[is.Conditions.CommunitySet.Name].List[0] != "^65001:666$" || sets[is.Conditions.AsPathSet.Name].List[0] != "^65001_" {
		t.Errorf("import statement %v", is)
	}
	for _, s := range req.DefinedSets {
		if s.Name != markerSet && !strings.Contains("peer pool rule comm lcomm aspath", strings.SplitN(s.Name, "-", 2)[0]) {
			t.Errorf("unexpected set %s", s.Name)
		}
	}
	// Deterministic: the same input gives the same request.
	again, _ := buildPolicy(pools, []bgpconfig.Peer{peers[1], peers[0]}, 7)
	if again.String() != req.String() {
		t.Error("policy depends on peer order")
	}
}

// TestBuildTransition: the new export statements apply to paths stamped
// with the new generation only, followed by a reject of the rest of them,
// then the old statements for everything stamped before.
func TestBuildTransition(t *testing.T) {
	pools := []bgpconfig.Pool{{CIDR: "10.65.0.0/16", Export: true}}
	old := []bgpconfig.Peer{{Address: "172.31.255.1", ASNumber: 65001}}
	cur := []bgpconfig.Peer{{Address: "172.31.255.1", ASNumber: 65001, ExportRules: []bgpconfig.FilterRule{
		{Filter: "f", CIDR: "10.65.2.0/26", MatchOperator: bgpconfig.MatchEqual, Action: bgpconfig.ActionReject}}}}
	req, err := buildTransition(pools, old, pools, cur, 8)
	if err != nil {
		t.Fatal(err)
	}
	exp := req.Policies[0].Statements
	// new: rule, pool; reject of generation 8; old: pool.
	if len(exp) != 4 {
		t.Fatalf("export statements %v", exp)
	}
	for i, st := range exp[:3] {
		if ms := st.Conditions.GetLargeCommunitySet(); ms == nil || ms.Name != markerSet || ms.Type != api.MatchSet_ANY {
			t.Errorf("statement %d is not limited to generation 8: %v", i, st)
		}
	}
	if exp[0].Actions.RouteAction != api.RouteAction_REJECT || exp[1].Actions.RouteAction != api.RouteAction_ACCEPT ||
		exp[2].Actions.RouteAction != api.RouteAction_REJECT || exp[2].Conditions.PrefixSet != nil {
		t.Errorf("new statements %v", exp[:3])
	}
	if exp[3].Conditions.LargeCommunitySet != nil || exp[3].Actions.RouteAction != api.RouteAction_ACCEPT ||
		exp[3].Actions.LargeCommunity == nil {
		t.Errorf("old statement %v", exp[3])
	}
	// A rule matching a large community matches it and the stamp at once.
	cur[0].ExportRules[0].Communities = []string{"65001:1:2"}
	req, err = buildTransition(pools, old, pools, cur, 8)
	if err != nil {
		t.Fatal(err)
	}
	st := req.Policies[0].Statements[0]
	for _, s := range req.DefinedSets {
		if s.Name == st.Conditions.LargeCommunitySet.Name &&
			(st.Conditions.LargeCommunitySet.Type != api.MatchSet_ALL || strings.Join(s.List, " ") != "^65001:1:2$ ^4294967294:1128352841:8$") {
			t.Errorf("large community condition %v with set %v", st.Conditions.LargeCommunitySet, s)
		}
	}
	names := map[string]bool{}
	for _, s := range req.DefinedSets {
		if names[s.Name] {
			t.Errorf("defined set %s twice", s.Name)
		}
		names[s.Name] = true
	}
}

func TestAPIPeer(t *testing.T) {
	p := bgpconfig.Peer{
		Name: "Node_172_31_254_1", Address: "172.31.254.1", ASNumber: 65001, Passive: true, Password: "pw",
		RestartTime: 300, KeepaliveTime: 10, SourceAddress: "172.31.255.11", Multihop: true, TTLSecurity: 2,
		RouteReflectorClient: true, ClusterID: "224.0.0.1", Port: 1179,
	}
	a := apiPeer(p, mustAddr("172.31.254.1"), 64512, 3*time.Second)
	switch {
	case !a.Transport.PassiveMode, a.Transport.LocalAddress != "172.31.255.11", a.Transport.RemotePort != 1179:
		t.Errorf("transport %v", a.Transport)
	case a.Conf.AuthPassword != "pw", a.Conf.PeerAsn != 65001:
		t.Errorf("conf %v", a.Conf)
	case a.Timers.Config.ConnectRetry != 3, a.Timers.Config.HoldTime != 30, a.Timers.Config.KeepaliveInterval != 10:
		t.Errorf("timers %v", a.Timers.Config)
	case !a.GracefulRestart.Enabled, a.GracefulRestart.RestartTime != 300, !a.AfiSafis[0].MpGracefulRestart.Config.Enabled:
		t.Errorf("graceful restart %v", a.GracefulRestart)
	case a.AfiSafis[0].Config.Family.Afi != api.Family_AFI_IP:
		t.Errorf("family %v", a.AfiSafis[0].Config.Family)
	case !a.EbgpMultihop.GetEnabled(), a.TtlSecurity.TtlMin != 254:
		t.Errorf("multihop %v ttl %v", a.EbgpMultihop, a.TtlSecurity)
	case !a.RouteReflector.RouteReflectorClient:
		t.Errorf("rr %v", a.RouteReflector)
	}
	// iBGP never gets eBGP multihop; IPv6 peers get the IPv6 family.
	p.ASNumber, p.Address = 64512, "fd00::1"
	a = apiPeer(p, mustAddr("fd00::1"), 64512, time.Second)
	if a.EbgpMultihop != nil || a.AfiSafis[0].Config.Family.Afi != api.Family_AFI_IP6 {
		t.Errorf("ibgp v6 peer: multihop %v family %v", a.EbgpMultihop, a.AfiSafis[0].Config.Family)
	}
}

func TestSessionEqual(t *testing.T) {
	a := bgpconfig.Peer{Name: "Mesh_1", Address: "10.0.0.1", ASNumber: 1, Type: bgpconfig.PeerTypeMesh}
	b := a
	b.Name, b.Type, b.NextHop = "Node_1", bgpconfig.PeerTypeNode, bgpconfig.NextHopKeep
	b.ExportRules = []bgpconfig.FilterRule{{Action: bgpconfig.ActionReject}}
	if !sessionEqual(a, b) {
		t.Error("bookkeeping and policy fields should not reset a session")
	}
	b.Password = "x"
	if sessionEqual(a, b) {
		t.Error("a password change must reset the session")
	}
}

func TestSinceString(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.Local)
	if s := sinceString(now.Add(-time.Hour), now); s != "09:00:00" {
		t.Errorf("today: %q", s)
	}
	if s := sinceString(now.AddDate(0, 0, -2), now); s != "2026-11-20" {
		t.Errorf("earlier: %q", s)
	}
	if s := sinceString(time.Time{}, now); s != "" {
		t.Errorf("zero: %q", s)
	}
}

// TestExportKey: only what the export statements depend on counts; a
// peer without a next hop mode or export rules has none.
func TestExportKey(t *testing.T) {
	pools := []bgpconfig.Pool{{CIDR: "10.65.0.0/16", Export: true}}
	plain := bgpconfig.Peer{Address: "10.0.0.2", ASNumber: 64512}
	tor := bgpconfig.Peer{Address: "10.0.0.1", ASNumber: 65001, ExportRules: []bgpconfig.FilterRule{{Action: bgpconfig.ActionReject}}}
	base := exportKey(pools, []bgpconfig.Peer{tor})
	if exportKey(pools, []bgpconfig.Peer{plain, tor}) != base {
		t.Error("a peer without export statements changed the key")
	}
	imp := tor
	imp.ImportRules = []bgpconfig.FilterRule{{Action: bgpconfig.ActionReject}}
	if exportKey(pools, []bgpconfig.Peer{imp}) != base {
		t.Error("an import rule changed the export key")
	}
	nh := plain
	nh.NextHop = bgpconfig.NextHopSelf
	if exportKey(pools, []bgpconfig.Peer{tor, nh}) == base {
		t.Error("a next hop mode did not change the key")
	}
	if exportKey([]bgpconfig.Pool{{CIDR: "10.65.0.0/16"}}, []bgpconfig.Peer{tor}) == base {
		t.Error("a pool's export flag did not change the key")
	}
}

// TestDescriptionFingerprint: every session parameter gobgp would not act
// on by itself changes the description, so UpdatePeer re-creates the
// session; the password never shows in it.
func TestDescriptionFingerprint(t *testing.T) {
	p := bgpconfig.Peer{Name: "Mesh_10_0_0_2", Address: "10.0.0.2", ASNumber: 64512, RestartTime: 120, Password: "s3cret"}
	base := description(p)
	if !strings.HasPrefix(base, "Mesh_10_0_0_2 ") || strings.Contains(base, "s3cret") {
		t.Errorf("description %q", base)
	}
	for name, change := range map[string]func(*bgpconfig.Peer){
		"route reflector client": func(p *bgpconfig.Peer) { p.RouteReflectorClient, p.ClusterID = true, "224.0.0.1" },
		"keepalive":              func(p *bgpconfig.Peer) { p.KeepaliveTime = 10 },
		"ttl security":           func(p *bgpconfig.Peer) { p.TTLSecurity = 1 },
		"multihop":               func(p *bgpconfig.Peer) { p.Multihop = true },
	} {
		q := p
		change(&q)
		if description(q) == base {
			t.Errorf("%s does not change the description", name)
		}
	}
	q := p
	q.ExportRules = []bgpconfig.FilterRule{{Action: bgpconfig.ActionReject}}
	if description(q) != base {
		t.Error("a filter rule changed the description")
	}
}
