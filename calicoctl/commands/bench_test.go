package commands

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// manifest1000 writes a 1,000-resource file: 250 each of GlobalNetworkSet,
// NetworkPolicy, HostEndpoint and Profile.
func manifest1000(b *testing.B) string {
	b.Helper()
	var s strings.Builder
	for i := range 250 {
		fmt.Fprintf(&s, "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: gns-%d\n  labels:\n    set: s%d\nspec:\n  nets:\n  - 10.%d.%d.0/24\n---\n", i, i%10, i/256, i%256)
		fmt.Fprintf(&s, "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: np-%d\n  namespace: ns-%d\nspec:\n  order: %d\n  selector: app == 'a%d'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source:\n      selector: role == 'frontend'\n    destination:\n      ports: [80, 443]\n  egress:\n  - action: Allow\n---\n", i, i%20, i, i)
		fmt.Fprintf(&s, "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: hep-%d\n  labels:\n    role: host\nspec:\n  node: node-%d\n  interfaceName: eth0\n  expectedIPs:\n  - 172.16.%d.%d\n---\n", i, i, i/256, i%256)
		fmt.Fprintf(&s, "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: prof-%d\nspec:\n  labelsToApply:\n    p: v%d\n  ingress:\n  - action: Allow\n  egress:\n  - action: Allow\n---\n", i, i)
	}
	p := filepath.Join(b.TempDir(), "1000.yaml")
	if err := os.WriteFile(p, []byte(s.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkApply1000 times `calicoctl apply -f` of 1,000 resources into an
// empty datastore against 1,000 sequential raw etcd puts of the values it
// stored ("ratio": the default, one write at a time, as Calico);
// "inflight8-ratio" is the same apply with --max-inflight 8. Each iteration
// does applyRounds rounds of every workload, alternating their order, so
// that the fsync latency of the disk, which drifts, weighs on all alike
// and -benchtime=1x is meaningful.
func BenchmarkApply1000(b *testing.B) {
	const applyRounds = 4
	file := manifest1000(b)
	raw := rawClient(b)
	ctx := context.Background()
	var applyTotal, serialTotal, rawTotal time.Duration
	var keys []string
	var stored map[string]string
	apply := func(total *time.Duration, args ...string) {
		b.StopTimer()
		c := fresh(b)
		b.StartTimer()
		start := time.Now()
		r := c.run(append([]string{"apply", "-f", file}, args...)...)
		*total += time.Since(start)
		b.StopTimer()
		if r.code != 0 || r.stdout != "Successfully applied 1000 resource(s)\n" {
			b.Fatal(r)
		}
		stored = dump(b)
		keys = keys[:0]
		for k := range stored {
			if strings.HasPrefix(k, "/calico/resources/") && !strings.HasSuffix(k, "/default") {
				keys = append(keys, k)
			}
		}
		if len(keys) != 1000 {
			b.Fatalf("%d keys stored", len(keys))
		}
		sort.Strings(keys)
		b.StartTimer()
	}
	rawPuts := func() {
		b.StopTimer()
		if _, err := raw.Delete(ctx, "/calico/", clientv3.WithPrefix()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for _, k := range keys {
			if _, err := raw.Put(ctx, k, stored[k]); err != nil {
				b.Fatal(err)
			}
		}
		rawTotal += time.Since(start)
	}
	for b.Loop() {
		for round := range applyRounds {
			// The command as shipped: one write at a time, as Calico's
			// calicoctl; then with eight writes in flight.
			steps := []func(){
				func() { apply(&serialTotal) },
				func() { apply(&applyTotal, "--max-inflight", "8") },
				rawPuts,
			}
			if round%2 == 1 && keys != nil {
				slices.Reverse(steps)
			}
			for _, step := range steps {
				step()
			}
		}
	}
	n := float64(b.N * applyRounds)
	b.ReportMetric(float64(applyTotal.Milliseconds())/n, "apply-ms")
	b.ReportMetric(float64(rawTotal.Milliseconds())/n, "raw-puts-ms")
	b.ReportMetric(float64(applyTotal)/float64(rawTotal), "inflight8-ratio")
	b.ReportMetric(float64(serialTotal.Milliseconds())/n, "apply-serial-ms")
	b.ReportMetric(float64(serialTotal)/float64(rawTotal), "ratio(goal<=1.5)")
}

// BenchmarkGetYAML10k times `calicoctl get globalnetworksets -o yaml` of
// 10,000 resources (goal: under a second per get).
func BenchmarkGetYAML10k(b *testing.B) {
	fresh(b)
	raw := rawClient(b)
	ctx := context.Background()
	ops := make([]clientv3.Op, 0, 100)
	for i := range 10000 {
		name := fmt.Sprintf("gns-%05d", i)
		val := fmt.Sprintf(`{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":%q,"uid":"2abe42af-ee22-49cb-a6b8-2ea87fc0c%03d","creationTimestamp":"2026-11-22T03:43:01Z","labels":{"role":"blocklist","index":"i%d"}},"spec":{"nets":["10.%d.%d.0/24","198.51.100.0/28"]}}`,
			name, i%1000, i, i/256, i%256)
		ops = append(ops, clientv3.OpPut("/calico/resources/v3/projectcalico.org/globalnetworksets/"+name, val))
		if len(ops) == cap(ops) {
			if _, err := raw.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	c := newCLI(b)
	var total time.Duration
	var size int
	for b.Loop() {
		var out countingWriter
		d := c.deps
		d.Stdout, d.Stderr, d.Getenv = &out, io.Discard, func(k string) string { return c.env[k] }
		start := time.Now()
		code := Run(ctx, d, []string{"get", "globalnetworksets", "-o", "yaml"})
		total += time.Since(start)
		if code != 0 {
			b.Fatal("get failed")
		}
		size = out.n
	}
	if size < 10000*200 {
		b.Fatalf("only %d bytes of YAML", size)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "get-ms")
	b.ReportMetric(float64(size)/1e6, "MB-out")
}

type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
