package calc

import (
	"cmp"
	"slices"
	"strings"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

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

// tierInfo returns a tier's order and default action; a tier that does
// not exist denies, and orders last unless it is the default tier.
func (g *Graph) tierInfo(name string) (*float64, string) {
	if t, ok := g.tiers[name]; ok {
		return t.order, t.defaultAction
	}
	if name == v3.DefaultTierName {
		o := v3.DefaultTierOrder
		return &o, string(v3.Deny)
	}
	return nil, string(v3.Deny)
}

// policyKind says which of a host endpoint's lists a policy goes to.
type policyKind int

const (
	kindNormal policyKind = iota
	kindPreDNAT
	kindUntracked
	kindForward
)

// keeps reports whether a policy goes to a list of the given kind.
func (p *policy) keeps(k policyKind) bool {
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

// tierLists builds the per-tier lists of the policies (of one kind) that
// apply to an endpoint: tiers in order, and policies in order within them.
func (g *Graph) tierLists(applies map[dpapi.PolicyID]*policy, k policyKind) []dpapi.TierPolicies {
	type entry struct {
		p      *policy
		tOrder *float64
		action string
	}
	var pols []entry
	for _, p := range applies {
		if p.keeps(k) && (p.ingress || p.egress) {
			o, a := g.tierInfo(p.id.Tier)
			pols = append(pols, entry{p, o, a})
		}
	}
	slices.SortFunc(pols, func(a, b entry) int {
		if a.p.id.Tier != b.p.id.Tier {
			return cmpOrder(a.tOrder, b.tOrder, a.p.id.Tier, b.p.id.Tier)
		}
		return cmpOrder(a.p.order, b.p.order, a.p.sortName, b.p.sortName)
	})
	var out []dpapi.TierPolicies
	for _, e := range pols {
		if len(out) == 0 || out[len(out)-1].Name != e.p.id.Tier {
			out = append(out, dpapi.TierPolicies{Name: e.p.id.Tier, DefaultAction: e.action})
		}
		tp := &out[len(out)-1]
		if e.p.ingress {
			tp.Ingress = append(tp.Ingress, e.p.id)
		}
		if e.p.egress {
			tp.Egress = append(tp.Egress, e.p.id)
		}
	}
	return out
}

// profileList lists an endpoint's profiles in order, each once.
func profileList(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// useProfiles adds an endpoint's profiles to used. A profile that does
// not exist stays in its place as a deny profile (denyProfile): skipping
// it would let a later profile allow what it might have denied.
func (g *Graph) useProfiles(names []string, used map[string]*profile) {
	for _, n := range names {
		p, ok := g.profiles[n]
		if !ok {
			if p, ok = g.missing[n]; !ok {
				p = denyProfile(n)
				g.missing[n] = p
				g.log.WithField("profile", n).Warn("Local endpoint lists a profile that does not exist; denying in its place")
			}
		}
		used[n] = p
	}
}

// localEndpoints returns the local workload and host endpoints.
func (g *Graph) localEndpoints() []*endpoint {
	out := make([]*endpoint, 0, len(g.weps)+len(g.heps))
	for _, ep := range g.weps {
		out = append(out, ep)
	}
	for _, ep := range g.heps {
		out = append(out, ep)
	}
	return out
}

// matchPolicies brings applies up to date: a local endpoint that is new
// or changed is matched against every policy, a changed policy against
// every local endpoint. Endpoints whose policies changed become stale.
func (g *Graph) matchPolicies() {
	if len(g.rematchPol) > 0 {
		g.polHints = nil
	}
	eps := g.localEndpoints()
	for _, ep := range eps {
		if !g.rematchEP[ep.key] {
			continue
		}
		if g.polHints == nil {
			g.polHints = newPolicyHints(g.policies)
		}
		it := g.idx.items[ep.key]
		m := map[dpapi.PolicyID]*policy{}
		g.polHints.matching(it, func(p *policy) { m[p.id] = p })
		g.applies[ep.key] = m
		g.stale[ep.key] = true
	}
	for id := range g.rematchPol {
		p := g.policies[id]
		for _, ep := range eps {
			if g.rematchEP[ep.key] {
				continue
			}
			m := g.applies[ep.key]
			_, had := m[id]
			it := g.idx.items[ep.key]
			if p != nil && p.sel.matches(it.namespace, it.labels) {
				m[id] = p
				g.stale[ep.key] = true
			} else if had {
				delete(m, id)
				g.stale[ep.key] = true
			}
		}
	}
	clear(g.rematchEP)
	clear(g.rematchPol)
}

// resolve recomputes the policy lists of the stale local endpoints, and
// the active policies, profiles and IP sets.
func (g *Graph) resolve() {
	g.matchPolicies()
	r := &g.resolved
	changed := g.usesChanged // what the used policies, profiles and sets depend on
	for id := range r.workloads.m {
		if _, ok := g.weps[id]; !ok {
			r.workloads.del(id)
			changed = true
		}
	}
	for name := range r.hostEPs.m {
		if _, ok := g.heps[name]; !ok {
			r.hostEPs.del(name)
			changed = true
		}
	}
	for id, ep := range g.weps {
		if _, ok := r.workloads.m[id]; ok && !g.allStale && !g.stale[ep.key] {
			continue
		}
		w := *ep.workload
		w.Tiers = g.tierLists(g.applies[ep.key], kindNormal)
		w.Profiles = profileList(ep.profiles)
		if old := ep.resolvedW; old != nil && r.workloads.m[id] == old &&
			dpapi.EqualTiers(old.Tiers, w.Tiers) && slices.Equal(old.Profiles, w.Profiles) {
			continue // the same: the dataplane keeps what it built from it
		}
		ep.resolvedW = &w
		r.workloads.set(id, &w)
		changed = true
	}
	for name, ep := range g.heps {
		if _, ok := r.hostEPs.m[name]; ok && !g.allStale && !g.stale[ep.key] {
			continue
		}
		h := *ep.host
		applies := g.applies[ep.key]
		h.Tiers = g.tierLists(applies, kindNormal)
		h.PreDNATTiers = g.tierLists(applies, kindPreDNAT)
		h.UntrackedTiers = g.tierLists(applies, kindUntracked)
		h.ForwardTiers = g.tierLists(applies, kindForward)
		h.Profiles = profileList(ep.profiles)
		if old := ep.resolvedH; old != nil && r.hostEPs.m[name] == old &&
			dpapi.EqualTiers(old.Tiers, h.Tiers) && dpapi.EqualTiers(old.PreDNATTiers, h.PreDNATTiers) &&
			dpapi.EqualTiers(old.UntrackedTiers, h.UntrackedTiers) && dpapi.EqualTiers(old.ForwardTiers, h.ForwardTiers) &&
			slices.Equal(old.Profiles, h.Profiles) {
			continue // the same: the dataplane keeps what it built from it
		}
		ep.resolvedH = &h
		r.hostEPs.set(name, &h)
		changed = true
	}
	clear(g.stale)
	g.allStale = false
	if !changed {
		return // the same policies, profiles and sets are in use
	}
	g.usesChanged = false

	// The active policies and profiles are those the lists name.
	usedPols := r.usedPols
	if usedPols == nil {
		usedPols = make(map[dpapi.PolicyID]*policy, len(r.policies))
	}
	defer func() { clear(usedPols); r.usedPols = usedPols }()
	usePols := func(lists ...[]dpapi.TierPolicies) {
		for _, l := range lists {
			for _, tp := range l {
				for _, id := range tp.Ingress {
					usedPols[id] = g.policies[id]
				}
				for _, id := range tp.Egress {
					usedPols[id] = g.policies[id]
				}
			}
		}
	}
	usedProfs := map[string]*profile{}
	for _, w := range r.workloads.m {
		usePols(w.Tiers)
		g.useProfiles(w.Profiles, usedProfs)
	}
	for _, h := range r.hostEPs.m {
		usePols(h.Tiers, h.PreDNATTiers, h.UntrackedTiers, h.ForwardTiers)
		g.useProfiles(h.Profiles, usedProfs)
	}
	r.policies = make(map[dpapi.PolicyID]*dpapi.Policy, len(usedPols))
	for id, p := range usedPols {
		r.policies[id] = p.out
	}
	r.profiles = make(map[string]*dpapi.Profile, len(usedProfs))
	for n, p := range usedProfs {
		r.profiles[n] = p.out
	}
	for n := range g.missing {
		if _, exists := g.profiles[n]; exists || usedProfs[n] == nil {
			delete(g.missing, n)
		}
	}
	r.sets.update(usedPols, usedProfs)
	g.idx.setActive(r.sets.refs)
}

// usedSets counts, for each IP set, the used policies and profiles that
// refer to it, so that a change updates the counts of what changed
// rather than merging every used policy's sets again. A policy or
// profile that changes is a new object (policyOf, profileOf).
type usedSets struct {
	pols  map[dpapi.PolicyID]*policy
	profs map[string]*profile
	count map[string]int
	refs  map[string]setRef // the sets with a count
}

func newUsedSets() usedSets {
	return usedSets{pols: map[dpapi.PolicyID]*policy{}, profs: map[string]*profile{},
		count: map[string]int{}, refs: map[string]setRef{}}
}

// update makes the counts those of pols and profs.
func (u *usedSets) update(pols map[dpapi.PolicyID]*policy, profs map[string]*profile) {
	updateUsers(u, u.pols, pols, func(p *policy) map[string]setRef { return p.sets })
	updateUsers(u, u.profs, profs, func(p *profile) map[string]setRef { return p.sets })
}

// updateUsers moves have to want (by object), adding and removing their
// sets from the counts.
func updateUsers[K comparable, T comparable](u *usedSets, have, want map[K]T, sets func(T) map[string]setRef) {
	var zero T
	for k, old := range have {
		if want[k] != old {
			if old != zero {
				u.add(sets(old), -1)
			}
			delete(have, k)
		}
	}
	for k, p := range want {
		if _, ok := have[k]; !ok {
			if p != zero {
				u.add(sets(p), 1)
			}
			have[k] = p
		}
	}
}

func (u *usedSets) add(sets map[string]setRef, d int) {
	for id, ref := range sets {
		switch u.count[id] += d; {
		case u.count[id] <= 0:
			delete(u.count, id)
			delete(u.refs, id)
		case d > 0:
			u.refs[id] = ref
		}
	}
}

// State returns the desired dataplane state. Its maps, and the objects
// they point to, may be shared with earlier States and are never
// modified, so a State may be kept and read while the graph moves on
// (the graph copies a map it shared before changing it).
func (g *Graph) State() *dpapi.State {
	if g.dirty {
		g.resolve()
		g.dirty = false
	}
	r := &g.resolved
	st := &dpapi.State{
		Workloads:     r.workloads.share(),
		HostEndpoints: r.hostEPs.share(),
		Policies:      r.policies,
		Profiles:      r.profiles,
		IPSets:        make(map[string]*dpapi.IPSet, len(g.idx.sets)),
		Pools:         g.pools.share(),
		Hosts:         g.nodes.share(),
		InSync:        g.inSync,
		ServiceCIDRs:  g.services,
	}
	st.RemoteWorkloads = g.remoteWorkloads()
	for id, e := range g.idx.sets {
		st.IPSets[id] = g.idx.ipSet(e)
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

// policyHints groups policies by their selector's hint, so that an
// endpoint is checked only against those that may select it.
type policyHints struct {
	unhinted []*policy
	hinted   map[string]map[string][]*policy // hint key → value → policies
}

func newPolicyHints(ps map[dpapi.PolicyID]*policy) *policyHints {
	h := &policyHints{hinted: map[string]map[string][]*policy{}}
	for _, p := range ps {
		if p.sel.hint.key == "" {
			h.unhinted = append(h.unhinted, p)
			continue
		}
		byVal := nested(h.hinted, p.sel.hint.key)
		for _, v := range p.sel.hint.vals {
			byVal[v] = append(byVal[v], p)
		}
	}
	return h
}

// matching calls f with each policy that selects it.
func (h *policyHints) matching(it *item, f func(*policy)) {
	check := func(p *policy) {
		if p.sel.matches(it.namespace, it.labels) {
			f(p)
		}
	}
	for _, p := range h.unhinted {
		check(p)
	}
	for k, v := range it.labels {
		for _, p := range h.hinted[k][v] {
			check(p)
		}
	}
}
