package calc

import (
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/calc/calctest"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// benchUpdates is calctest's benchmark datastore (100 local endpoints,
// 5,000 remote, 500 policies), seen from host me.
func benchUpdates() []syncer.Update { return calctest.BenchUpdates(me) }

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
		g.OnUpdates([]syncer.Update{calctest.BenchPolicyChange(i)})
		g.State()
		worst = max(worst, time.Since(start))
		i++
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-worst")
}
