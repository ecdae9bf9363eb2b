package speaker

import (
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

// buildPolicy renders the export and import policies:
//
//	export (default reject):
//	  1. next hop self/keep per peer            (no verdict, continue)
//	  2. each peer's BGPFilter export rules      (first match decides)
//	  3. pools, most specific first: accept routes inside exportable
//	     pools, reject routes inside the others
//	import (default accept):
//	  each peer's BGPFilter import rules          (first match decides)
//
// Routes outside every pool (say, a default route learned from a ToR) are
// therefore never passed on, as Calico's BIRD filters do.
func buildPolicy(pools []bgpconfig.Pool, peers []bgpconfig.Peer) (*api.SetPoliciesRequest, error) {
	b := &policyBuilder{}
	var exp, imp []*api.Statement
	sorted := slices.Clone(peers)
	slices.SortFunc(sorted, func(x, y bgpconfig.Peer) int { return strings.Compare(x.Address, y.Address) })

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
		for _, r := range p.ImportRules {
			st, err := b.rule(p.Address, r)
			if err != nil {
				return nil, fmt.Errorf("peer %s import rule of %s: %w", p.Address, r.Filter, err)
			}
			imp = append(imp, st...)
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
	for i, st := range exp {
		st.Name = fmt.Sprintf("%s-%d", exportPolicy, i)
	}
	for i, st := range imp {
		st.Name = fmt.Sprintf("%s-%d", importPolicy, i)
	}
	req := &api.SetPoliciesRequest{
		DefinedSets: b.sets,
		Policies: []*api.Policy{
			{Name: exportPolicy, Statements: exp},
			{Name: importPolicy, Statements: imp},
		},
		Assignments: []*api.PolicyAssignment{
			{Name: "global", Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: exportPolicy}}, DefaultAction: api.RouteAction_REJECT},
			{Name: "global", Direction: api.PolicyDirection_IMPORT, Policies: []*api.Policy{{Name: importPolicy}}, DefaultAction: api.RouteAction_ACCEPT},
		},
	}
	return req, nil
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
