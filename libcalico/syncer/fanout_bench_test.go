package syncer

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

// EnvFanoutMax caps N in BenchmarkEtcdFanout (default 1000; N = 1,000
// takes about 2.5 minutes and 7 GB in this process on a 2-core machine).
const EnvFanoutMax = "CALICO_BENCH_FANOUT_MAX"

// fanoutUpdates is how many single-key changes the fan-out is timed over.
const fanoutUpdates = 20

// BenchmarkEtcdFanout runs N hosts' watchers against a real 3-member etcd
// cluster on this machine: per host, a syncer with felix's prefixes and
// one with confd's, each with its own client and connections (2N
// clients in this process, dialling the members through their namespace).
// The datastore holds per host a Node, a block, its affinity and two
// WorkloadEndpoints, and 50 policies, 20 profiles and a pool besides.
// N = 100, 300 and 1,000 (CALICO_BENCH_FANOUT_MAX=300 leaves 1,000 out).
//
// Each N reports three sub-benchmarks:
//
//   - fanout: one WorkloadEndpoint changed fanoutUpdates times, each once
//     every felix syncer delivered the last. p50/p99 over every
//     (syncer, change) delivery, from just before the write; all-p99 of
//     the slowest syncer per change (the goal: ≤ 1 s at N = 1,000); the
//     bytes the members sent per change (their veths, peers included); the
//     members' CPU while idle and their memory.
//   - member-restart: a member stopped (SIGTERM) and started again 3 s
//     later, while a Node changes every 250 ms. recovery-s: from the stop
//     until every syncer (felix's and confd's) is InSync and delivered a
//     change made once the member was back (goal ≤ 30 s); max-stale-s: the
//     longest any syncer lagged behind a change (no client starved);
//     peak-cpu: the members' busiest 250 ms.
//   - compaction-relist: every client cut off for 3 s while the store
//     moves on and is compacted past them, then let back: every watch
//     finds its revision compacted and every syncer relists. The same
//     figures, and how many syncers relisted.
func BenchmarkEtcdFanout(b *testing.B) {
	testutil.RequireRoot(b)
	limit := 1000
	if v := os.Getenv(EnvFanoutMax); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil {
			b.Fatalf("%s=%q: %v", EnvFanoutMax, v, err)
		}
	}
	for _, n := range []int{100, 300, 1000} {
		if n > limit {
			continue
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	start := time.Now()
	cl := testutil.StartEtcdCluster(b, 3)
	writer, err := etcd.New(etcd.Config{Endpoints: cl.ClientURLs(), Dialer: cl.DialContext})
	if err != nil {
		b.Fatal(err)
	}
	defer writer.Close()
	keys := populate(b, writer, n)
	gate := &dialGate{dial: cl.DialContext}
	hosts := startHosts(b, cl, gate, n)
	b.Logf("N=%d: %d keys; cluster, data and %d syncers in sync after %v", n, keys, 2*n, time.Since(start).Round(time.Millisecond))
	m := &members{c: cl}

	b.Run("fanout", func(b *testing.B) {
		idle := m.sample(5 * time.Second)
		tx0 := m.txBytes(b)
		lat, all := fanout(b, writer, hosts, n)
		tx := m.txBytes(b) - tx0
		b.ReportMetric(pct(lat, 0.50), "p50-ms")
		b.ReportMetric(pct(lat, 0.99), "p99-ms")
		b.ReportMetric(pct(all, 0.99), "all-p99-ms")
		b.ReportMetric(float64(tx)/fanoutUpdates/1024, "member-tx-KiB/update")
		b.ReportMetric(idle.meanCPU, "idle-cpu-cores")
		b.ReportMetric(m.rssMB(b), "member-rss-MB")
		b.ReportMetric(pct(all, 0.99)/1000, "all-p99-over-1s-ratio(goal<=1)")
		b.ReportMetric(0, "ns/op")
	})

	b.Run("member-restart", func(b *testing.B) {
		r := disrupt(b, writer, hosts, m, func(b *testing.B) time.Time {
			victim := cl.Members[0]
			if err := victim.Stop(2 * time.Second); err != nil {
				b.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if err := victim.Start(); err != nil {
				b.Fatal(err)
			}
			waitReady(b, cl)
			return time.Now()
		})
		r.report(b)
	})

	b.Run("compaction-relist", func(b *testing.B) {
		r := disrupt(b, writer, hosts, m, func(b *testing.B) time.Time {
			gate.cut()
			time.Sleep(time.Second)
			for i := range 50 {
				touch(b, writer, nodeKey(n+1+i%5), i)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := cl.Compact(ctx); err != nil {
				b.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			gate.restore()
			return time.Now()
		})
		r.report(b)
	})
}

// host is one simulated host's two syncers.
type host struct{ felix, confd *watcher }

// watcher is a Callbacks that remembers when it delivered the fan-out key
// and the probe key, and how often it left InSync.
type watcher struct {
	status   atomic.Int32
	left     atomic.Int32 // times it left InSync
	wepRev   atomic.Int64
	wepAt    atomic.Int64
	probeRev atomic.Int64
	probeAt  atomic.Int64
}

var (
	fanoutKey = model.ResourceKey{Kind: v3.KindWorkloadEndpoint, Namespace: "ns-0", Name: wepName(0, 0)}
	probeKey  = nodeKey(0)
)

func (w *watcher) OnStatusUpdated(s Status) {
	if Status(w.status.Load()) == InSync && s != InSync {
		w.left.Add(1)
	}
	w.status.Store(int32(s))
}

func (w *watcher) OnUpdates(us []Update) {
	now := time.Now().UnixNano()
	for _, u := range us {
		switch u.Key {
		case fanoutKey:
			w.wepRev.Store(u.Revision)
			w.wepAt.Store(now)
		case probeKey:
			w.probeRev.Store(u.Revision)
			w.probeAt.Store(now)
		}
	}
}

// felixPrefixes and confdPrefixes are what the daemons sync (felix's
// daemon/loop.go, confd's calc.Prefixes).
func felixPrefixes() []model.ListOptions {
	var out []model.ListOptions
	for _, k := range []string{
		v3.KindWorkloadEndpoint, v3.KindHostEndpoint, v3.KindNetworkPolicy, v3.KindGlobalNetworkPolicy,
		v3.KindTier, v3.KindProfile, v3.KindNetworkSet, v3.KindGlobalNetworkSet, v3.KindIPPool, v3.KindNode,
		v3.KindFelixConfiguration, v3.KindBGPConfiguration,
	} {
		out = append(out, model.ResourceListOptions{Kind: k})
	}
	return append(out, model.BlockListOptions{}, model.BlockAffinityListOptions{})
}

func confdPrefixes(node string) []model.ListOptions {
	return []model.ListOptions{
		model.ResourceListOptions{Kind: v3.KindNode}, model.ResourceListOptions{Kind: v3.KindBGPConfiguration},
		model.ResourceListOptions{Kind: v3.KindBGPPeer}, model.ResourceListOptions{Kind: v3.KindBGPFilter},
		model.ResourceListOptions{Kind: v3.KindIPPool}, model.BlockAffinityListOptions{Host: node},
	}
}

// startHosts starts n hosts' syncers in waves of 25, each wave in sync
// before the next, and stops them at cleanup.
func startHosts(b *testing.B, cl *testutil.EtcdCluster, gate *dialGate, n int) []host {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	run := func(prefixes []model.ListOptions) *watcher {
		be, err := etcd.New(etcd.Config{Endpoints: cl.ClientURLs(), Dialer: gate.dialContext})
		if err != nil {
			b.Fatal(err)
		}
		w := &watcher{}
		// As felix and confd configure theirs.
		s := New(be, Config{Prefixes: prefixes, Unmarshal: gojson.Unmarshal}, w, nil)
		wg.Go(func() {
			_ = s.Run(ctx)
			be.Close()
		})
		return w
	}
	hosts := make([]host, 0, n)
	for i := range n {
		hosts = append(hosts, host{felix: run(felixPrefixes()), confd: run(confdPrefixes(hostName(i)))})
		if len(hosts)%25 == 0 || len(hosts) == n {
			waitAll(b, hosts, 5*time.Minute, "syncers in sync", func(w *watcher) bool { return Status(w.status.Load()) == InSync })
		}
	}
	return hosts
}

// waitAll waits until cond holds for every syncer of hosts.
func waitAll(b *testing.B, hosts []host, limit time.Duration, what string, cond func(*watcher) bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok := 0
		for _, h := range hosts {
			if cond(h.felix) && cond(h.confd) {
				ok++
			}
		}
		if ok == len(hosts) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d hosts after %v", what, ok, len(hosts), limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fanout changes fanoutKey fanoutUpdates times and returns every felix
// syncer's delivery latency and the slowest per change, in ms.
func fanout(b *testing.B, writer *etcd.Client, hosts []host, n int) (lat, all []float64) {
	for i := range fanoutUpdates {
		start := time.Now()
		rev := touchWEP(b, writer, i)
		deadline := start.Add(time.Minute)
		for {
			done := 0
			for _, h := range hosts {
				if h.felix.wepRev.Load() >= rev {
					done++
				}
			}
			if done == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("change %d reached %d of %d syncers within a minute", i, done, n)
			}
			time.Sleep(time.Millisecond)
		}
		slowest := 0.0
		for _, h := range hosts {
			ms := float64(h.felix.wepAt.Load()-start.UnixNano()) / 1e6
			lat = append(lat, ms)
			slowest = max(slowest, ms)
		}
		all = append(all, slowest)
		time.Sleep(100 * time.Millisecond)
	}
	return lat, all
}

// disruption is what disrupt measured.
type disruption struct {
	recovery, maxStale time.Duration
	peak               usage
	left               int // syncers that left InSync
}

// disrupt runs fault while the probe Node changes every 250 ms. fault
// returns when the cluster is whole again; recovery is from fault's start
// until every syncer is InSync and delivered a change made after that.
func disrupt(b *testing.B, writer *etcd.Client, hosts []host, m *members, fault func(*testing.B) time.Time) disruption {
	left0 := make([]int32, 0, 2*len(hosts))
	for _, h := range hosts {
		left0 = append(left0, h.felix.left.Load(), h.confd.left.Load())
	}
	stop := make(chan struct{})
	sampled := make(chan usage, 1)
	go func() { sampled <- m.sampleUntil(stop) }()
	type probe struct {
		rev int64
		at  time.Time
	}
	var mu sync.Mutex
	var probes []probe
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			at := time.Now()
			if rev, err := tryTouch(writer, probeKey, 1000+i); err == nil {
				mu.Lock()
				probes = append(probes, probe{rev, at})
				mu.Unlock()
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	// The longest any syncer lags behind a probe written before now.
	lagDone := make(chan time.Duration, 1)
	go func() {
		var worst time.Duration
		for ctx.Err() == nil {
			mu.Lock()
			ps := probes
			mu.Unlock()
			now := time.Now()
			for _, h := range hosts {
				for _, w := range []*watcher{h.felix, h.confd} {
					seen := w.probeRev.Load()
					if i, _ := slices.BinarySearchFunc(ps, seen+1, func(p probe, rev int64) int { return int(p.rev - rev) }); i < len(ps) {
						worst = max(worst, now.Sub(ps[i].at))
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		lagDone <- worst
	}()
	start := time.Now()
	back := fault(b)
	// Every syncer in sync with a change made after the cluster was back.
	var target int64
	for target == 0 {
		mu.Lock()
		if len(probes) > 0 && probes[len(probes)-1].at.After(back) {
			target = probes[len(probes)-1].rev
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	waitAll(b, hosts, 5*time.Minute, "syncers in sync after the fault", func(w *watcher) bool {
		return Status(w.status.Load()) == InSync && w.probeRev.Load() >= target
	})
	r := disruption{recovery: time.Since(start)}
	cancel()
	wg.Wait()
	r.maxStale = <-lagDone
	close(stop)
	r.peak = <-sampled
	for i, h := range hosts {
		for j, w := range []*watcher{h.felix, h.confd} {
			if w.left.Load() > left0[2*i+j] {
				r.left++
			}
		}
	}
	return r
}

func (r disruption) report(b *testing.B) {
	b.ReportMetric(r.recovery.Seconds(), "recovery-s")
	b.ReportMetric(r.maxStale.Seconds(), "max-stale-s")
	b.ReportMetric(r.peak.peakCPU, "peak-cpu-cores")
	b.ReportMetric(r.peak.meanCPU, "mean-cpu-cores")
	b.ReportMetric(r.peak.clientCPU, "client-cpu-cores")
	b.ReportMetric(r.peak.peakRSS, "peak-member-rss-MB")
	b.ReportMetric(float64(r.left), "syncers-resynced")
	b.ReportMetric(r.recovery.Seconds()/30, "recovery-over-30s-ratio(goal<=1)")
	b.ReportMetric(0, "ns/op")
}

func pct(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}
