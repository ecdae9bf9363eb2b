package rules

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/calico-etcd/calico/felix/dataplane/ipsets"
	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

// ruleOwner is the policy or profile a chain's rules come from, for Log
// prefixes, and the table it is rendered in, for the deny action.
type ruleOwner struct {
	table                 string
	kind                  string // np, gnp or pro, as Calico's short kinds
	tier, name, namespace string
}

var logPrefixRe = regexp.MustCompile("%[tknp]")

// logPrefix expands Calico's LogPrefix specifiers: %t tier, %k kind, %n
// name, %p namespace/name (or name).
func (r *renderer) logPrefix(o ruleOwner) string {
	p := r.cfg.LogPrefix
	if !strings.Contains(p, "%") {
		return p
	}
	return logPrefixRe.ReplaceAllStringFunc(p, func(spec string) string {
		switch spec {
		case "%t":
			return o.tier
		case "%k":
			return o.kind
		case "%n":
			return o.name
		case "%p":
			if o.namespace != "" {
				return o.namespace + "/" + o.name
			}
			return o.name
		}
		return spec
	})
}

// policyRules renders the rules of one direction of a policy or profile
// into a chain's rules, the first of which carries comment. Each rule's
// annotations become comments on every iptables rule it renders to.
func (r *renderer) policyRules(rules []dpapi.Rule, comment string, o ruleOwner) []iptables.Rule {
	var out []iptables.Rule
	for i := range rules {
		rs := r.ruleToIptables(&rules[i], o)
		if a := rules[i].Annotations; len(a) > 0 {
			for j := range rs {
				rs[j].Comment = append(rs[j].Comment, a...)
			}
		}
		out = append(out, rs...)
	}
	if len(out) == 0 {
		out = append(out, iptables.Rule{})
	}
	out[0].Comment = append([]string{comment}, out[0].Comment...)
	return out
}

// filterNets keeps the CIDRs of the renderer's IP version; ok is false when
// the list was non-empty and none is of this version (the rule then does
// not apply to this version, as Calico).
func (r *renderer) filterNets(nets []netip.Prefix) (out []string, ok bool) {
	if len(nets) == 0 {
		return nil, true
	}
	for _, n := range nets {
		if n.IsValid() && (n.Addr().Is4() == (r.ipv == 4)) {
			out = append(out, n.Masked().String())
		}
	}
	return out, len(out) > 0
}

func (r *renderer) setName(id, typ string) string {
	if prev, ok := r.sets[id]; !ok || prev == "" {
		r.sets[id] = typ
	}
	return ipsets.Name(r.ipv, id)
}

// protocol returns the iptables name for a dpapi protocol in this IP
// version, or ok=false when the protocol cannot occur in it.
func (r *renderer) protocol(p string) (string, bool) {
	p = strings.ToLower(p)
	switch p {
	case "icmp":
		return "icmp", r.ipv == 4
	case "icmpv6", "ipv6-icmp":
		return "ipv6-icmp", r.ipv == 6
	case "1":
		return p, r.ipv == 4
	case "58":
		return p, r.ipv == 6
	}
	return p, true
}

func portProtocol(p string) bool {
	switch p {
	case "tcp", "udp", "sctp", "udplite", "6", "17", "132", "136":
		return true
	}
	return false
}

func toRanges(ps []dpapi.PortRange) []iptables.PortRange {
	out := make([]iptables.PortRange, len(ps))
	for i, p := range ps {
		out[i] = iptables.PortRange{Min: p.Min, Max: p.Max}
	}
	return out
}

// SplitPorts splits ports into multiport-sized groups: 15 slots each, a
// range taking two.
func SplitPorts(ports []iptables.PortRange) [][]iptables.PortRange {
	var splits [][]iptables.PortRange
	var cur []iptables.PortRange
	free := 15
	for _, p := range ports {
		need := 1
		if p.Min != p.Max {
			need = 2
		}
		if free < need {
			splits = append(splits, cur)
			cur, free = nil, 15
		}
		cur = append(cur, p)
		free -= need
	}
	if cur != nil {
		splits = append(splits, cur)
	}
	return splits
}

// blockBuilder ORs together matches that iptables cannot express in one
// rule (several CIDRs, more than 15 ports, numeric and named ports) using
// two scratch mark bits, as Calico: each block of rules sets the
// "this block" bit when any of its matches hits, and the "all blocks" bit
// accumulates the AND of the blocks; the final rule then matches on it.
type blockBuilder struct {
	allPass, thisPass uint32
	used, firstDone   bool
	rules             []iptables.Rule
}

func (b *blockBuilder) start(initial uint32) {
	if b.used {
		return
	}
	b.rules = append(b.rules, iptables.Rule{Action: iptables.SetMaskedMark{Mark: initial, Mask: b.allPass | b.thisPass}})
	b.used = true
}

func (b *blockBuilder) positiveMark() uint32 {
	if !b.firstDone {
		return b.allPass
	}
	return b.thisPass
}

func (b *blockBuilder) finishPositive() {
	if !b.firstDone {
		b.firstDone = true
		return
	}
	b.rules = append(b.rules, iptables.Rule{
		Match:  iptables.Match{}.MarkClear(b.thisPass),
		Action: iptables.ClearMark(b.allPass),
	})
}

func (b *blockBuilder) positiveBlock(matches []iptables.Match) {
	b.start(0)
	mark := b.positiveMark()
	for _, m := range matches {
		b.rules = append(b.rules, iptables.Rule{Match: m, Action: iptables.SetMark(mark)})
	}
	b.finishPositive()
}

func (b *blockBuilder) negativeBlock(matches []iptables.Match) {
	b.start(b.allPass)
	for _, m := range matches {
		b.rules = append(b.rules, iptables.Rule{Match: m, Action: iptables.ClearMark(b.allPass)})
	}
}

// ruleToIptables renders one dpapi rule for the renderer's IP version; it
// returns nothing when the rule does not apply to that version.
func (r *renderer) ruleToIptables(pr *dpapi.Rule, o ruleOwner) []iptables.Rule {
	if pr.IPVersion != 0 && pr.IPVersion != r.ipv {
		return nil
	}
	srcNets, ok1 := r.filterNets(pr.SrcNets)
	dstNets, ok2 := r.filterNets(pr.DstNets)
	notSrcNets, ok3 := r.filterNets(pr.NotSrcNets)
	notDstNets, ok4 := r.filterNets(pr.NotDstNets)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil
	}
	proto := ""
	if pr.Protocol != "" {
		p, ok := r.protocol(pr.Protocol)
		if !ok {
			return nil
		}
		proto = p
	}
	icmpProto := "icmp"
	if r.ipv == 6 {
		icmpProto = "ipv6-icmp"
	}
	if proto == "" && (pr.ICMPType != nil || pr.NotICMPType != nil) {
		proto = icmpProto
	}
	hasPorts := len(pr.SrcPorts)+len(pr.DstPorts)+len(pr.NotSrcPorts)+len(pr.NotDstPorts) > 0
	if hasPorts && !portProtocol(proto) {
		r.log.WithField("protocol", pr.Protocol).Warn("skipping rule with ports but no port protocol")
		return nil
	}

	b := &blockBuilder{allPass: r.cfg.MarkScratch0, thisPass: r.cfg.MarkScratch1}
	protoMatch := iptables.Match{}
	if proto != "" {
		protoMatch = protoMatch.Protocol(proto)
	}
	srcPorts, dstPorts := toRanges(pr.SrcPorts), toRanges(pr.DstPorts)
	srcNamed, dstNamed := pr.SrcNamedPortIPSets, pr.DstNamedPortIPSets

	// Ports ORed with named ports, when they do not fit one match.
	portBlock := func(ports []iptables.PortRange, named []string, src bool) {
		var ms []iptables.Match
		for _, split := range SplitPorts(ports) {
			if src {
				ms = append(ms, protoMatch.SourcePorts(split...))
			} else {
				ms = append(ms, protoMatch.DestPorts(split...))
			}
		}
		for _, id := range named {
			name := r.setName(id, ipsets.TypeIPPort)
			if src {
				ms = append(ms, iptables.Match{}.SourceIPPortSet(name))
			} else {
				ms = append(ms, iptables.Match{}.DestIPPortSet(name))
			}
		}
		b.positiveBlock(ms)
	}
	if len(SplitPorts(srcPorts))+len(srcNamed) > 1 {
		portBlock(srcPorts, srcNamed, true)
		srcPorts, srcNamed = nil, nil
	}
	if len(SplitPorts(dstPorts))+len(dstNamed) > 1 {
		portBlock(dstPorts, dstNamed, false)
		dstPorts, dstNamed = nil, nil
	}
	netBlock := func(nets []string, src bool) {
		ms := make([]iptables.Match, len(nets))
		for i, n := range nets {
			if src {
				ms[i] = iptables.Match{}.SourceNet(n)
			} else {
				ms[i] = iptables.Match{}.DestNet(n)
			}
		}
		b.positiveBlock(ms)
	}
	if len(srcNets) > 1 {
		netBlock(srcNets, true)
		srcNets = nil
	}
	if len(dstNets) > 1 {
		netBlock(dstNets, false)
		dstNets = nil
	}
	negBlock := func(nets []string, src bool) {
		ms := make([]iptables.Match, len(nets))
		for i, n := range nets {
			if src {
				ms[i] = iptables.Match{}.SourceNet(n)
			} else {
				ms[i] = iptables.Match{}.DestNet(n)
			}
		}
		b.negativeBlock(ms)
	}
	if len(srcNets)+len(notSrcNets) > 1 {
		negBlock(notSrcNets, true)
		notSrcNets = nil
	}
	if len(dstNets)+len(notDstNets) > 1 {
		negBlock(notDstNets, false)
		notDstNets = nil
	}

	// The rest of the match, positive criteria first.
	m := protoMatch
	if len(srcNets) == 1 {
		m = m.SourceNet(srcNets[0])
	}
	for _, id := range pr.SrcIPSets {
		m = m.SourceIPSet(r.setName(id, ipsets.TypeNet))
	}
	if len(srcPorts) > 0 {
		m = m.SourcePorts(srcPorts...)
	}
	for _, id := range srcNamed {
		m = m.SourceIPPortSet(r.setName(id, ipsets.TypeIPPort))
	}
	if len(dstNets) == 1 {
		m = m.DestNet(dstNets[0])
	}
	for _, id := range pr.DstIPSets {
		m = m.DestIPSet(r.setName(id, ipsets.TypeNet))
	}
	if len(dstPorts) > 0 {
		m = m.DestPorts(dstPorts...)
	}
	for _, id := range dstNamed {
		m = m.DestIPPortSet(r.setName(id, ipsets.TypeIPPort))
	}
	if pr.ICMPType != nil {
		m = r.icmpMatch(m, false, *pr.ICMPType, pr.ICMPCode)
	}
	if pr.NotProtocol != "" {
		if p, ok := r.protocol(pr.NotProtocol); ok {
			m = m.NotProtocol(p)
		}
	}
	if len(notSrcNets) == 1 {
		m = m.NotSourceNet(notSrcNets[0])
	}
	for _, id := range pr.NotSrcIPSets {
		m = m.NotSourceIPSet(r.setName(id, ipsets.TypeNet))
	}
	for _, split := range SplitPorts(toRanges(pr.NotSrcPorts)) {
		m = m.NotSourcePorts(split...)
	}
	for _, id := range pr.NotSrcNamedPortIPSets {
		m = m.NotSourceIPPortSet(r.setName(id, ipsets.TypeIPPort))
	}
	if len(notDstNets) == 1 {
		m = m.NotDestNet(notDstNets[0])
	}
	for _, id := range pr.NotDstIPSets {
		m = m.NotDestIPSet(r.setName(id, ipsets.TypeNet))
	}
	for _, split := range SplitPorts(toRanges(pr.NotDstPorts)) {
		m = m.NotDestPorts(split...)
	}
	for _, id := range pr.NotDstNamedPortIPSets {
		m = m.NotDestIPPortSet(r.setName(id, ipsets.TypeIPPort))
	}
	if pr.NotICMPType != nil {
		m = r.icmpMatch(m, true, *pr.NotICMPType, pr.NotICMPCode)
	}
	if b.used {
		m = m.MarkSet(b.allPass)
	}
	return append(b.rules, r.actionRules(pr.Action, m, o)...)
}

func (r *renderer) icmpMatch(m iptables.Match, not bool, typ int, code *int) iptables.Match {
	c := -1
	if code != nil {
		c = *code
	}
	switch {
	case r.ipv == 4 && !not:
		return m.ICMPType(typ, c)
	case r.ipv == 4:
		return m.NotICMPType(typ, c)
	case !not:
		return m.ICMPv6Type(typ, c)
	}
	return m.NotICMPv6Type(typ, c)
}

// actionRules combines a rule's match with its action: Allow and Pass set
// their mark bit and return, Deny drops, Log logs and continues.
func (r *renderer) actionRules(a dpapi.Action, m iptables.Match, o ruleOwner) []iptables.Rule {
	switch strings.ToLower(string(a)) {
	case "", "allow":
		return []iptables.Rule{
			{Match: m, Action: iptables.SetMark(r.cfg.MarkAccept)},
			{Match: iptables.Match{}.MarkSet(r.cfg.MarkAccept), Action: iptables.Return{}},
		}
	case "pass", "next-tier":
		return []iptables.Rule{
			{Match: m, Action: iptables.SetMark(r.cfg.MarkPass)},
			{Match: iptables.Match{}.MarkSet(r.cfg.MarkPass), Action: iptables.Return{}},
		}
	case "deny":
		return []iptables.Rule{{Match: m, Action: r.cfg.deny(o.table)}}
	case "log":
		if r.cfg.LogRateLimit != "" {
			m = m.Limit(r.cfg.LogRateLimit, r.cfg.LogRateLimitBurst)
		}
		return []iptables.Rule{{Match: m, Action: iptables.Log{Prefix: r.logPrefix(o)}}}
	}
	r.log.WithField("action", a).Warn("skipping rule with unknown action")
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
