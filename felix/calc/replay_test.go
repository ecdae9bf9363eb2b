package calc

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// history is, per key, the sequence of updates the datastore produced.
// Replays may interleave keys in any order but keep each key's own order,
// as a watch does.
type history [][]syncer.Update

func (h history) flatten(order []int) []syncer.Update {
	var out []syncer.Update
	for _, i := range order {
		out = append(out, h[i]...)
	}
	return out
}

// interleave merges the per-key sequences in a random order.
func (h history) interleave(r *rand.Rand) []syncer.Update {
	pos := make([]int, len(h))
	var out []syncer.Update
	left := 0
	for _, s := range h {
		left += len(s)
	}
	for ; left > 0; left-- {
		for {
			i := r.IntN(len(h))
			if pos[i] < len(h[i]) {
				out = append(out, h[i][pos[i]])
				pos[i]++
				break
			}
		}
	}
	return out
}

// scenario builds a cluster with every input kind, with intermediate
// versions and objects created then deleted.
func scenario() history {
	var h history
	add := func(ups ...syncer.Update) { h = append(h, ups) }
	add(put(tierRes("sec", 10, v3.Pass)))
	add(put(tierRes("gone", 5, v3.Deny)), del(tierRes("gone", 5, v3.Deny)))
	add(put(profileRes("kns.a", lbl("pcns.team", "red"), nil, nil)), put(profileRes("kns.a", lbl("pcns.team", "blue"), nil, nil)))
	add(put(profileRes("kns.b", lbl("pcns.team", "red"), []v3.Rule{{Action: v3.Allow}}, nil)))
	for i := range 12 {
		node := me
		if i%3 != 0 {
			node = fmt.Sprintf("host-%d", i%4)
		}
		ns := []string{"a", "b"}[i%2]
		w1 := wep(ns, fmt.Sprintf("w%d", i), node, lbl("app", fmt.Sprint(i%3)), ipOf(i+1))
		w2 := wep(ns, fmt.Sprintf("w%d", i), node, lbl("app", fmt.Sprint(i%4), "tier", "x"), ipOf(i+100))
		w2.Spec.Ports = []v3.WorkloadEndpointPort{{Name: "http", Protocol: v3.ProtocolFromString("TCP"), Port: uint16(8000 + i)}}
		if i == 5 {
			add(put(w1), del(w1))
		} else {
			add(put(w1), put(w2))
		}
	}
	add(put(hep("h1", me, "eth0", lbl("app", "1"), "192.168.0.1")))
	add(put(gns("g1", lbl("app", "0"), "8.8.0.0/16")), put(gns("g1", lbl("app", "1"), "8.8.0.0/16", "9.9.0.0/16")))
	add(put(nset("a", "n1", lbl("app", "2"), "7.7.0.0/16")))
	for i := range 8 {
		rules := []v3.Rule{
			allowFrom(fmt.Sprintf("app == '%d'", i%3)),
			{Action: v3.Allow, Protocol: tcp(), Destination: v3.EntityRule{Ports: []v3.Port{v3.NamedPort("http")}}},
			{Action: v3.Pass, Source: v3.EntityRule{NamespaceSelector: "team == 'blue'"}},
		}
		p := gnp(fmt.Sprintf("p%d", i), ord(float64(i%3)), fmt.Sprintf("app == '%d' || tier == 'x'", i%4), rules, rules[:1])
		if i%2 == 0 {
			p.Spec.Tier = "sec"
		}
		if i == 3 {
			p2 := *p
			p2.Spec.Selector = "all()"
			add(put(&p2), put(p))
		} else {
			add(put(p))
		}
	}
	add(put(np("a", "n1", nil, "all()", []v3.Rule{allowFrom("app == '1'")}, nil)))
	add(put(np("b", "tmp", nil, "all()", nil, nil)), del(np("b", "tmp", nil, "all()", nil, nil)))
	pool := v3.NewIPPool()
	pool.Name, pool.Spec.CIDR = "pool", "10.0.0.0/8"
	add(put(pool))
	aff := "host:host-1"
	add(syncer.Update{Key: model.BlockKey{CIDR: mustPrefix("10.0.1.0/26")}, Value: &model.AllocationBlock{Affinity: &aff}})
	return h
}

// final keeps only each key's last update: what a fresh list would show.
func (h history) final() []syncer.Update {
	var out []syncer.Update
	for _, s := range h {
		if last := s[len(s)-1]; last.Type != syncer.UpdateDeleted {
			out = append(out, last)
		}
	}
	return out
}

func stateOf(t *testing.T, ups []syncer.Update, batch int) *dpapi.State {
	t.Helper()
	g := New(me, nil)
	for len(ups) > 0 {
		n := min(batch, len(ups))
		g.OnUpdates(ups[:n])
		g.State() // intermediate states must not leave traces
		ups = ups[n:]
	}
	g.OnStatusUpdated(syncer.InSync)
	return g.State()
}

func TestReplayOrdersReachSameState(t *testing.T) {
	h := scenario()
	want := stateOf(t, h.final(), 1000)
	if len(want.Workloads) < 3 || len(want.Policies) < 4 || len(want.IPSets) < 4 || len(want.HostEndpoints) != 1 {
		t.Fatalf("scenario too thin: %d workloads, %d policies, %d sets", len(want.Workloads), len(want.Policies), len(want.IPSets))
	}
	fwd := make([]int, len(h))
	rev := make([]int, len(h))
	for i := range h {
		fwd[i], rev[i] = i, len(h)-1-i
	}
	cases := map[string][]syncer.Update{
		"forward":  h.flatten(fwd),
		"reversed": h.flatten(rev),
	}
	for seed := range 20 {
		cases[fmt.Sprintf("shuffled-%d", seed)] = h.interleave(rand.New(rand.NewPCG(uint64(seed), 7)))
	}
	for name, ups := range cases {
		for _, batch := range []int{1, 7, 1000} {
			got := stateOf(t, ups, batch)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s (batch %d): state differs from a clean load\n%s", name, batch, diffStates(got, want))
			}
		}
	}
}

// diffStates names the first differing parts, for readable failures.
func diffStates(a, b *dpapi.State) string {
	out := ""
	for id, w := range b.Workloads {
		if !reflect.DeepEqual(a.Workloads[id], w) {
			out += fmt.Sprintf("workload %s: got %+v want %+v\n", id, a.Workloads[id], w)
		}
	}
	for id, s := range b.IPSets {
		if !reflect.DeepEqual(a.IPSets[id], s) {
			out += fmt.Sprintf("ipset %s: got %+v want %+v\n", id, a.IPSets[id], s)
		}
	}
	if len(a.IPSets) != len(b.IPSets) || len(a.Policies) != len(b.Policies) || len(a.Profiles) != len(b.Profiles) {
		out += fmt.Sprintf("counts: sets %d/%d policies %d/%d profiles %d/%d\n",
			len(a.IPSets), len(b.IPSets), len(a.Policies), len(b.Policies), len(a.Profiles), len(b.Profiles))
	}
	return out
}
