package calc

import (
	"fmt"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// Scale of the cold-start benchmark, as issue 6 asks.
const (
	benchLocal    = 100
	benchRemote   = 5000
	benchPolicies = 500
	benchApps     = 50 // distinct app labels
)

// benchUpdates is the whole datastore at benchmark scale: endpoints in 10
// namespaces with app/tier labels and a named port, and policies whose
// rules use ~1,000 distinct selectors (each matching ~100 endpoints),
// named ports and port ranges.
func benchUpdates() []syncer.Update {
	var ups []syncer.Update
	for i := range 10 {
		ups = append(ups, put(profileRes(fmt.Sprintf("kns.ns%d", i), lbl("pcns.team", fmt.Sprint(i%3)), nil, nil)))
	}
	for i := range benchLocal + benchRemote {
		node := me
		if i >= benchLocal {
			node = fmt.Sprintf("host-%d", i%200)
		}
		w := wep(fmt.Sprintf("ns%d", i%10), fmt.Sprintf("w%d", i), node,
			lbl("app", fmt.Sprintf("app%d", i%benchApps), "tier", fmt.Sprint(i%5)), ipOf(i))
		w.Spec.Ports = []v3.WorkloadEndpointPort{{Name: "http", Protocol: v3.ProtocolFromString("TCP"), Port: 8080}}
		ups = append(ups, put(w))
	}
	for i := range benchPolicies {
		app := fmt.Sprintf("app%d", i%benchApps)
		p := gnp(fmt.Sprintf("pol%d", i), ord(float64(i%20)), fmt.Sprintf("app == '%s'", app), []v3.Rule{
			allowFrom(fmt.Sprintf("app == 'app%d' && ver != 'v%d'", (i+1)%benchApps, i)),
			{Action: v3.Allow, Protocol: tcp(), Source: v3.EntityRule{Selector: fmt.Sprintf("tier in {'%d', '%d'}", i%5, (i+2)%5), NamespaceSelector: "team == '1'"},
				Destination: v3.EntityRule{Ports: []v3.Port{v3.NamedPort("http"), {MinPort: 9000, MaxPort: 9100}}}},
			{Action: v3.Deny, Source: v3.EntityRule{Nets: []string{"192.168.0.0/16"}}},
		}, []v3.Rule{allowFrom(fmt.Sprintf("app == 'app%d' && ver != 'w%d'", (i+7)%benchApps, i))})
		ups = append(ups, put(p))
	}
	return ups
}

func BenchmarkColdStart(b *testing.B) {
	ups := benchUpdates()
	var sets, members, pols int
	b.ResetTimer()
	for b.Loop() {
		g := New(me, nil)
		for i := 0; i < len(ups); i += syncer.DefaultMaxBatchSize {
			g.OnUpdates(ups[i:min(i+syncer.DefaultMaxBatchSize, len(ups))])
		}
		g.OnStatusUpdated(syncer.InSync)
		st := g.State()
		sets, pols, members = len(st.IPSets), len(st.Policies), 0
		for _, s := range st.IPSets {
			members += len(s.Members)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/coldstart")
	b.ReportMetric(float64(sets), "ipsets")
	b.ReportMetric(float64(members), "members")
	b.ReportMetric(float64(pols), "active-policies")
}

// BenchmarkPolicyChange is one policy edit (a new rule selector) on a
// loaded graph, until the new State is ready.
func BenchmarkPolicyChange(b *testing.B) {
	g := New(me, nil)
	g.OnUpdates(benchUpdates())
	g.OnStatusUpdated(syncer.InSync)
	g.State()
	b.ResetTimer()
	i := 0
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		p := gnp("pol7", ord(3), "app == 'app7'", []v3.Rule{allowFrom(fmt.Sprintf("tier == '%d' && app == 'app%d'", i%5, i%benchApps))}, nil)
		g.OnUpdates([]syncer.Update{put(p)})
		g.State()
		worst = max(worst, time.Since(start))
		i++
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-worst")
}
