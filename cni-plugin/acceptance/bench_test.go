package acceptance

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// benchPods is the fixed workload of one benchmark round: this many pods,
// each added and then deleted. An iteration is benchRounds rounds of each
// plugin, so that even `make bench`'s single iteration has 40 samples.
const (
	benchPods   = 8
	benchRounds = 5
)

// BenchmarkAddDel measures ADD and DEL latency through libcni, serial and
// 4 in parallel, for calico (the calico binary and the host's
// calico-cni-agent; calico-ipam in-process, endpoint and allocation in
// etcd) and calico-direct (the whole plugin in one process, as the calico
// binary runs it without an agent) beside containernetworking's ptp with
// host-local IPAM (files on disk), driven the same way on the same host:
// from the host namespace into pre-made pod namespaces. Rounds rotate
// through the networks and which goes first, so that all see the same
// machine. It reports p50 and p99 in milliseconds and each calico's ADD
// p50 over ptp's.
//
// CALICO_BENCH_B=<calico-direct binary> adds a network run by that build
// (say, of another commit) in the same rotation, and its ratio as
// b-add-p50-over-ptp-ratio: an A/B comparison on one machine at one time.
func BenchmarkAddDel(b *testing.B) {
	for _, par := range []int{1, 4} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			h := newHost(b)
			h.addPool("pool4", poolV4, 26)
			a := h.startAgent()
			nets := []*benchNet{
				h.benchNet("calico", h.list(netConf{extraConf: benchExtra()})),
				h.benchNet("ptp", h.confList(map[string]any{"cniVersion": "1.1.0", "name": "ptpnet", "plugins": []any{map[string]any{
					"type": "ptp", "ipMasq": false,
					"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(h.dir, "host-local"),
						"ranges": [][]map[string]string{{{"subnet": "10.70.0.0/16"}}}},
				}}})),
				h.benchNet("direct", h.list(netConf{extraConf: map[string]any{"type": "calico-direct"}})),
			}
			if alt := os.Getenv("CALICO_BENCH_B"); alt != "" {
				if err := installFile(alt, filepath.Join(binDir, "calicob")); err != nil {
					b.Fatal(err)
				}
				nets = append(nets, h.benchNet("calicob", h.list(netConf{extraConf: map[string]any{"type": "calicob"}})))
			}
			nets[0].daemon = a.cpuTime
			b.ResetTimer()
			for n := 0; n < b.N*benchRounds; n++ {
				for i := range nets {
					nets[(n+i)%len(nets)].round(b, n, par)
				}
			}
			b.StopTimer()
			for _, bn := range nets {
				b.ReportMetric(percentile(bn.adds, 50), bn.name+"-add-p50-ms")
				b.ReportMetric(percentile(bn.adds, 99), bn.name+"-add-p99-ms")
				b.ReportMetric(percentile(bn.dels, 50), bn.name+"-del-p50-ms")
				b.ReportMetric(percentile(bn.dels, 99), bn.name+"-del-p99-ms")
				pods := float64(len(bn.adds))
				b.ReportMetric(float64(bn.cpu.Microseconds())/1000/pods, bn.name+"-plugin-cpu-ms/pod")
				b.ReportMetric(float64(bn.self.Microseconds())/1000/pods, bn.name+"-harness-cpu-ms/pod")
			}
			b.ReportMetric(percentile(nets[0].adds, 50)/percentile(nets[1].adds, 50), "add-p50-over-ptp-ratio(goal<=1)")
			b.ReportMetric(percentile(nets[2].adds, 50)/percentile(nets[1].adds, 50), "direct-add-p50-over-ptp-ratio")
			if len(nets) > 3 {
				b.ReportMetric(percentile(nets[3].adds, 50)/percentile(nets[1].adds, 50), "b-add-p50-over-ptp-ratio")
			}
		})
	}
}

// benchNet is one network under measurement, its pods and its samples.
type benchNet struct {
	name       string
	h          *hostEnv
	l          *libcni.NetworkConfigList
	pods       []*pod
	adds, dels []time.Duration
	// cpu is the plugins' CPU time (user+system of the exited children,
	// and of the daemon serving them); self is this process's over the
	// same rounds (libcni, embedded etcd).
	cpu, self time.Duration
	// daemon, when set, returns the CPU time of the daemon that serves
	// the plugin (calico-cni-agent).
	daemon func(testing.TB) time.Duration
}

// benchNet makes the pods of a network and warms it up: the first calico
// ADD creates the profile and claims a block.
func (h *hostEnv) benchNet(name string, l *libcni.NetworkConfigList) *benchNet {
	bn := &benchNet{name: name, h: h, l: l, pods: make([]*pod, benchPods)}
	for i := range bn.pods {
		bn.pods[i] = h.newPod("", "")
	}
	bn.pods[0].rt.ContainerID = name + "-warmup"
	h.mustAdd(l, bn.pods[0])
	h.mustDel(l, bn.pods[0])
	return bn
}

// round adds and deletes every pod once, par at a time.
func (bn *benchNet) round(b *testing.B, n, par int) {
	children0, self0 := cpuTimes(b)
	var daemon0 time.Duration
	if bn.daemon != nil {
		daemon0 = bn.daemon(b)
	}
	defer func() {
		children1, self1 := cpuTimes(b)
		bn.cpu += children1 - children0
		bn.self += self1 - self0
		if bn.daemon != nil {
			bn.cpu += bn.daemon(b) - daemon0
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < benchPods; i += par {
				p := bn.pods[i]
				p.rt.ContainerID = fmt.Sprintf("%s%d-%d", bn.name, n, i)
				t0 := time.Now()
				if err := bn.h.add(bn.l, p); err != nil {
					b.Error(err)
					return
				}
				t1 := time.Now()
				if err := bn.h.del(bn.l, p); err != nil {
					b.Error(err)
					return
				}
				t2 := time.Now()
				mu.Lock()
				bn.adds, bn.dels = append(bn.adds, t1.Sub(t0)), append(bn.dels, t2.Sub(t1))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// cpuTimes returns the CPU time (user+system) of this process's exited
// children and of itself. Rounds run one network at a time, so a round's
// difference is its network's.
func cpuTimes(b *testing.B) (children, self time.Duration) {
	var c, s syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &s); err != nil {
		b.Fatal(err)
	}
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(c.Utime) + tv(c.Stime), tv(s.Utime) + tv(s.Stime)
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
