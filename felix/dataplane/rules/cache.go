package rules

import (
	"sync"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

// ChainCache keeps rendered policy and workload chains from one Render to
// the next, keyed by the *dpapi.Policy or *dpapi.Workload they came from:
// calc never changes an object it has handed over, so one that did not
// change is not rendered again (nor, by the iptables layer, re-hashed).
// Entries not used by the latest Render of an IP version are dropped. Safe
// for concurrent Renders of different IP versions. A cache serves one
// Config.
type ChainCache struct {
	mu   sync.Mutex
	gens map[int]*cacheGen
}

type cacheKey struct {
	pol     *dpapi.Policy
	table   string // the deny action differs between tables
	chain   string
	ingress bool
}

type cachedChain struct {
	chain *iptables.Chain
	sets  map[string]string // IP sets the chain refers to (ID -> type)
}

// cachedWorkload is a workload's chains and the policy and profile chains
// they jump to.
type cachedWorkload struct {
	chains []*iptables.Chain
	pols   map[string]map[string]polRef
	profs  map[string]map[string]profRef
}

type cacheGen struct {
	prev, cur     map[cacheKey]cachedChain
	wlPrev, wlCur map[*dpapi.Workload]cachedWorkload
}

// begin starts a Render of ipVersion and returns its generation.
func (c *ChainCache) begin(ipVersion int) *cacheGen {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens == nil {
		c.gens = map[int]*cacheGen{}
	}
	g := c.gens[ipVersion]
	if g == nil {
		g = &cacheGen{}
		c.gens[ipVersion] = g
	}
	g.cur = map[cacheKey]cachedChain{}
	g.wlCur = make(map[*dpapi.Workload]cachedWorkload, len(g.wlPrev))
	return g
}

// end keeps only what this Render used.
func (g *cacheGen) end() { g.prev, g.cur, g.wlPrev, g.wlCur = g.cur, nil, g.wlCur, nil }

func (g *cacheGen) get(k cacheKey) (cachedChain, bool) {
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	v, ok := g.prev[k]
	if ok {
		g.cur[k] = v
	}
	return v, ok
}

// cachedPolicyChain renders a policy chain, or reuses the last rendering
// of the same policy object, and records the sets it refers to.
func (r *renderer) cachedPolicyChain(s *dpapi.State, table, chain string, ref polRef) *iptables.Chain {
	p := s.Policies[ref.id]
	if r.cache == nil || p == nil {
		return r.policyChain(s, table, chain, ref)
	}
	k := cacheKey{pol: p, table: table, chain: chain, ingress: ref.ingress}
	if v, ok := r.cache.get(k); ok {
		for id, typ := range v.sets {
			r.noteSet(id, typ)
		}
		return v.chain
	}
	outer := r.sets
	r.sets = map[string]string{}
	c := r.policyChain(s, table, chain, ref)
	used := r.sets
	r.sets = outer
	for id, typ := range used {
		r.noteSet(id, typ)
	}
	r.cache.cur[k] = cachedChain{chain: c, sets: used}
	return c
}

// noteSet records a referenced set as setName does.
func (r *renderer) noteSet(id, typ string) {
	if prev, ok := r.sets[id]; !ok || prev == "" {
		r.sets[id] = typ
	}
}

// cachedWorkloadChains renders a workload's chains, or reuses the last
// rendering of the same workload object, and records the policy and
// profile chains they jump to.
func (r *renderer) cachedWorkloadChains(w *dpapi.Workload) []*iptables.Chain {
	if r.cache == nil {
		return r.workloadChains(w)
	}
	v, ok := r.cache.wlCur[w]
	if !ok {
		v, ok = r.cache.wlPrev[w]
	}
	if !ok {
		outerPols, outerProfs := r.polRefs, r.profRefs
		r.polRefs, r.profRefs = map[string]map[string]polRef{}, map[string]map[string]profRef{}
		v = cachedWorkload{chains: r.workloadChains(w), pols: r.polRefs, profs: r.profRefs}
		r.polRefs, r.profRefs = outerPols, outerProfs
	}
	r.cache.wlCur[w] = v
	for table, refs := range v.pols {
		for chain, ref := range refs {
			r.refPolicy(table, chain, ref.id, ref.ingress)
		}
	}
	for table, refs := range v.profs {
		for chain, ref := range refs {
			r.refProfile(table, chain, ref.name, ref.ingress)
		}
	}
	return v.chains
}
