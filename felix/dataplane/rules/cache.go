package rules

import (
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

// ChainCache keeps rendered policy and workload chains from one Render to
// the next, keyed by the *dpapi.Policy or *dpapi.Workload they came from:
// calc never changes an object it has handed over, so one that did not
// change is not rendered again (nor, by the iptables layer, re-hashed).
// When none of what Render reads changed (a remote endpoint moved, say),
// Render returns its last Output itself. Entries not used by the latest
// Render of an IP version are dropped. Safe for concurrent Renders of
// different IP versions. A cache serves one Config.
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

// cacheGen is one IP version's cache: what the last Render used (prev),
// what this one uses (cur), and emptied maps kept for the next Render to
// fill, so that a Render allocates for what changed only.
type cacheGen struct {
	prev, cur, spare       map[cacheKey]cachedChain
	wlPrev, wlCur, wlSpare map[*dpapi.Workload]cachedWorkload
	polRefs                map[string]map[string]polRef
	profRefs               map[string]map[string]profRef
	// dispatch is the workload dispatch chains for dispatchIfaces.
	dispatchIfaces []string
	dispatch       []*iptables.Chain
	// sets are the Outputs' IPSets maps, used in turn: the map of one
	// Render is emptied and reused by the second Render after it.
	sets [2]map[string]string
	flip int
	// chains counts the last Output's chains by table, to size the next.
	chains map[string]int
	// in and out are the last Render's input and Output.
	in  renderInput
	out *Output
}

// renderInput is what Render reads from a State and its caller.
type renderInput struct {
	workloads map[dpapi.WorkloadID]*dpapi.Workload
	policies  map[dpapi.PolicyID]*dpapi.Policy
	profiles  map[string]*dpapi.Profile
	pools     map[string]*dpapi.Pool
	services  []netip.Prefix
	self      *dpapi.Host
	heps      map[string]*dpapi.HostEndpoint
}

func inputOf(s *dpapi.State, cfg *Config, heps map[string]*dpapi.HostEndpoint) renderInput {
	return renderInput{workloads: s.Workloads, policies: s.Policies, profiles: s.Profiles, pools: s.Pools,
		services: s.ServiceCIDRs, self: s.Hosts[cfg.Hostname], heps: heps}
}

// copyFrom makes a a copy of b in a's own maps and slice (the caller may
// reuse b's), emptying and refilling those a has.
func (a *renderInput) copyFrom(b renderInput) {
	a.workloads, a.policies, a.profiles = refill(a.workloads, b.workloads), refill(a.policies, b.policies), refill(a.profiles, b.profiles)
	a.pools, a.heps = refill(a.pools, b.pools), refill(a.heps, b.heps)
	a.services, a.self = append(a.services[:0], b.services...), b.self
}

func refill[K comparable, V any](dst, src map[K]V) map[K]V {
	if dst == nil {
		return maps.Clone(src)
	}
	clear(dst)
	maps.Copy(dst, src)
	return dst
}

// same reports whether a and b hold the same objects (calc's objects are
// never modified, so the same object is the same content).
func (a renderInput) same(b renderInput) bool {
	return a.self == b.self && slices.Equal(a.services, b.services) &&
		maps.Equal(a.workloads, b.workloads) && maps.Equal(a.policies, b.policies) &&
		maps.Equal(a.profiles, b.profiles) && maps.Equal(a.pools, b.pools) && maps.Equal(a.heps, b.heps)
}

// unchanged returns the last Output when in is the last Render's input.
func (g *cacheGen) unchanged(in renderInput) *Output {
	if g.out != nil && g.in.same(in) {
		return g.out
	}
	return nil
}

// gen returns the generation of ipVersion's Renders.
func (c *ChainCache) gen(ipVersion int) *cacheGen {
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
	return g
}

// begin starts a Render by r.
func (g *cacheGen) begin(r *renderer) {
	r.sets = g.sets[g.flip]
	if r.sets == nil {
		r.sets = map[string]string{}
		g.sets[g.flip] = r.sets
	}
	clear(r.sets)
	g.flip ^= 1
	g.out = nil // g.in keeps its maps for end to refill
	g.cur, g.spare = orNew(g.spare), nil
	g.wlCur, g.wlSpare = orNew(g.wlSpare), nil
	if g.polRefs == nil {
		g.polRefs, g.profRefs = map[string]map[string]polRef{}, map[string]map[string]profRef{}
	}
	for _, m := range g.polRefs {
		clear(m)
	}
	for _, m := range g.profRefs {
		clear(m)
	}
	r.polRefs, r.profRefs, r.cache = g.polRefs, g.profRefs, g
}

func orNew[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// end keeps only what this Render used, and its input and output.
func (g *cacheGen) end(in renderInput, out *Output) {
	clear(g.prev)
	clear(g.wlPrev)
	g.spare, g.prev, g.cur = g.prev, g.cur, nil
	g.wlSpare, g.wlPrev, g.wlCur = g.wlPrev, g.wlCur, nil
	g.in.copyFrom(in)
	g.out = out
	if g.chains == nil {
		g.chains = map[string]int{}
	}
	for t, d := range out.Tables {
		g.chains[t] = len(d.Chains)
	}
}

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
