package calc

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// isDeny reports whether p denies everything in both directions.
func isDeny(p *dpapi.Profile) bool {
	return p != nil && len(p.Inbound) == 1 && len(p.Outbound) == 1 &&
		p.Inbound[0].Action == dpapi.Deny && p.Outbound[0].Action == dpapi.Deny &&
		reflect.DeepEqual(p.Inbound[0], dpapi.Rule{ID: p.Inbound[0].ID, Action: dpapi.Deny}) &&
		reflect.DeepEqual(p.Outbound[0], dpapi.Rule{ID: p.Outbound[0].ID, Action: dpapi.Deny})
}

var allowAll = []v3.Rule{{Action: v3.Allow}}

// A profile an endpoint lists but that does not exist denies both
// directions in its place in the list, so a later allowing profile does
// not let traffic through; once it exists its rules replace the deny, and
// when it goes the deny returns. Host endpoints alike.
// issue 23 item 8b
func TestMissingProfileDeniesInItsPlace(t *testing.T) {
	w := wep("ns1", "a", me, nil, "10.0.0.1/32")
	w.Spec.Profiles = []string{"kns.ns1", "gone", "allow", "gone"}
	h := hep("h1", me, "eth0", nil, "192.168.0.1")
	h.Spec.Profiles = []string{"gone", "allow"}
	g, st := run(t, put(w), put(h), put(profileRes("kns.ns1", nil, nil, nil)), put(profileRes("allow", nil, allowAll, allowAll)))

	want := []string{"kns.ns1", "gone", "allow"}
	if got := st.Workloads["ns1/a"].Profiles; !slices.Equal(got, want) {
		t.Fatalf("workload profiles = %v, want %v", got, want)
	}
	if got := st.HostEndpoints["h1"].Profiles; !slices.Equal(got, []string{"gone", "allow"}) {
		t.Fatalf("host endpoint profiles = %v", got)
	}
	if !isDeny(st.Profiles["gone"]) {
		t.Fatalf("missing profile = %+v, want deny in both directions", st.Profiles["gone"])
	}
	if isDeny(st.Profiles["allow"]) || isDeny(st.Profiles["kns.ns1"]) {
		t.Fatal("existing profiles became deny profiles")
	}
	again := g.State()
	if again.Profiles["gone"] != st.Profiles["gone"] {
		t.Error("the deny profile is a new object in each State")
	}

	g.OnUpdates([]syncer.Update{put(profileRes("gone", nil, allowAll, nil))})
	st = g.State()
	if p := st.Profiles["gone"]; p == nil || len(p.Inbound) != 1 || p.Inbound[0].Action != dpapi.Allow || len(p.Outbound) != 0 {
		t.Fatalf("created profile = %+v, want its own rules", p)
	}
	if len(g.missing) != 0 {
		t.Errorf("stand-ins kept for profiles that exist: %v", g.missing)
	}

	g.OnUpdates([]syncer.Update{del(profileRes("gone", nil, nil, nil))})
	if st = g.State(); !isDeny(st.Profiles["gone"]) || !slices.Equal(st.Workloads["ns1/a"].Profiles, want) {
		t.Fatalf("after delete: profiles %v, gone = %+v", st.Workloads["ns1/a"].Profiles, st.Profiles["gone"])
	}

	g.OnUpdates([]syncer.Update{del(w), del(h)})
	if st = g.State(); len(st.Profiles) != 0 || len(g.missing) != 0 {
		t.Errorf("profiles of no endpoint kept: %v, stand-ins %v", st.Profiles, g.missing)
	}
}

// A profile that fails validation, or has a rule felix cannot program,
// denies whole (in both directions, in its place), instead of losing only
// the bad rule; its labels still apply.
// issue 23 item 8b
func TestInvalidProfileDeniesInItsPlace(t *testing.T) {
	bad := map[string]*v3.Profile{
		"bad-action":  profileRes("p", nil, []v3.Rule{{Action: "Bogus"}}, allowAll),
		"bad-net":     profileRes("p", nil, allowAll, []v3.Rule{{Action: v3.Deny, Destination: v3.EntityRule{Nets: []string{"10.0.0.300/8"}}}, {Action: v3.Allow}}),
		"bad-service": profileRes("p", nil, []v3.Rule{{Action: v3.Deny, Source: v3.EntityRule{Services: &v3.ServiceMatch{Name: "s"}}}, {Action: v3.Allow}}, nil),
		"bad-label":   profileRes("p", lbl("bad key!", "v"), allowAll, allowAll),
	}
	for name, p := range bad {
		t.Run(name, func(t *testing.T) {
			p.Spec.LabelsToApply = mergeLabels(p.Spec.LabelsToApply, lbl("team", "red"))
			w := wep("ns1", "a", me, nil, "10.0.0.1/32")
			w.Spec.Profiles = []string{"p", "allow"}
			red := gnp("red", nil, "team == 'red'", allowAll, nil)
			_, st := run(t, put(w), put(p), put(profileRes("allow", nil, allowAll, allowAll)), put(red))
			if got := st.Workloads["ns1/a"].Profiles; !slices.Equal(got, []string{"p", "allow"}) {
				t.Fatalf("profiles = %v", got)
			}
			if !isDeny(st.Profiles["p"]) {
				t.Fatalf("invalid profile = %+v, want deny in both directions", st.Profiles["p"])
			}
			if tiers := st.Workloads["ns1/a"].Tiers; len(tiers) != 1 || !slices.Equal(tiers[0].Ingress, []dpapi.PolicyID{{Tier: "default", Name: "red"}}) {
				t.Errorf("the invalid profile's labels no longer apply: tiers %+v", tiers)
			}
		})
	}
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Profiles appearing, turning invalid and going, in any order of keys,
// end in the state a clean load gives.
// issue 23 item 8b
func TestMissingAndInvalidProfilesReplay(t *testing.T) {
	var h history
	add := func(ups ...syncer.Update) { h = append(h, ups) }
	for i := range 4 {
		w := wep("ns", fmt.Sprintf("w%d", i), me, nil, ipOf(i+1))
		w.Spec.Profiles = []string{fmt.Sprintf("p%d", i), "allow", fmt.Sprintf("p%d", (i+1)%4)}
		add(put(w))
	}
	add(put(profileRes("allow", nil, allowAll, allowAll)))
	add(put(profileRes("p0", nil, allowAll, nil)), del(profileRes("p0", nil, nil, nil)))
	add(put(profileRes("p1", nil, []v3.Rule{{Action: "Bogus"}}, nil)))
	add(put(profileRes("p2", nil, []v3.Rule{{Action: "Bogus"}}, nil)), put(profileRes("p2", nil, allowAll, nil)))
	add(put(profileRes("p3", nil, allowAll, nil)), put(profileRes("p3", nil, []v3.Rule{{Action: "Bogus"}}, nil)))

	want := stateOf(t, h.final(), 1000)
	for _, p := range []string{"p0", "p1", "p3"} {
		if !isDeny(want.Profiles[p]) {
			t.Fatalf("%s = %+v, want deny", p, want.Profiles[p])
		}
	}
	if isDeny(want.Profiles["p2"]) {
		t.Fatal("p2 was made valid but still denies")
	}
	fwd, rev := make([]int, len(h)), make([]int, len(h))
	for i := range h {
		fwd[i], rev[i] = i, len(h)-1-i
	}
	cases := map[string][]syncer.Update{"forward": h.flatten(fwd), "reversed": h.flatten(rev)}
	for seed := range 10 {
		cases[fmt.Sprintf("shuffled-%d", seed)] = h.interleave(rand.New(rand.NewPCG(uint64(seed), 23)))
	}
	for name, ups := range cases {
		for _, batch := range []int{1, 3, 1000} {
			if got := stateOf(t, ups, batch); !reflect.DeepEqual(got, want) {
				t.Errorf("%s (batch %d): state differs from a clean load\n%s", name, batch, diffStates(got, want))
			}
		}
	}
}
