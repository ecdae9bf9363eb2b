package v3

import (
	"fmt"
)

// BGPFilter holds ordered import and export rules that BGPPeers reference by name.
type BGPFilter struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`

	Spec BGPFilterSpec `json:"spec,omitempty"`
}

// BGPFilterSpec holds the IPv4 and IPv6 rules.
type BGPFilterSpec struct {
	ExportV4 []BGPFilterRuleV4 `json:"exportV4,omitempty"`
	ImportV4 []BGPFilterRuleV4 `json:"importV4,omitempty"`
	ExportV6 []BGPFilterRuleV6 `json:"exportV6,omitempty"`
	ImportV6 []BGPFilterRuleV6 `json:"importV6,omitempty"`
}

// BGPFilterRuleV4 matches IPv4 routes and accepts or rejects them.
type BGPFilterRuleV4 struct {
	CIDR          string                   `json:"cidr,omitempty"`
	PrefixLength  *BGPFilterPrefixLengthV4 `json:"prefixLength,omitempty"`
	Source        BGPFilterMatchSource     `json:"source,omitempty"`
	Interface     string                   `json:"interface,omitempty"`
	MatchOperator BGPFilterMatchOperator   `json:"matchOperator,omitempty"`
	PeerType      BGPFilterPeerType        `json:"peerType,omitempty"`
	Communities   *BGPFilterCommunityMatch `json:"communities,omitempty"`
	ASPathPrefix  []ASNumber               `json:"asPathPrefix,omitempty"`
	Priority      *int                     `json:"priority,omitempty"`
	Action        BGPFilterAction          `json:"action"`
	Operations    []BGPFilterOperation     `json:"operations,omitempty"`
}

// BGPFilterRuleV6 matches IPv6 routes and accepts or rejects them.
type BGPFilterRuleV6 struct {
	CIDR          string                   `json:"cidr,omitempty"`
	PrefixLength  *BGPFilterPrefixLengthV6 `json:"prefixLength,omitempty"`
	Source        BGPFilterMatchSource     `json:"source,omitempty"`
	Interface     string                   `json:"interface,omitempty"`
	MatchOperator BGPFilterMatchOperator   `json:"matchOperator,omitempty"`
	PeerType      BGPFilterPeerType        `json:"peerType,omitempty"`
	Communities   *BGPFilterCommunityMatch `json:"communities,omitempty"`
	ASPathPrefix  []ASNumber               `json:"asPathPrefix,omitempty"`
	Priority      *int                     `json:"priority,omitempty"`
	Action        BGPFilterAction          `json:"action"`
	Operations    []BGPFilterOperation     `json:"operations,omitempty"`
}

// BGPFilterPrefixLengthV4 bounds the prefix length of matched IPv4 routes (0-32).
type BGPFilterPrefixLengthV4 struct {
	Min *int32 `json:"min,omitempty"`
	Max *int32 `json:"max,omitempty"`
}

// BGPFilterPrefixLengthV6 bounds the prefix length of matched IPv6 routes (0-128).
type BGPFilterPrefixLengthV6 struct {
	Min *int32 `json:"min,omitempty"`
	Max *int32 `json:"max,omitempty"`
}

// BGPFilterMatchSource limits a rule to routes from a source.
type BGPFilterMatchSource string

// BGPFilterSourceRemotePeers matches routes learned from BGP peers.
const BGPFilterSourceRemotePeers BGPFilterMatchSource = "RemotePeers"

// BGPFilterMatchOperator compares a route's prefix with the rule's CIDR.
type BGPFilterMatchOperator string

// Match operators.
const (
	MatchOperatorEqual    BGPFilterMatchOperator = "Equal"
	MatchOperatorNotEqual BGPFilterMatchOperator = "NotEqual"
	MatchOperatorIn       BGPFilterMatchOperator = "In"
	MatchOperatorNotIn    BGPFilterMatchOperator = "NotIn"
)

// BGPFilterAction is what a matching rule does.
type BGPFilterAction string

// Filter actions.
const (
	BGPFilterActionAccept BGPFilterAction = "Accept"
	BGPFilterActionReject BGPFilterAction = "Reject"
)

// BGPFilterPeerType limits a rule to eBGP or iBGP peers.
type BGPFilterPeerType string

// Peer types.
const (
	BGPFilterPeerTypeEBGP BGPFilterPeerType = "eBGP"
	BGPFilterPeerTypeIBGP BGPFilterPeerType = "iBGP"
)

// BGPFilterCommunityMatch matches routes carrying a community (one value for now).
type BGPFilterCommunityMatch struct {
	Values []string `json:"values"`
}

// BGPFilterOperation is one route change; exactly one field is set.
type BGPFilterOperation struct {
	AddCommunity  *BGPFilterAddCommunity  `json:"addCommunity,omitempty"`
	PrependASPath *BGPFilterPrependASPath `json:"prependASPath,omitempty"`
	SetPriority   *BGPFilterSetPriority   `json:"setPriority,omitempty"`
}

// BGPFilterAddCommunity adds a community to the route.
type BGPFilterAddCommunity struct {
	Value string `json:"value"`
}

// BGPFilterPrependASPath prepends AS numbers to the route's AS path.
type BGPFilterPrependASPath struct {
	Prefix []ASNumber `json:"prefix"`
}

// BGPFilterSetPriority sets the route's priority.
type BGPFilterSetPriority struct {
	Value int `json:"value"`
}

var bgpFilterIfaceRe = lazyRegexp(`^[a-zA-Z0-9_.*-]{1,15}$`)

// NewBGPFilter returns an empty BGPFilter with its type metadata set.
func NewBGPFilter() *BGPFilter {
	return &BGPFilter{TypeMeta: TypeMeta{Kind: KindBGPFilter, APIVersion: APIVersion}}
}

// Default sets only missing type metadata: Calico defaults no BGPFilter field.
func (b *BGPFilter) Default() { infraTypeMeta(&b.TypeMeta, KindBGPFilter) }

// Validate checks every rule.
func (b *BGPFilter) Validate() error {
	v := newValidator()
	v.meta(KindBGPFilter, &b.ObjectMeta, false)
	const f = "BGPFilter.Spec."
	for i, r := range b.Spec.ExportV4 {
		validateFilterRule(v, fmt.Sprintf("%sExportV4[%d]", f, i), ruleV4(r), false)
	}
	for i, r := range b.Spec.ImportV4 {
		validateFilterRule(v, fmt.Sprintf("%sImportV4[%d]", f, i), ruleV4(r), true)
	}
	for i, r := range b.Spec.ExportV6 {
		validateFilterRule(v, fmt.Sprintf("%sExportV6[%d]", f, i), ruleV6(r), false)
	}
	for i, r := range b.Spec.ImportV6 {
		validateFilterRule(v, fmt.Sprintf("%sImportV6[%d]", f, i), ruleV6(r), true)
	}
	return v.err()
}

// filterRule is a family-neutral view of a rule for validation.
type filterRule struct {
	v6             bool
	cidr           string
	hasLen         bool
	minLen, maxLen *int32
	source         BGPFilterMatchSource
	iface          string
	op             BGPFilterMatchOperator
	peerType       BGPFilterPeerType
	communities    *BGPFilterCommunityMatch
	asPathPrefix   []ASNumber
	priority       *int
	action         BGPFilterAction
	operations     []BGPFilterOperation
}

func ruleV4(r BGPFilterRuleV4) filterRule {
	fr := filterRule{cidr: r.CIDR, source: r.Source, iface: r.Interface, op: r.MatchOperator, peerType: r.PeerType,
		communities: r.Communities, asPathPrefix: r.ASPathPrefix, priority: r.Priority, action: r.Action, operations: r.Operations}
	if r.PrefixLength != nil {
		fr.hasLen, fr.minLen, fr.maxLen = true, r.PrefixLength.Min, r.PrefixLength.Max
	}
	return fr
}

func ruleV6(r BGPFilterRuleV6) filterRule {
	fr := filterRule{v6: true, cidr: r.CIDR, source: r.Source, iface: r.Interface, op: r.MatchOperator, peerType: r.PeerType,
		communities: r.Communities, asPathPrefix: r.ASPathPrefix, priority: r.Priority, action: r.Action, operations: r.Operations}
	if r.PrefixLength != nil {
		fr.hasLen, fr.minLen, fr.maxLen = true, r.PrefixLength.Min, r.PrefixLength.Max
	}
	return fr
}

func validateFilterRule(v *validator, field string, r filterRule, isImport bool) {
	v.oneOf(field+".Action", string(r.action), string(BGPFilterActionAccept), string(BGPFilterActionReject))
	if r.cidr != "" {
		p, ok := parseStrictNet(r.cidr)
		switch {
		case !ok:
			v.add(field+".CIDR", r.cidr, "must be a valid, strictly masked CIDR")
		case r.v6 && !p.Addr().Is6():
			v.add(field+".CIDR", r.cidr, "must be an IPv6 CIDR in an IPv6 rule")
		case !r.v6 && !p.Addr().Is4():
			v.add(field+".CIDR", r.cidr, "must be an IPv4 CIDR in an IPv4 rule")
		}
	}
	if r.op != "" {
		v.oneOf(field+".MatchOperator", string(r.op), string(MatchOperatorEqual), string(MatchOperatorNotEqual),
			string(MatchOperatorIn), string(MatchOperatorNotIn))
	}
	if (r.cidr != "") != (r.op != "") {
		v.add(field+".MatchOperator", r.op, "cidr and matchOperator must both be set or both be empty")
	}
	if r.hasLen {
		if r.cidr == "" {
			v.add(field+".PrefixLength", "", "cidr is required when prefixLength is set")
		}
		maxBits := int32(32)
		if r.v6 {
			maxBits = 128
		}
		for _, l := range []struct {
			name string
			n    *int32
		}{{"Min", r.minLen}, {"Max", r.maxLen}} {
			if l.n != nil && (*l.n < 0 || *l.n > maxBits) {
				v.add(field+".PrefixLength."+l.name, *l.n, fmt.Sprintf("must be between 0 and %d", maxBits))
			}
		}
	}
	if r.source != "" {
		v.oneOf(field+".Source", string(r.source), string(BGPFilterSourceRemotePeers))
		if isImport {
			v.add(field+".Source", r.source, "source is not applicable to import rules")
		}
	}
	if r.iface != "" && r.iface != "*" && !bgpFilterIfaceRe().MatchString(r.iface) {
		v.add(field+".Interface", r.iface, "invalid interface name")
	}
	if r.peerType != "" {
		v.oneOf(field+".PeerType", string(r.peerType), string(BGPFilterPeerTypeEBGP), string(BGPFilterPeerTypeIBGP))
	}
	if c := r.communities; c != nil {
		if len(c.Values) != 1 {
			v.add(field+".Communities.Values", len(c.Values), "exactly one community value must be given")
		}
		for i, val := range c.Values {
			reportCommunityValue(v, fmt.Sprintf("%s.Communities.Values[%d]", field, i), val)
		}
	}
	requireIntRange(v, field+".Priority", r.priority, 1, 2147483646)
	validateFilterOperations(v, field, r)
}

func validateFilterOperations(v *validator, field string, r filterRule) {
	if len(r.operations) == 0 {
		return
	}
	if r.action != BGPFilterActionAccept {
		v.add(field+".Operations", len(r.operations), "operations may only be used with action Accept")
	}
	if len(r.operations) > 10 {
		v.add(field+".Operations", len(r.operations), "at most 10 operations are allowed")
	}
	for i, op := range r.operations {
		of := fmt.Sprintf("%s.Operations[%d]", field, i)
		n := 0
		if op.AddCommunity != nil {
			n++
			reportCommunityValue(v, of+".AddCommunity.Value", op.AddCommunity.Value)
		}
		if op.PrependASPath != nil {
			n++
			if l := len(op.PrependASPath.Prefix); l < 1 || l > 10 {
				v.add(of+".PrependASPath.Prefix", l, "must hold between 1 and 10 AS numbers")
			}
		}
		if op.SetPriority != nil {
			n++
			if p := op.SetPriority.Value; p < 1 || p > 2147483646 {
				v.add(of+".SetPriority.Value", p, "must be between 1 and 2147483646")
			}
		}
		if n != 1 {
			v.add(of, n, "exactly one operation must be set")
		}
	}
}
