package daemon_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func percentile(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i].Microseconds()) / 1000
}

// BenchmarkPolicyCreatedToEtcd: a NetworkPolicy created with the API →
// its Calico policy in etcd, one at a time, against the lower bound of
// the same create seen by a bare watch of the API plus one bare etcd put.
func BenchmarkPolicyCreatedToEtcd(b *testing.B) {
	const n = 100
	e := newEnv(b)
	ctx := context.Background()
	e.namespace(b, "bench", nil)
	raw := e.etcd.RawClient(b)
	ew := raw.Watch(ctx, "/calico/resources/v3/projectcalico.org/networkpolicies/bench/", clientv3.WithPrefix())
	kw, err := e.kube.NetworkingV1().NetworkPolicies("bench").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer kw.Stop()
	e.start(b, nil)
	var ours, bound []time.Duration
	for i := range n + 5 {
		name := fmt.Sprintf("np-%d", i)
		t0 := time.Now()
		if _, err := e.kube.NetworkingV1().NetworkPolicies("bench").Create(ctx, policy("bench", name, name), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		var seen time.Duration
		for ev := range kw.ResultChan() {
			if ev.Type == watch.Added {
				seen = time.Since(t0)
				break
			}
		}
		var done time.Duration
	wait:
		for resp := range ew {
			for _, ev := range resp.Events {
				if strings.HasSuffix(string(ev.Kv.Key), "/knp.default."+name) {
					done = time.Since(t0)
					break wait
				}
			}
		}
		p0 := time.Now()
		if _, err := raw.Put(ctx, "/bench/put", strings.Repeat("x", 600)); err != nil {
			b.Fatal(err)
		}
		put := time.Since(p0)
		if i >= 5 { // warm-up
			ours, bound = append(ours, done), append(bound, seen+put)
		}
	}
	b.ReportMetric(percentile(ours, 50), "p50-ms")
	b.ReportMetric(percentile(ours, 99), "p99-ms")
	b.ReportMetric(percentile(bound, 50), "bound-p50-ms")
	b.ReportMetric(percentile(ours, 50)/percentile(bound, 50), "p50-over-bound-ratio(goal<=1.5)")
}

// BenchmarkPodLabels1000: 1,000 pods' labels changed → their
// WorkloadEndpoints' labels updated, per second, against the rate at which
// the API server took the label changes (the controllers cannot lead it).
func BenchmarkPodLabels1000(b *testing.B) {
	const n, writers = 1000, 8
	e := newEnv(b)
	ctx := context.Background()
	e.namespace(b, "bench", nil)
	parallel := func(f func(i int)) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := w; i < n; i += writers {
					f(i)
				}
			})
		}
		wg.Wait()
	}
	parallel(func(i int) {
		name := fmt.Sprintf("pod-%d", i)
		if _, err := e.kube.CoreV1().Pods("bench").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"round": "0"}},
			Spec: corev1.PodSpec{NodeName: "node1", AutomountServiceAccountToken: new(bool),
				Containers: []corev1.Container{{Name: "c", Image: "test"}}},
		}, metav1.CreateOptions{}); err != nil {
			b.Error(err)
		}
		if _, err := e.calico.WorkloadEndpoints().Create(ctx, endpoint("node1", "bench", name, map[string]string{"round": "0"})); err != nil {
			b.Error(err)
		}
	})
	if b.Failed() {
		b.FailNow()
	}
	e.start(b, nil)
	raw := e.etcd.RawClient(b)
	// The start-of-day pass writes the orchestrator labels; wait for it.
	waitLabelled := func(round string) {
		for {
			resp, err := raw.Get(ctx, "/calico/resources/v3/projectcalico.org/workloadendpoints/bench/", clientv3.WithPrefix())
			if err != nil {
				b.Fatal(err)
			}
			done := 0
			for _, kv := range resp.Kvs {
				if strings.Contains(string(kv.Value), `"round":"`+round+`"`) && strings.Contains(string(kv.Value), v3.LabelOrchestrator) {
					done++
				}
			}
			if done == n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLabelled("0")
	ew := raw.Watch(ctx, "/calico/resources/v3/projectcalico.org/workloadendpoints/bench/", clientv3.WithPrefix())
	t0 := time.Now()
	parallel(func(i int) {
		patch := []byte(`{"metadata":{"labels":{"round":"1"}}}`)
		if _, err := e.kube.CoreV1().Pods("bench").Patch(ctx, fmt.Sprintf("pod-%d", i), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			b.Error(err)
		}
	})
	patched := time.Since(t0)
	updated := map[string]bool{}
	for resp := range ew {
		for _, ev := range resp.Events {
			if strings.Contains(string(ev.Kv.Value), `"round":"1"`) {
				updated[string(ev.Kv.Key)] = true
			}
		}
		if len(updated) == n {
			break
		}
	}
	total := time.Since(t0)
	b.ReportMetric(n/total.Seconds(), "endpoints-updated/s")
	b.ReportMetric(n/patched.Seconds(), "api-patches/s")
	b.ReportMetric(total.Seconds()/patched.Seconds(), "time-over-api-ratio(goal<=1.5)")
}
