package acceptance

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// benchPods is the fixed workload of one benchmark iteration: this many
// pods, each added and then deleted.
const benchPods = 8

// BenchmarkAddDel measures ADD and DEL latency through libcni, serial and
// 4 in parallel, for calico (calico-ipam in-process, endpoint and
// allocation in etcd) beside containernetworking's ptp with host-local
// IPAM (files on disk), driven the same way: from the host namespace
// into pre-made pod namespaces. It reports p50 and p99 in milliseconds.
func BenchmarkAddDel(b *testing.B) {
	for _, plugin := range []string{"calico", "ptp+host-local"} {
		for _, par := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/parallel=%d", plugin, par), func(b *testing.B) {
				benchAddDel(b, plugin, par)
			})
		}
	}
}

func benchAddDel(b *testing.B, plugin string, par int) {
	h := newHost(b)
	var l *libcni.NetworkConfigList
	if plugin == "calico" {
		h.addPool("pool4", poolV4, 26)
		l = h.list(netConf{extraConf: benchExtra()})
	} else {
		l = h.confList(map[string]any{"cniVersion": "1.1.0", "name": "ptpnet", "plugins": []any{map[string]any{
			"type": "ptp", "ipMasq": false,
			"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(h.dir, "host-local"),
				"ranges": [][]map[string]string{{{"subnet": "10.70.0.0/16"}}}},
		}}})
	}
	pods := make([]*pod, benchPods)
	for i := range pods {
		pods[i] = h.newPod("", "")
	}
	// Warm up: the first ADD creates the profile and claims a block.
	pods[0].rt.ContainerID = "warmup"
	h.mustAdd(l, pods[0])
	h.mustDel(l, pods[0])

	var mu sync.Mutex
	var adds, dels []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		var wg sync.WaitGroup
		for w := 0; w < par; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < benchPods; i += par {
					p := pods[i]
					p.rt.ContainerID = fmt.Sprintf("bench%d-%d", n, i)
					t0 := time.Now()
					if err := h.add(l, p); err != nil {
						b.Error(err)
						return
					}
					t1 := time.Now()
					if err := h.del(l, p); err != nil {
						b.Error(err)
						return
					}
					t2 := time.Now()
					mu.Lock()
					adds, dels = append(adds, t1.Sub(t0)), append(dels, t2.Sub(t1))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"add", adds}, {"del", dels}} {
		b.ReportMetric(percentile(m.d, 50), m.name+"-p50-ms")
		b.ReportMetric(percentile(m.d, 99), m.name+"-p99-ms")
	}
}

// percentile returns the p-th percentile of d in milliseconds.
func percentile(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}

// benchExtra lets CALICO_BENCH_LOG=<file> capture the plugin's info log
// (per-phase timings of each ADD).
func benchExtra() map[string]any {
	if f := os.Getenv("CALICO_BENCH_LOG"); f != "" {
		return map[string]any{"log_level": "info", "log_file_path": f}
	}
	return nil
}
