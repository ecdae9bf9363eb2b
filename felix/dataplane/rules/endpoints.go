package rules

import (
	"sort"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

type chainType int

const (
	chainNormal chainType = iota
	chainUntracked
	chainPreDNAT
	chainForward
)

// endpointChainSpec describes one endpoint chain.
type endpointChainSpec struct {
	table     string
	name      string
	tiers     []dpapi.TierPolicies
	profiles  []string
	ingress   bool // which policy direction: ingress (cali-pi-) or egress (cali-po-)
	failsafe  string
	typ       chainType
	allow     iptables.Action
	dropEncap bool // drop VXLAN/IPIP packets sent by workloads
}

// endpointChain renders a workload or host endpoint chain: conntrack
// shortcuts, failsafes, each tier's policies in order with an end-of-tier
// drop, then the profiles and a final drop.
func (r *renderer) endpointChain(s endpointChainSpec) *iptables.Chain {
	var rules []iptables.Rule
	deny := r.cfg.deny(s.table)
	if s.typ != chainUntracked {
		if _, isAccept := s.allow.(iptables.Accept); !isAccept {
			rules = append(rules, iptables.Rule{
				Match:  iptables.Match{}.ConntrackState("RELATED,ESTABLISHED"),
				Action: iptables.SetMark(r.cfg.MarkAccept),
			})
		}
		rules = append(rules, iptables.Rule{Match: iptables.Match{}.ConntrackState("RELATED,ESTABLISHED"), Action: s.allow})
		if !r.cfg.DisableConntrackInvalid {
			rules = append(rules, iptables.Rule{Match: iptables.Match{}.ConntrackState("INVALID"), Action: deny})
		}
	}
	if s.failsafe != "" {
		rules = append(rules, iptables.Rule{Action: iptables.Jump{Target: s.failsafe}})
	}
	rules = append(rules, iptables.Rule{Action: iptables.ClearMark(r.cfg.MarkAccept)})
	if s.dropEncap && !r.cfg.AllowVXLANFromWorkloads {
		rules = append(rules, iptables.Rule{
			Match:   iptables.Match{}.Protocol("17").DestPorts(iptables.Port(uint16(r.cfg.VXLANPort))),
			Action:  deny,
			Comment: []string{"Drop VXLAN encapped packets originating in workloads"},
		})
	}
	if s.dropEncap && !r.cfg.AllowIPIPFromWorkloads {
		rules = append(rules, iptables.Rule{
			Match:   iptables.Match{}.Protocol("4"),
			Action:  deny,
			Comment: []string{"Drop IPinIP encapped packets originating in workloads"},
		})
	}
	polPrefix := PolicyOutboundPrefix
	if s.ingress {
		polPrefix = PolicyInboundPrefix
	}
	anyTier := false
	for _, tier := range s.tiers {
		pols := tier.Egress
		if s.ingress {
			pols = tier.Ingress
		}
		if len(pols) == 0 {
			continue
		}
		anyTier = true
		rules = append(rules, iptables.Rule{
			Action:  iptables.ClearMark(r.cfg.MarkPass),
			Comment: []string{"Start of tier " + tier.Name},
		})
		for _, id := range pols {
			chain := PolicyChainName(polPrefix, id)
			r.refPolicy(s.table, chain, id, s.ingress)
			rules = append(rules, iptables.Rule{
				Match:  iptables.Match{}.MarkClear(r.cfg.MarkPass),
				Action: iptables.Jump{Target: chain},
			})
			if s.typ == chainUntracked {
				rules = append(rules, iptables.Rule{
					Match:  iptables.Match{}.MarkSet(r.cfg.MarkAccept),
					Action: iptables.NoTrack{},
				})
			}
			rules = append(rules, iptables.Rule{
				Match:   iptables.Match{}.MarkSet(r.cfg.MarkAccept),
				Action:  iptables.Return{},
				Comment: []string{"Return if policy accepted"},
			})
		}
		if (s.typ == chainNormal || s.typ == chainForward) && tier.DefaultAction != "Pass" {
			rules = append(rules, iptables.Rule{
				Match:   iptables.Match{}.MarkClear(r.cfg.MarkPass),
				Action:  deny,
				Comment: []string{"Drop if no policies passed packet"},
			})
		}
	}
	if s.typ == chainForward && !anyTier {
		rules = append(rules,
			iptables.Rule{Action: iptables.SetMark(r.cfg.MarkAccept), Comment: []string{"Allow forwarded traffic by default"}},
			iptables.Rule{Action: iptables.Return{}, Comment: []string{"Return for accepted forward traffic"}},
		)
	}
	if s.typ == chainNormal {
		profPrefix := ProfileOutboundPrefix
		if s.ingress {
			profPrefix = ProfileInboundPrefix
		}
		for _, prof := range s.profiles {
			chain := ProfileChainName(profPrefix, prof)
			r.refProfile(s.table, chain, prof, s.ingress)
			rules = append(rules,
				iptables.Rule{Action: iptables.Jump{Target: chain}},
				iptables.Rule{
					Match:   iptables.Match{}.MarkSet(r.cfg.MarkAccept),
					Action:  iptables.Return{},
					Comment: []string{"Return if profile accepted"},
				})
		}
		rules = append(rules, iptables.Rule{Action: deny, Comment: []string{"Drop if no profiles matched"}})
	}
	return &iptables.Chain{Name: s.name, Rules: rules}
}

// workloadChains renders the to- and from-workload chains of a workload.
func (r *renderer) workloadChains(w *dpapi.Workload) []*iptables.Chain {
	return []*iptables.Chain{
		r.endpointChain(endpointChainSpec{
			table: "filter", name: EndpointChainName(WorkloadToEndpointPrefix, w.Iface),
			tiers: w.Tiers, profiles: w.Profiles, ingress: true, allow: r.cfg.filterAllow(),
		}),
		r.endpointChain(endpointChainSpec{
			table: "filter", name: EndpointChainName(WorkloadFromEndpointPrefix, w.Iface),
			tiers: w.Tiers, profiles: w.Profiles, ingress: false, allow: r.cfg.filterAllow(), dropEncap: true,
		}),
	}
}

// dispatchChains renders a pair of interface dispatch chains: one rule per
// interface that goes to its endpoint chain, split into child chains by
// the character after the names' common prefix when several names share
// it (Calico's shallow tree), then endRules.
func dispatchChains(names []string, fromPrefix, toPrefix, fromChain, toChain string,
	fromEnd, toEnd []iptables.Rule,
) []*iptables.Chain {
	names = append([]string(nil), names...)
	sort.Strings(names)
	names = dedup(names)
	common := commonPrefix(names)
	var prefixes []string
	byPrefix := map[string][]string{}
	for _, n := range names {
		p := common
		if len(n) > len(common) {
			p = n[:len(common)+1]
		}
		if _, ok := byPrefix[p]; !ok {
			prefixes = append(prefixes, p)
		}
		byPrefix[p] = append(byPrefix[p], n)
	}
	build := func(root, epPrefix string, in bool, end []iptables.Rule) []*iptables.Chain {
		match := func(iface string) iptables.Match {
			if in {
				return iptables.Match{}.InInterface(iface)
			}
			return iptables.Match{}.OutInterface(iface)
		}
		var chains []*iptables.Chain
		var rootRules []iptables.Rule
		for _, p := range prefixes {
			group := byPrefix[p]
			if len(group) == 1 {
				rootRules = append(rootRules, iptables.Rule{
					Match: match(group[0]), Action: iptables.Goto{Target: EndpointChainName(epPrefix, group[0])}})
				continue
			}
			child := root + "-" + p[len(common):]
			rootRules = append(rootRules, iptables.Rule{Match: match(p + "+"), Action: iptables.Goto{Target: child}})
			var childRules []iptables.Rule
			for _, n := range group {
				childRules = append(childRules, iptables.Rule{
					Match: match(n), Action: iptables.Goto{Target: EndpointChainName(epPrefix, n)}})
			}
			chains = append(chains, &iptables.Chain{Name: child, Rules: append(childRules, end...)})
		}
		return append(chains, &iptables.Chain{Name: root, Rules: append(rootRules, end...)})
	}
	var out []*iptables.Chain
	if fromChain != "" {
		out = append(out, build(fromChain, fromPrefix, true, fromEnd)...)
	}
	if toChain != "" {
		out = append(out, build(toChain, toPrefix, false, toEnd)...)
	}
	return out
}

func dedup(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func commonPrefix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	p := names[0]
	for _, n := range names[1:] {
		i := 0
		for i < len(p) && i < len(n) && p[i] == n[i] {
			i++
		}
		p = p[:i]
	}
	return p
}

// hostEndpoint is a host endpoint bound to one interface ("*" for all).
type hostEndpoint struct {
	iface string
	hep   *dpapi.HostEndpoint
}

// hostDispatchChains renders dispatch chains for host endpoints; a "*"
// endpoint becomes the default at the end of the chains.
func (r *renderer) hostDispatchChains(heps []hostEndpoint, fromPfx, toPfx, fromChain, toChain string, skipWorkloads bool) []*iptables.Chain {
	var names []string
	var fromEnd, toEnd []iptables.Rule
	for _, h := range heps {
		if h.iface != "*" {
			names = append(names, h.iface)
			continue
		}
		if fromChain != "" {
			fromEnd = []iptables.Rule{{Action: iptables.Goto{Target: EndpointChainName(fromPfx, "*")}}}
		}
		if toChain != "" {
			if skipWorkloads {
				for _, p := range r.cfg.WorkloadIfacePrefixes {
					toEnd = append(toEnd, iptables.Rule{
						Match:   iptables.Match{}.OutInterface(p + "+"),
						Action:  iptables.Return{},
						Comment: []string{"Skip egress WHEP policy for traffic to local workload"},
					})
				}
			}
			toEnd = append(toEnd, iptables.Rule{Action: iptables.Goto{Target: EndpointChainName(toPfx, "*")}})
		}
	}
	return dispatchChains(names, fromPfx, toPfx, fromChain, toChain, fromEnd, toEnd)
}
