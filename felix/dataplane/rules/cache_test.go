package rules

import (
	"maps"
	"reflect"
	"testing"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

func policyChains(out *Output) map[string]*iptables.Chain {
	m := map[string]*iptables.Chain{}
	for table, d := range out.Tables {
		for _, c := range d.Chains {
			m[table+"/"+c.Name] = c
		}
	}
	return m
}

// cachedAndPlain returns the default config with a ChainCache, and
// without one to compare against.
func cachedAndPlain(t *testing.T) (cached, plain Config) {
	t.Helper()
	cfg, err := NewConfig(dpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	plain = cfg
	cfg.Cache = &ChainCache{}
	return cfg, plain
}

func TestChainCacheReusesUnchangedPolicies(t *testing.T) {
	cfg, plain := cachedAndPlain(t)
	s := smallState()
	first := Render(s, &cfg, 4, nil, nil)
	want := Render(s, &plain, 4, nil, nil)
	if !reflect.DeepEqual(first.IPSets, want.IPSets) || !reflect.DeepEqual(policyChains(first), policyChains(want)) {
		t.Fatal("rendering with the cache differs from rendering without it")
	}
	second := Render(s, &cfg, 4, nil, nil)
	reused := 0
	for name, c := range policyChains(second) {
		if policyChains(first)[name] == c {
			reused++
		}
	}
	if reused == 0 || len(s.Policies) == 0 {
		t.Fatalf("no chain reused for an unchanged state (%d policies)", len(s.Policies))
	}
	if !reflect.DeepEqual(second.IPSets, want.IPSets) {
		t.Fatal("cached render lost an IP set reference")
	}
	// A changed policy is a new object: its chains are rendered afresh.
	for id, p := range s.Policies {
		cp := *p
		cp.Inbound = nil
		s.Policies[id] = &cp
		break
	}
	third := Render(s, &cfg, 4, nil, nil)
	if !reflect.DeepEqual(policyChains(third), policyChains(Render(s, &plain, 4, nil, nil))) {
		t.Fatal("a changed policy was served from the cache")
	}
}

func TestChainCacheReusesUnchangedWorkloads(t *testing.T) {
	cfg, plain := cachedAndPlain(t)
	s := smallState()
	if len(s.Workloads) == 0 {
		t.Fatal("smallState has no workloads")
	}
	first := Render(s, &cfg, 4, nil, nil)
	second := Render(s, &cfg, 4, nil, nil)
	if !reflect.DeepEqual(policyChains(second), policyChains(Render(s, &plain, 4, nil, nil))) ||
		!reflect.DeepEqual(second.IPSets, first.IPSets) {
		t.Fatal("a render from the cache differs from one without it")
	}
	var id dpapi.WorkloadID
	var w *dpapi.Workload
	for id, w = range s.Workloads {
		break
	}
	to := "filter/" + EndpointChainName(WorkloadToEndpointPrefix, w.Iface)
	if policyChains(first)[to] == nil || policyChains(second)[to] != policyChains(first)[to] {
		t.Fatalf("chain %s of an unchanged workload was rendered again", to)
	}
	// A changed workload is a new object: its chains are rendered afresh,
	// and the policy chains it no longer jumps to go.
	cw := *w
	cw.Tiers = nil
	s.Workloads[id] = &cw
	third := Render(s, &cfg, 4, nil, nil)
	if policyChains(third)[to] == policyChains(first)[to] {
		t.Fatalf("chain %s of a changed workload came from the cache", to)
	}
	if !reflect.DeepEqual(policyChains(third), policyChains(Render(s, &plain, 4, nil, nil))) {
		t.Fatal("a changed workload's render differs from one without the cache")
	}
}

func TestChainCacheReturnsLastOutputWhenInputUnchanged(t *testing.T) {
	cfg, _ := cachedAndPlain(t)
	s := smallState()
	first := Render(s, &cfg, 4, nil, nil)
	// A new State holding the same objects, as calc makes after a change
	// Render does not read (a remote endpoint's, say).
	next := *s
	next.Workloads, next.Policies, next.IPSets = maps.Clone(s.Workloads), maps.Clone(s.Policies), nil
	if Render(&next, &cfg, 4, nil, nil) != first {
		t.Fatal("an unchanged input was rendered again")
	}
	if Render(&next, &cfg, 6, nil, nil) == first {
		t.Fatal("another IP version got IPv4's output")
	}
	// Any object Render reads, replaced, renders afresh.
	next.Pools = maps.Clone(s.Pools)
	for name, p := range next.Pools {
		cp := *p
		next.Pools[name] = &cp
		break
	}
	if len(next.Pools) == 0 {
		t.Fatal("smallState has no pools")
	}
	if Render(&next, &cfg, 4, nil, nil) == first {
		t.Fatal("a changed pool did not render afresh")
	}
	heps := map[string]*dpapi.HostEndpoint{"eth0": {Name: "h", Iface: "eth0"}}
	again := Render(&next, &cfg, 4, heps, nil)
	if again == first || again.Tables["filter"] == first.Tables["filter"] {
		t.Fatal("a new host endpoint did not render afresh")
	}
}

// The workload dispatch chains depend on the interfaces only: a policy
// change reuses them, a new workload renders them afresh.
func TestChainCacheReusesDispatchChainsForSameInterfaces(t *testing.T) {
	cfg, plain := cachedAndPlain(t)
	s := smallState()
	from := "filter/" + ChainFromWorkloadDispatch
	first := Render(s, &cfg, 4, nil, nil)
	if policyChains(first)[from] == nil {
		t.Fatalf("no %s chain", from)
	}
	for id, p := range s.Policies {
		cp := *p
		cp.Inbound = nil
		s.Policies[id] = &cp
		break
	}
	second := Render(s, &cfg, 4, nil, nil)
	if second == first || policyChains(second)[from] != policyChains(first)[from] {
		t.Fatal("a policy change rendered the workload dispatch chains again")
	}
	s.Workloads["prod/new"] = &dpapi.Workload{ID: "prod/new", Iface: "cali5555555555a", IPv4: pfx("10.65.0.9/32")}
	third := Render(s, &cfg, 4, nil, nil)
	if policyChains(third)[from] == policyChains(first)[from] {
		t.Fatal("a new workload's interface did not render the dispatch chains again")
	}
	if !reflect.DeepEqual(policyChains(third), policyChains(Render(s, &plain, 4, nil, nil))) {
		t.Fatal("the dispatch chains differ from a render without the cache")
	}
}

// An Output's IPSets map stays as it was through the next Render; the one
// after that reuses it.
func TestChainCacheOutputIPSetsOutliveNextRender(t *testing.T) {
	cfg, plain := cachedAndPlain(t)
	s := smallState()
	first := Render(s, &cfg, 4, nil, nil)
	want := maps.Clone(first.IPSets)
	if len(want) == 0 {
		t.Fatal("smallState's rules use no IP set")
	}
	s.Workloads = map[dpapi.WorkloadID]*dpapi.Workload{}
	second := Render(s, &cfg, 4, nil, nil)
	if maps.Equal(second.IPSets, want) {
		t.Fatal("the sets used did not change: nothing to tell the Outputs apart")
	}
	if !maps.Equal(first.IPSets, want) {
		t.Fatalf("the next Render changed the last Output's IP sets: %v, was %v", first.IPSets, want)
	}
	if !maps.Equal(second.IPSets, Render(s, &plain, 4, nil, nil).IPSets) {
		t.Fatalf("IP sets %v differ from a render without the cache", second.IPSets)
	}
}
