package calc

import (
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// ruleFields is what BGPFilterRuleV4 and BGPFilterRuleV6 share.
type ruleFields struct {
	cidr         string
	min, max     *int32
	source       v3.BGPFilterMatchSource
	iface        string
	op           v3.BGPFilterMatchOperator
	peerType     v3.BGPFilterPeerType
	communities  *v3.BGPFilterCommunityMatch
	asPathPrefix []v3.ASNumber
	priority     *int
	action       v3.BGPFilterAction
	operations   []v3.BGPFilterOperation
}

func fromV4(r v3.BGPFilterRuleV4) ruleFields {
	f := ruleFields{cidr: r.CIDR, source: r.Source, iface: r.Interface, op: r.MatchOperator, peerType: r.PeerType,
		communities: r.Communities, asPathPrefix: r.ASPathPrefix, priority: r.Priority, action: r.Action, operations: r.Operations}
	if r.PrefixLength != nil {
		f.min, f.max = r.PrefixLength.Min, r.PrefixLength.Max
	}
	return f
}

func fromV6(r v3.BGPFilterRuleV6) ruleFields {
	f := ruleFields{cidr: r.CIDR, source: r.Source, iface: r.Interface, op: r.MatchOperator, peerType: r.PeerType,
		communities: r.Communities, asPathPrefix: r.ASPathPrefix, priority: r.Priority, action: r.Action, operations: r.Operations}
	if r.PrefixLength != nil {
		f.min, f.max = r.PrefixLength.Min, r.PrefixLength.Max
	}
	return f
}

// filterRules flattens the named BGPFilters into one session's import and
// export rules: the family's rules only, and only those whose peerType
// matches the session (eBGP when the ASes differ).
func (c *computation) filterRules(peer string, names []string, v6, ebgp bool) (imp, exp []bgpconfig.FilterRule) {
	for _, name := range names {
		f := c.s.Filters[name]
		if f == nil {
			c.warn("BGPPeer %s: BGPFilter %s does not exist; ignored", peer, name)
			continue
		}
		var in, out []ruleFields
		if v6 {
			for _, r := range f.Spec.ImportV6 {
				in = append(in, fromV6(r))
			}
			for _, r := range f.Spec.ExportV6 {
				out = append(out, fromV6(r))
			}
		} else {
			for _, r := range f.Spec.ImportV4 {
				in = append(in, fromV4(r))
			}
			for _, r := range f.Spec.ExportV4 {
				out = append(out, fromV4(r))
			}
		}
		for _, r := range in {
			if br, ok := c.rule(name, r, ebgp); ok {
				imp = append(imp, br)
			}
		}
		for _, r := range out {
			if br, ok := c.rule(name, r, ebgp); ok {
				exp = append(exp, br)
			}
		}
	}
	return imp, exp
}

func (c *computation) rule(filter string, r ruleFields, ebgp bool) (bgpconfig.FilterRule, bool) {
	switch r.peerType {
	case v3.BGPFilterPeerTypeEBGP:
		if !ebgp {
			return bgpconfig.FilterRule{}, false
		}
	case v3.BGPFilterPeerTypeIBGP:
		if ebgp {
			return bgpconfig.FilterRule{}, false
		}
	}
	if r.priority != nil {
		c.warn("BGPFilter %s: matching on priority is not supported; rule ignored", filter)
		return bgpconfig.FilterRule{}, false
	}
	out := bgpconfig.FilterRule{
		Filter:        filter,
		CIDR:          r.cidr,
		MatchOperator: string(r.op),
		Source:        string(r.source),
		Interface:     r.iface,
		Action:        string(r.action),
	}
	if r.min != nil {
		out.PrefixLengthMin = int(*r.min)
	}
	if r.max != nil {
		out.PrefixLengthMax = int(*r.max)
	}
	if r.communities != nil {
		out.Communities = append(out.Communities, r.communities.Values...)
	}
	for _, as := range r.asPathPrefix {
		out.ASPathPrefix = append(out.ASPathPrefix, uint32(as))
	}
	for _, op := range r.operations {
		switch {
		case op.AddCommunity != nil:
			out.AddCommunities = append(out.AddCommunities, op.AddCommunity.Value)
		case op.PrependASPath != nil:
			for _, as := range op.PrependASPath.Prefix {
				out.PrependASPath = append(out.PrependASPath, uint32(as))
			}
		case op.SetPriority != nil:
			c.warn("BGPFilter %s: setPriority is not supported; operation ignored", filter)
		}
	}
	if r.iface != "" {
		c.warn("BGPFilter %s: interface matches are not supported by bgpd; the rule never matches", filter)
	}
	return out, true
}
