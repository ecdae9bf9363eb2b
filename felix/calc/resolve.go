package calc

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// orderedTier is a tier with its policies sorted.
type orderedTier struct {
	name          string
	defaultAction string
	order         *float64
	pols          []*policy
}

// cmpOrder sorts by order, nil last, then by name.
func cmpOrder(a, b *float64, an, bn string) int {
	switch {
	case a != nil && b != nil && *a != *b:
		return cmp.Compare(*a, *b)
	case a != nil && b == nil:
		return -1
	case a == nil && b != nil:
		return 1
	}
	return strings.Compare(an, bn)
}

// orderedTiers sorts the tiers that hold policies and their policies.
func (g *Graph) orderedTiers() []*orderedTier {
	byName := map[string]*orderedTier{}
	for _, p := range g.policies {
		t := byName[p.id.Tier]
		if t == nil {
			t = &orderedTier{name: p.id.Tier, defaultAction: string(v3.Deny)}
			if ti, ok := g.tiers[p.id.Tier]; ok {
				t.order, t.defaultAction = ti.order, ti.defaultAction
			} else if p.id.Tier == v3.DefaultTierName {
				o := v3.DefaultTierOrder
				t.order = &o
			}
			byName[p.id.Tier] = t
		}
		t.pols = append(t.pols, p)
	}
	out := slices.Collect(maps.Values(byName))
	slices.SortFunc(out, func(a, b *orderedTier) int { return cmpOrder(a.order, b.order, a.name, b.name) })
	for _, t := range out {
		slices.SortFunc(t.pols, func(a, b *policy) int { return cmpOrder(a.order, b.order, a.sortName, b.sortName) })
	}
	return out
}

// policyKind says which of a host endpoint's lists a policy goes to.
type policyKind int

const (
	kindNormal policyKind = iota
	kindPreDNAT
	kindUntracked
	kindForward
)

// tierLists builds the per-tier lists of the policies (of one kind) that
// select an endpoint.
func tierLists(tiers []*orderedTier, it *item, keep func(*policy) bool, used map[dpapi.PolicyID]*policy) []dpapi.TierPolicies {
	var out []dpapi.TierPolicies
	for _, t := range tiers {
		var tp dpapi.TierPolicies
		for _, p := range t.pols {
			if !keep(p) || !p.sel.matches(it.namespace, it.labels) {
				continue
			}
			if p.ingress {
				tp.Ingress = append(tp.Ingress, p.id)
			}
			if p.egress {
				tp.Egress = append(tp.Egress, p.id)
			}
			if p.ingress || p.egress {
				used[p.id] = p
			}
		}
		if len(tp.Ingress)+len(tp.Egress) > 0 {
			tp.Name, tp.DefaultAction = t.name, t.defaultAction
			out = append(out, tp)
		}
	}
	return out
}

// endpointProfiles lists an endpoint's profiles in order, each once. A
// profile that does not exist stays in its place as a deny profile
// (denyProfile): skipping it would let a later profile allow what it
// might have denied.
func (g *Graph) endpointProfiles(names []string, used map[string]*profile) []string {
	var out []string
	for _, n := range names {
		if slices.Contains(out, n) {
			continue
		}
		p, ok := g.profiles[n]
		if !ok {
			if p, ok = g.missing[n]; !ok {
				p = denyProfile(n)
				g.missing[n] = p
				g.log.WithField("profile", n).Warn("Local endpoint lists a profile that does not exist; denying in its place")
			}
		}
		out = append(out, n)
		used[n] = p
	}
	return out
}

// resolve recomputes the local endpoints' policy lists and the active
// policies, profiles and IP sets.
func (g *Graph) resolve() {
	tiers := g.orderedTiers()
	usedPols := map[dpapi.PolicyID]*policy{}
	usedProfs := map[string]*profile{}
	r := resolved{
		workloads: make(map[dpapi.WorkloadID]*dpapi.Workload, len(g.weps)),
		hostEPs:   make(map[string]*dpapi.HostEndpoint, len(g.heps)),
	}
	wlKeep := func(p *policy) bool { return !p.preDNAT && !p.untracked }
	for id, ep := range g.weps {
		it := g.idx.items[ep.key]
		w := *ep.workload
		w.Tiers = tierLists(tiers, it, wlKeep, usedPols)
		w.Profiles = g.endpointProfiles(ep.profiles, usedProfs)
		r.workloads[id] = &w
	}
	for name, ep := range g.heps {
		it := g.idx.items[ep.key]
		h := *ep.host
		kind := func(k policyKind) func(*policy) bool {
			return func(p *policy) bool {
				switch k {
				case kindUntracked:
					return p.untracked
				case kindPreDNAT:
					return p.preDNAT && !p.untracked
				case kindForward:
					return p.applyOnForward && !p.preDNAT && !p.untracked
				}
				return !p.preDNAT && !p.untracked
			}
		}
		h.Tiers = tierLists(tiers, it, kind(kindNormal), usedPols)
		h.PreDNATTiers = tierLists(tiers, it, kind(kindPreDNAT), usedPols)
		h.UntrackedTiers = tierLists(tiers, it, kind(kindUntracked), usedPols)
		h.ForwardTiers = tierLists(tiers, it, kind(kindForward), usedPols)
		h.Profiles = g.endpointProfiles(ep.profiles, usedProfs)
		r.hostEPs[name] = &h
	}
	want := map[string]setRef{}
	r.policies = make(map[dpapi.PolicyID]*dpapi.Policy, len(usedPols))
	for id, p := range usedPols {
		r.policies[id] = p.out
		maps.Copy(want, p.sets)
	}
	r.profiles = make(map[string]*dpapi.Profile, len(usedProfs))
	for n, p := range usedProfs {
		r.profiles[n] = p.out
		maps.Copy(want, p.sets)
	}
	for n := range g.missing {
		if _, exists := g.profiles[n]; exists || usedProfs[n] == nil {
			delete(g.missing, n)
		}
	}
	g.idx.setActive(want)
	g.resolved = r
}

// State returns the desired dataplane state. Each call returns new maps;
// the objects they point to are shared with earlier States and never
// modified, so a State may be kept and read while the graph moves on.
func (g *Graph) State() *dpapi.State {
	if g.dirty {
		g.resolve()
		g.dirty = false
	}
	r := &g.resolved
	st := &dpapi.State{
		Workloads:     maps.Clone(r.workloads),
		HostEndpoints: maps.Clone(r.hostEPs),
		Policies:      maps.Clone(r.policies),
		Profiles:      maps.Clone(r.profiles),
		IPSets:        make(map[string]*dpapi.IPSet, len(g.idx.sets)),
		Pools:         maps.Clone(g.pools),
		Hosts:         maps.Clone(g.nodes),
		InSync:        g.inSync,
		ServiceCIDRs:  g.services,
	}
	st.RemoteWorkloads = g.remoteWorkloads()
	for id, e := range g.idx.sets {
		st.IPSets[id] = e.ipSet()
	}
	seen := map[string]bool{}
	for cidr, host := range g.blocks {
		seen[cidr.String()] = true
		if host != g.hostname {
			st.RemoteBlocks = append(st.RemoteBlocks, dpapi.RemoteBlock{CIDR: cidr, Host: host})
		}
	}
	for k := range g.affs { // affinities whose block is not (yet) seen
		if !seen[k.CIDR.String()] && k.Host != g.hostname {
			seen[k.CIDR.String()] = true
			st.RemoteBlocks = append(st.RemoteBlocks, dpapi.RemoteBlock{CIDR: k.CIDR, Host: k.Host})
		}
	}
	slices.SortFunc(st.RemoteBlocks, func(a, b dpapi.RemoteBlock) int {
		return cmp.Or(strings.Compare(a.CIDR.String(), b.CIDR.String()), strings.Compare(a.Host, b.Host))
	})
	return st
}
