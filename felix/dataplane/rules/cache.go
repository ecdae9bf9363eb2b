package rules

import (
	"sync"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

// ChainCache keeps rendered policy chains from one Render to the next,
// keyed by the *dpapi.Policy they came from: calc never changes a Policy
// it has handed over, so a policy that did not change is not rendered
// again. Entries not used by the latest Render of an IP version are
// dropped. Safe for concurrent Renders of different IP versions.
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

type cacheGen struct{ prev, cur map[cacheKey]cachedChain }

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
	return g
}

// end keeps only what this Render used.
func (g *cacheGen) end() { g.prev, g.cur = g.cur, nil }

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
