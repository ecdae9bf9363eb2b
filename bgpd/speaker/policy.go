package speaker

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// Policy names.
const (
	exportPolicy = "calico-export"
	importPolicy = "calico-import"
)

// Every path entering the table (learned, or originated here) gets a
// large community stamp, 4294967294:1128352841:<generation> (a private
// 4-byte AS and "CALI"), from the import policy, and every export
// statement that accepts a path removes it, so it never reaches a peer.
// The generation goes up with each change of the export statements: a
// transition policy then tells paths stamped for the new rules from older
// ones (see buildTransition). A large community, because gobgp drops an
// emptied large (or standard) community attribute but sends an emptied
// extended one, which peers treat as malformed.
const (
	markerSet    = "calico-generation"
	markerPrefix = "4294967294:1128352841:"
	markerAnyGen = "^4294967294:1128352841:[0-9]+$"
)

func marker(gen uint32) string { return markerPrefix + strconv.FormatUint(uint64(gen), 10) }

func markerRegexp(gen uint32) string { return "^" + marker(gen) + "$" }

// policyBuilder accumulates defined sets and statements.
type policyBuilder struct {
	sets []*api.DefinedSet
	n    int
}

func (b *policyBuilder) set(t api.DefinedType, prefix string, list []string, prefixes []*api.Prefix) string {
	b.n++
	name := prefix + "-" + strconv.Itoa(b.n)
	b.sets = append(b.sets, &api.DefinedSet{DefinedType: t, Name: name, List: list, Prefixes: prefixes})
	return name
}

// buildPolicy renders the export and import policies of generation gen:
//
//	export (default reject):
//	  1. next hop self/keep per peer            (no verdict, continue)
//	  2. each peer's BGPFilter export rules      (first match decides)
//	  3. pools, most specific first: accept routes inside exportable
//	     pools, reject routes inside the others
//	  (every accepting statement removes the generation stamp)
//	import (default accept):
//	  0. stamp the path with generation gen      (no verdict, continue)
//	  1. each peer's BGPFilter import rules      (first match decides)
//
// Routes outside every pool (say, a default route learned from a ToR) are
// therefore never passed on, as Calico's BIRD filters do.
func buildPolicy(pools []bgpconfig.Pool, peers []bgpconfig.Peer, gen uint32) (*api.SetPoliciesRequest, error) {
	b := &policyBuilder{}
	exp, err := b.exportStatements(pools, peers)
	if err != nil {
		return nil, err
	}
	imp, err := b.importStatements(peers)
	if err != nil {
		return nil, err
	}
	return b.request(stripping(exp), imp, gen), nil
}

// buildTransition renders the policy that moves the peers from the export
// statements of (oldPools, oldPeers) to those of (pools, peers), import as
// buildPolicy's for gen:
//
//	export: the new statements, each only for paths stamped gen
//	        reject the other paths stamped gen
//	        the old statements (paths stamped earlier)
//
// While it is installed every path is stamped again (locally originated
// paths re-added, the peers' paths re-imported). gobgp then compares each
// path's new version, judged by the new rules, with its old one, judged by
// the old rules: what the new rules reject but the old accepted was sent
// before and is withdrawn; what they accept is sent. That is the
// withdrawal gobgp's soft reset out leaves out, without resetting a
// session.
func buildTransition(oldPools []bgpconfig.Pool, oldPeers []bgpconfig.Peer, pools []bgpconfig.Pool, peers []bgpconfig.Peer, gen uint32) (*api.SetPoliciesRequest, error) {
	b := &policyBuilder{}
	newExp, err := b.exportStatements(pools, peers)
	if err != nil {
		return nil, err
	}
	oldExp, err := b.exportStatements(oldPools, oldPeers)
	if err != nil {
		return nil, err
	}
	imp, err := b.importStatements(peers)
	if err != nil {
		return nil, err
	}
	var exp []*api.Statement
	for _, st := range stripping(newExp) {
		exp = append(exp, b.forGeneration(st, gen)...)
	}
	exp = append(exp, &api.Statement{
		Conditions: &api.Conditions{LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_ANY, Name: markerSet}},
		Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
	})
	exp = append(exp, stripping(oldExp)...)
	return b.request(exp, imp, gen), nil
}

// forGeneration limits st to paths stamped gen. A statement that already
// matches a large community (a BGPFilter rule's, one value) matches it and
// the stamp together; with several values it becomes one statement per
// value.
func (b *policyBuilder) forGeneration(st *api.Statement, gen uint32) []*api.Statement {
	c, _ := proto.Clone(st.Conditions).(*api.Conditions)
	if c == nil {
		c = &api.Conditions{}
	}
	if c.LargeCommunitySet == nil {
		c.LargeCommunitySet = &api.MatchSet{Type: api.MatchSet_ANY, Name: markerSet}
		return []*api.Statement{{Conditions: c, Actions: st.Actions}}
	}
	var values []string
	for _, s := range b.sets {
		if s.Name == c.LargeCommunitySet.Name {
			values = s.List
		}
	}
	out := make([]*api.Statement, 0, len(values))
	for _, v := range values {
		vc := proto.Clone(c).(*api.Conditions)
		vc.LargeCommunitySet = &api.MatchSet{Type: api.MatchSet_ALL,
			Name: b.set(api.DefinedType_LARGE_COMMUNITY, "lcomm", []string{v, markerRegexp(gen)}, nil)}
		out = append(out, &api.Statement{Conditions: vc, Actions: st.Actions})
	}
	return out
}

// request assembles the policies, names the statements and adds the
// generation's defined set and stamp.
func (b *policyBuilder) request(exp, imp []*api.Statement, gen uint32) *api.SetPoliciesRequest {
	stamp := []*api.Statement{
		{Actions: &api.Actions{RouteAction: api.RouteAction_NONE,
			LargeCommunity: &api.CommunityAction{Type: api.CommunityAction_REMOVE, Communities: []string{markerAnyGen}}}},
		{Actions: &api.Actions{RouteAction: api.RouteAction_NONE,
			LargeCommunity: &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: []string{marker(gen)}}}},
	}
	imp = append(stamp, imp...)
	for i, st := range exp {
		st.Name = fmt.Sprintf("%s-%d", exportPolicy, i)
	}
	for i, st := range imp {
		st.Name = fmt.Sprintf("%s-%d", importPolicy, i)
	}
	sets := append(b.sets, &api.DefinedSet{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: markerSet,
		List: []string{markerRegexp(gen)}})
	return &api.SetPoliciesRequest{
		DefinedSets: sets,
		Policies: []*api.Policy{
			{Name: exportPolicy, Statements: exp},
			{Name: importPolicy, Statements: imp},
		},
		Assignments: []*api.PolicyAssignment{
			{Name: "global", Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: exportPolicy}}, DefaultAction: api.RouteAction_REJECT},
			{Name: "global", Direction: api.PolicyDirection_IMPORT, Policies: []*api.Policy{{Name: importPolicy}}, DefaultAction: api.RouteAction_ACCEPT},
		},
	}
}

// stripping makes every accepting statement remove the generation stamp.
// A statement that also adds large communities (one action of a kind per
// statement) first adds them in a statement of its own with the same
// conditions, which adding communities cannot make false.
func stripping(sts []*api.Statement) []*api.Statement {
	out := make([]*api.Statement, 0, len(sts))
	for _, st := range sts {
		if st.Actions.GetRouteAction() != api.RouteAction_ACCEPT {
			out = append(out, st)
			continue
		}
		a := proto.Clone(st.Actions).(*api.Actions)
		if a.LargeCommunity != nil {
			out = append(out, &api.Statement{Conditions: st.Conditions,
				Actions: &api.Actions{RouteAction: api.RouteAction_NONE, LargeCommunity: a.LargeCommunity}})
		}
		a.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_REMOVE, Communities: []string{markerAnyGen}}
		out = append(out, &api.Statement{Conditions: st.Conditions, Actions: a})
	}
	return out
}

// sortedPeers orders peers by address, so the policies do not depend on
// the config's order.
func sortedPeers(peers []bgpconfig.Peer) []bgpconfig.Peer {
	sorted := slices.Clone(peers)
	slices.SortFunc(sorted, func(x, y bgpconfig.Peer) int { return strings.Compare(x.Address, y.Address) })
	return sorted
}

// exportStatements renders next hop modes, the peers' export rules and the
// pools.
func (b *policyBuilder) exportStatements(pools []bgpconfig.Pool, peers []bgpconfig.Peer) ([]*api.Statement, error) {
	var exp []*api.Statement
	sorted := sortedPeers(peers)
	for _, p := range sorted {
		if p.NextHop == bgpconfig.NextHopAuto {
			continue
		}
		nb := b.neighbor(p.Address)
		act := &api.NexthopAction{Self: p.NextHop == bgpconfig.NextHopSelf, Unchanged: p.NextHop == bgpconfig.NextHopKeep}
		exp = append(exp, &api.Statement{
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: nb}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_NONE, Nexthop: act},
		})
	}
	for _, p := range sorted {
		for _, r := range p.ExportRules {
			st, err := b.rule(p.Address, r)
			if err != nil {
				return nil, fmt.Errorf("peer %s export rule of %s: %w", p.Address, r.Filter, err)
			}
			exp = append(exp, st...)
		}
	}
	ps := slices.Clone(pools)
	slices.SortStableFunc(ps, func(x, y bgpconfig.Pool) int {
		return netip.MustParsePrefix(y.CIDR).Bits() - netip.MustParsePrefix(x.CIDR).Bits()
	})
	for _, pool := range ps {
		cidr, err := netip.ParsePrefix(pool.CIDR)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", pool.CIDR, err)
		}
		name := b.set(api.DefinedType_PREFIX, "pool", nil, []*api.Prefix{{
			IpPrefix: cidr.Masked().String(), MaskLengthMin: uint32(cidr.Bits()), MaskLengthMax: uint32(cidr.Addr().BitLen()),
		}})
		verdict := api.RouteAction_REJECT
		if pool.Export {
			verdict = api.RouteAction_ACCEPT
		}
		exp = append(exp, &api.Statement{
			Conditions: &api.Conditions{PrefixSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: name}},
			Actions:    &api.Actions{RouteAction: verdict},
		})
	}
	return exp, nil
}

// importStatements renders the peers' import rules.
func (b *policyBuilder) importStatements(peers []bgpconfig.Peer) ([]*api.Statement, error) {
	var imp []*api.Statement
	for _, p := range sortedPeers(peers) {
		for _, r := range p.ImportRules {
			st, err := b.rule(p.Address, r)
			if err != nil {
				return nil, fmt.Errorf("peer %s import rule of %s: %w", p.Address, r.Filter, err)
			}
			imp = append(imp, st...)
		}
	}
	return imp, nil
}

// exportKey identifies everything the export statements depend on.
func exportKey(pools []bgpconfig.Pool, peers []bgpconfig.Peer) string {
	type peerKey struct {
		Address, NextHop string
		Rules            []bgpconfig.FilterRule
	}
	keys := make([]peerKey, 0, len(peers))
	for _, p := range sortedPeers(peers) {
		// A peer without a next hop mode or rules has no statement: its
		// coming and going changes nothing for the others.
		if p.NextHop != bgpconfig.NextHopAuto || len(p.ExportRules) > 0 {
			keys = append(keys, peerKey{p.Address, p.NextHop, p.ExportRules})
		}
	}
	b, _ := json.Marshal(struct {
		Pools []bgpconfig.Pool
		Peers []peerKey
	}{pools, keys})
	return string(b)
}

func (b *policyBuilder) neighbor(addr string) string {
	a := netip.MustParseAddr(addr)
	return b.set(api.DefinedType_NEIGHBOR, "peer", []string{netip.PrefixFrom(a, a.BitLen()).String()}, nil)
}

// rule renders one BGPFilter rule for one neighbour: usually one
// statement, two when it matches routes from remote peers (iBGP and eBGP
// are separate route types), none when it can never match (interface).
func (b *policyBuilder) rule(peer string, r bgpconfig.FilterRule) ([]*api.Statement, error) {
	if r.Interface != "" {
		return nil, nil
	}
	cond := &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: b.neighbor(peer)}}
	if r.CIDR != "" {
		cidr, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			return nil, err
		}
		lo, hi := cidr.Bits(), cidr.Bits()
		if r.MatchOperator == bgpconfig.MatchIn || r.MatchOperator == bgpconfig.MatchNotIn {
			hi = cidr.Addr().BitLen()
			if r.PrefixLengthMin > lo {
				lo = r.PrefixLengthMin
			}
			if r.PrefixLengthMax > 0 && r.PrefixLengthMax < hi {
				hi = r.PrefixLengthMax
			}
		}
		name := b.set(api.DefinedType_PREFIX, "rule", nil, []*api.Prefix{{
			IpPrefix: cidr.Masked().String(), MaskLengthMin: uint32(lo), MaskLengthMax: uint32(hi),
		}})
		t := api.MatchSet_ANY
		if r.MatchOperator == bgpconfig.MatchNotEqual || r.MatchOperator == bgpconfig.MatchNotIn {
			t = api.MatchSet_INVERT
		}
		cond.PrefixSet = &api.MatchSet{Type: t, Name: name}
	}
	var std, large []string
	for _, c := range r.Communities {
		if _, isLarge, err := bgpconfig.ParseCommunity(c); err != nil {
			return nil, err
		} else if isLarge {
			large = append(large, "^"+c+"$")
		} else {
			std = append(std, "^"+c+"$")
		}
	}
	if len(std) > 0 {
		cond.CommunitySet = &api.MatchSet{Type: api.MatchSet_ANY, Name: b.set(api.DefinedType_COMMUNITY, "comm", std, nil)}
	}
	if len(large) > 0 {
		cond.LargeCommunitySet = &api.MatchSet{Type: api.MatchSet_ANY, Name: b.set(api.DefinedType_LARGE_COMMUNITY, "lcomm", large, nil)}
	}
	if len(r.ASPathPrefix) > 0 {
		parts := make([]string, len(r.ASPathPrefix))
		for i, as := range r.ASPathPrefix {
			parts[i] = strconv.FormatUint(uint64(as), 10)
		}
		cond.AsPathSet = &api.MatchSet{Type: api.MatchSet_ANY,
			Name: b.set(api.DefinedType_AS_PATH, "aspath", []string{"^" + strings.Join(parts, "_") + "_"}, nil)}
	}
	act := &api.Actions{RouteAction: api.RouteAction_REJECT}
	if r.Action == bgpconfig.ActionAccept {
		act.RouteAction = api.RouteAction_ACCEPT
	}
	var std2, large2 []string
	for _, c := range r.AddCommunities {
		if _, isLarge, err := bgpconfig.ParseCommunity(c); err != nil {
			return nil, err
		} else if isLarge {
			large2 = append(large2, c)
		} else {
			std2 = append(std2, c)
		}
	}
	if len(std2) > 0 {
		act.Community = &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: std2}
	}
	if len(large2) > 0 {
		act.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: large2}
	}
	// gobgp prepends one AS (repeated) per statement: a prefix of several
	// ASes becomes a chain of statements with the same conditions, the
	// last AS first, so the path ends up starting with the prefix in order.
	var chain []*api.Statement
	prepend := r.PrependASPath
	for i := len(prepend) - 1; i > 0; i-- {
		chain = append(chain, &api.Statement{Conditions: cond, Actions: &api.Actions{
			RouteAction: api.RouteAction_NONE, AsPrepend: &api.AsPrependAction{Asn: prepend[i], Repeat: 1},
		}})
	}
	if len(prepend) > 0 {
		act.AsPrepend = &api.AsPrependAction{Asn: prepend[0], Repeat: 1}
	}
	chain = append(chain, &api.Statement{Conditions: cond, Actions: act})
	if r.Source != bgpconfig.SourceRemotePeers {
		return chain, nil
	}
	// Routes from remote peers: internal or external, never local.
	var out []*api.Statement
	for _, rt := range []api.Conditions_RouteType{api.Conditions_ROUTE_TYPE_INTERNAL, api.Conditions_ROUTE_TYPE_EXTERNAL} {
		for _, st := range chain {
			c := proto.Clone(st.Conditions).(*api.Conditions)
			c.RouteType = rt
			out = append(out, &api.Statement{Conditions: c, Actions: st.Actions})
		}
	}
	return out, nil
}
