package calc

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// world is a random small cluster: the resources that exist now, and
// the generator of changes to them.
type world struct {
	r    *rand.Rand
	live map[model.ResourceKey]v3.Resource
}

func (w *world) pick(opts ...string) string { return opts[w.r.IntN(len(opts))] }

func (w *world) labels() map[string]string {
	m := map[string]string{}
	if w.r.IntN(4) != 0 {
		m["app"] = w.pick("a", "b", "c")
	}
	if w.r.IntN(2) == 0 {
		m["tier"] = w.pick("x", "y")
	}
	if w.r.IntN(8) == 0 {
		m["pcns.team"] = "red" // must be ignored: only profiles set pcns.
	}
	return m
}

// nets draws from a small pool, so that items share addresses.
func (w *world) nets() []string {
	var out []string
	for range w.r.IntN(3) {
		switch w.r.IntN(6) {
		case 0:
			out = append(out, fmt.Sprintf("10.1.%d.0/24", w.r.IntN(3)))
		case 1:
			out = append(out, fmt.Sprintf("fd00::%d/128", w.r.IntN(4)))
		default:
			out = append(out, fmt.Sprintf("10.0.0.%d/32", w.r.IntN(12)))
		}
	}
	return out
}

func (w *world) order() *float64 {
	if w.r.IntN(4) == 0 {
		return nil
	}
	return ord(float64(w.r.IntN(4)))
}

func (w *world) selector() string {
	return w.pick("app == 'a'", "app in {'a', 'b'}", "tier == 'x' && app != 'c'", "all()", "has(tier)",
		"!has(app)", "role == 'db'", "app == 'b' || tier == 'y'", "")
}

func (w *world) rules() []v3.Rule {
	var out []v3.Rule
	for range w.r.IntN(3) {
		var r v3.Rule
		switch w.r.IntN(6) {
		case 0:
			r = allowFrom(w.selector())
		case 1:
			r = v3.Rule{Action: v3.Allow, Protocol: tcp(), Source: v3.EntityRule{Selector: w.selector()},
				Destination: v3.EntityRule{Ports: []v3.Port{v3.NamedPort("http"), {MinPort: 9000, MaxPort: 9001}}}}
		case 2:
			r = v3.Rule{Action: v3.Pass, Source: v3.EntityRule{NamespaceSelector: w.pick("team == 'red'", "all()", "team == 'blue'"), Selector: w.selector()}}
		case 3:
			r = v3.Rule{Action: v3.Deny, Source: v3.EntityRule{ServiceAccounts: &v3.ServiceAccountMatch{Names: []string{w.pick("sa1", "sa2")}}}}
		case 4:
			r = v3.Rule{Action: v3.Allow, Destination: v3.EntityRule{NotSelector: w.pick("has(role)", "app == 'c'", "tier == 'y'")}}
		default:
			r = v3.Rule{Action: v3.Deny, Source: v3.EntityRule{Nets: w.nets()}}
		}
		out = append(out, r)
	}
	return out
}

func (w *world) ports() []v3.WorkloadEndpointPort {
	var out []v3.WorkloadEndpointPort
	if w.r.IntN(2) == 0 {
		out = append(out, v3.WorkloadEndpointPort{Name: "http", Protocol: v3.ProtocolFromString("TCP"), Port: uint16(80 + w.r.IntN(2))})
	}
	if w.r.IntN(4) == 0 {
		out = append(out, v3.WorkloadEndpointPort{Name: "dns", Protocol: v3.ProtocolFromString("UDP"), Port: 53})
	}
	return out
}

func (w *world) node() string { return w.pick(me, me, "host-1", "host-2") }

// change returns a random new version of some resource, or its deletion.
func (w *world) change() syncer.Update {
	var r v3.Resource
	switch w.r.IntN(12) {
	case 0, 1, 2:
		i := w.r.IntN(16)
		ns := []string{"ns0", "ns1", "ns2"}[i%3]
		e := wep(ns, fmt.Sprintf("w%d", i), w.node(), w.labels(), w.nets()...)
		e.Spec.Ports = w.ports()
		e.Spec.ServiceAccountName = w.pick("", "sa1", "sa2")
		e.Spec.Profiles = append(e.Spec.Profiles, w.pick("prof-a", "prof-b", "missing", "kns."+ns)) // duplicates too
		r = e
	case 3:
		var ips []string
		for _, n := range w.nets() {
			if p := mustPrefix(n); p.IsSingleIP() {
				ips = append(ips, p.Addr().String())
			}
		}
		h := hep(fmt.Sprintf("h%d", w.r.IntN(3)), w.node(), "eth0", w.labels(), ips...)
		h.Spec.Profiles = []string{w.pick("prof-a", "prof-b", "missing")}
		h.Spec.Ports = []v3.EndpointPort{{Name: "http", Protocol: v3.ProtocolFromString("TCP"), Port: 8080}}
		r = h
	case 4:
		if w.r.IntN(2) == 0 {
			r = gns(fmt.Sprintf("g%d", w.r.IntN(3)), w.labels(), w.nets()...)
		} else {
			r = nset(w.pick("ns0", "ns1"), fmt.Sprintf("n%d", w.r.IntN(2)), w.labels(), w.nets()...)
		}
	case 5, 6:
		p := gnp(fmt.Sprintf("p%d", w.r.IntN(10)), w.order(), w.selector(), w.rules(), w.rules())
		p.Spec.Tier = w.pick("", "default", "t1", "t2", "t3")
		p.Spec.NamespaceSelector = w.pick("", "", "team == 'red'")
		p.Spec.ServiceAccountSelector = w.pick("", "", "name == 'sa1'")
		switch w.r.IntN(6) {
		case 0:
			p.Spec.PreDNAT, p.Spec.ApplyOnForward = true, true
		case 1:
			p.Spec.DoNotTrack, p.Spec.ApplyOnForward = true, true
		case 2:
			p.Spec.ApplyOnForward = true
		}
		if w.r.IntN(3) == 0 {
			p.Spec.Types = []v3.PolicyType{v3.PolicyType(w.pick("Ingress", "Egress"))}
		}
		r = p
	case 7:
		p := np(w.pick("ns0", "ns1", "default"), fmt.Sprintf("np%d", w.r.IntN(4)), w.order(), w.selector(), w.rules(), w.rules())
		p.Spec.Tier = w.pick("", "t1")
		r = p
	case 8:
		name := w.pick("prof-a", "prof-b", "kns.ns0", "kns.ns1", "kns.ns2", "ksa.ns0.sa1", "ksa.ns1.sa2")
		l := map[string]string{}
		switch w.r.IntN(3) {
		case 0:
			l["role"] = w.pick("db", "web")
		case 1:
			l["pcns.team"] = w.pick("red", "blue")
			l["app"] = w.pick("a", "c")
		}
		r = profileRes(name, l, w.rules(), w.rules())
	case 9:
		r = tierRes(w.pick("t1", "t2", "t3", "default"), float64(w.r.IntN(3)*50), v3.Action(w.pick("Deny", "Pass")))
	default:
		keys := slices.SortedFunc(maps.Keys(w.live), func(a, b model.ResourceKey) int { return cmp.Compare(a.String(), b.String()) })
		if len(keys) == 0 {
			return w.change()
		}
		k := keys[w.r.IntN(len(keys))]
		delete(w.live, k)
		return syncer.Update{Key: k, Type: syncer.UpdateDeleted}
	}
	up := put(r)
	w.live[up.Key.(model.ResourceKey)] = r
	return up
}

// fromScratch is the state of a new graph fed the live resources.
func (w *world) fromScratch() (*Graph, *dpapi.State) {
	var ups []syncer.Update
	for _, k := range slices.SortedFunc(maps.Keys(w.live), func(a, b model.ResourceKey) int { return cmp.Compare(a.String(), b.String()) }) {
		ups = append(ups, syncer.Update{Key: k, Value: w.live[k], Type: syncer.UpdateNew})
	}
	g := New(me, nil)
	g.OnUpdates(ups)
	g.OnStatusUpdated(syncer.InSync)
	return g, g.State()
}

// A graph fed a random sequence of changes, one State after each few,
// must produce what a graph fed only the result produces; and each local
// endpoint's policy lists must be what evaluating every policy gives.
func TestIncrementalMatchesFromScratch(t *testing.T) {
	for seed := range 8 {
		w := &world{r: rand.New(rand.NewPCG(uint64(seed), 22)), live: map[model.ResourceKey]v3.Resource{}}
		g := New(me, nil)
		g.OnStatusUpdated(syncer.InSync)
		for step := range 400 {
			var ups []syncer.Update
			for range 1 + w.r.IntN(3) {
				ups = append(ups, w.change())
			}
			g.OnUpdates(ups)
			got := g.State()
			ref, want := w.fromScratch()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d (%v): incremental state differs from scratch\n%s", seed, step, keysOf(ups), diffAll(got, want))
			}
			checkBruteForceTiers(t, ref, want)
		}
	}
}

func keysOf(ups []syncer.Update) []string {
	var out []string
	for _, u := range ups {
		out = append(out, fmt.Sprintf("%v %v", u.Type, u.Key))
	}
	return out
}

// diffAll names every differing part of two states.
func diffAll(a, b *dpapi.State) string {
	out := ""
	v1, v2 := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range v1.NumField() {
		f1, f2 := v1.Field(i), v2.Field(i)
		if reflect.DeepEqual(f1.Interface(), f2.Interface()) {
			continue
		}
		name := v1.Type().Field(i).Name
		if f1.Kind() != reflect.Map {
			out += fmt.Sprintf("%s: got %+v\n  want %+v\n", name, f1.Interface(), f2.Interface())
			continue
		}
		for _, k := range f2.MapKeys() {
			if x := f1.MapIndex(k); !x.IsValid() || !reflect.DeepEqual(x.Interface(), f2.MapIndex(k).Interface()) {
				got := "missing"
				if x.IsValid() {
					got = fmt.Sprintf("%+v", x.Interface())
				}
				out += fmt.Sprintf("%s[%v]: got %s\n  want %+v\n", name, k, got, f2.MapIndex(k).Interface())
			}
		}
		for _, k := range f1.MapKeys() {
			if !f2.MapIndex(k).IsValid() {
				out += fmt.Sprintf("%s[%v]: extra %+v\n", name, k, f1.MapIndex(k).Interface())
			}
		}
	}
	return out
}

// checkBruteForceTiers compares each local endpoint's policy lists with
// evaluating every policy against it, tiers and policies sorted whole.
func checkBruteForceTiers(t *testing.T, g *Graph, st *dpapi.State) {
	t.Helper()
	for id, ep := range g.weps {
		it := g.idx.items[ep.key]
		if got, want := st.Workloads[id].Tiers, bruteTierLists(g, it, kindNormal); !reflect.DeepEqual(got, want) {
			t.Fatalf("workload %s tiers %+v, brute force %+v", id, got, want)
		}
	}
	for name, ep := range g.heps {
		it := g.idx.items[ep.key]
		h := st.HostEndpoints[name]
		for k, got := range map[policyKind][]dpapi.TierPolicies{kindNormal: h.Tiers, kindPreDNAT: h.PreDNATTiers, kindUntracked: h.UntrackedTiers, kindForward: h.ForwardTiers} {
			if want := bruteTierLists(g, it, k); !reflect.DeepEqual(got, want) {
				t.Fatalf("host endpoint %s kind %d tiers %+v, brute force %+v", name, k, got, want)
			}
		}
	}
}

// bruteTierLists sorts the tiers that hold policies, and their policies,
// then keeps the policies of kind k that select it.
func bruteTierLists(g *Graph, it *item, k policyKind) []dpapi.TierPolicies {
	type tierPols struct {
		name  string
		order *float64
		pols  []*policy
	}
	byName := map[string]*tierPols{}
	for _, p := range g.policies {
		tp := byName[p.id.Tier]
		if tp == nil {
			tp = &tierPols{name: p.id.Tier}
			tp.order, _ = g.tierInfo(p.id.Tier)
			byName[p.id.Tier] = tp
		}
		tp.pols = append(tp.pols, p)
	}
	tiers := slices.Collect(maps.Values(byName))
	slices.SortFunc(tiers, func(a, b *tierPols) int { return cmpOrder(a.order, b.order, a.name, b.name) })
	var out []dpapi.TierPolicies
	for _, t := range tiers {
		slices.SortFunc(t.pols, func(a, b *policy) int { return cmpOrder(a.order, b.order, a.sortName, b.sortName) })
		var tp dpapi.TierPolicies
		for _, p := range t.pols {
			if !p.keeps(k) || !p.sel.matches(it.namespace, it.labels) {
				continue
			}
			if p.ingress {
				tp.Ingress = append(tp.Ingress, p.id)
			}
			if p.egress {
				tp.Egress = append(tp.Egress, p.id)
			}
		}
		if len(tp.Ingress)+len(tp.Egress) > 0 {
			_, tp.DefaultAction = g.tierInfo(t.name)
			tp.Name = t.name
			out = append(out, tp)
		}
	}
	return out
}
