package calc

import (
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/calc/calctest"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// loadedScaleGraph is a graph holding calctest.Issue22Scale, in sync, with
// its first State taken.
func loadedScaleGraph(b *testing.B) *Graph {
	b.Helper()
	ups := calctest.ScaleUpdates(me, calctest.Issue22Scale)
	g := New(me, nil)
	for i := 0; i < len(ups); i += syncer.DefaultMaxBatchSize {
		g.OnUpdates(ups[i:min(i+syncer.DefaultMaxBatchSize, len(ups))])
	}
	g.OnStatusUpdated(syncer.InSync)
	g.State()
	runtime.GC()
	return g
}

// timeChanges times, per b.Loop iteration, OnUpdates of change(i) plus
// the State after it, and reports the p50 and p99 in ms. Run with
// -benchtime 100x for percentiles over 100 changes.
func timeChanges(b *testing.B, g *Graph, change func(i int) syncer.Update) {
	var lat []time.Duration
	i := 0
	for b.Loop() {
		up := change(i)
		t0 := time.Now()
		g.OnUpdates([]syncer.Update{up})
		g.State()
		lat = append(lat, time.Since(t0))
		i++
	}
	slices.Sort(lat)
	ms := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

// BenchmarkCalcPolicyChange is BenchmarkFelixScale's policy change,
// calc only: one locally applied policy of Issue22Scale edited.
func BenchmarkCalcPolicyChange(b *testing.B) {
	sc := calctest.Issue22Scale
	g := loadedScaleGraph(b)
	timeChanges(b, g, func(i int) syncer.Update {
		return calctest.Put(calctest.ScalePolicy(sc, 7, i+1))
	})
}

// BenchmarkCalcRemoteEndpointChange is BenchmarkFelixScale's remote
// endpoint change, calc only: one remote endpoint moved between groups
// (two large sets).
func BenchmarkCalcRemoteEndpointChange(b *testing.B) {
	sc := calctest.Issue22Scale
	g := loadedScaleGraph(b)
	timeChanges(b, g, func(i int) syncer.Update {
		up := calctest.Put(calctest.ScaleWEP(me, sc, sc.Local+123, i+1))
		up.Type = syncer.UpdateUpdated
		return up
	})
}

// BenchmarkCalcScaleColdStart is BenchmarkFelixScale's cold start, calc
// only: Issue22Scale's updates in syncer-sized batches (made untimed, as
// they arrive), InSync, and the first State.
func BenchmarkCalcScaleColdStart(b *testing.B) {
	sc := calctest.Issue22Scale
	defer debug.SetGCPercent(debug.SetGCPercent(40)) // felix's default GoGCThreshold
	for b.Loop() {
		b.StopTimer()
		g := New(me, nil)
		runtime.GC()
		calctest.ScaleBatches(me, sc, syncer.DefaultMaxBatchSize, func(batch []syncer.Update) {
			b.StartTimer()
			g.OnUpdates(batch)
			b.StopTimer()
		})
		b.StartTimer()
		g.OnStatusUpdated(syncer.InSync)
		g.State()
	}
}
