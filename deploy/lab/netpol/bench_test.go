package netpol

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil/kubeapi"
)

// BenchmarkPodRunningAndReachable: a pod created with kubectl until it is
// Running (as the API server reports it) and answers a TCP probe from a
// pod on another host (x/a on host1; the pods alternate between host2
// and host3), over 50 pods made one after another. The lower bound is the
// time until kubelet reports the pod Running: networking can add to it,
// never take from it. Probing starts as soon as the pod's IP is known,
// from the API server or from the WorkloadEndpoint the CNI plugin wrote
// (usually first), so answered-p50-ms shows when the network was ready.
func BenchmarkPodRunningAndReachable(b *testing.B) {
	const n, warmup, ns = 50, 2, "bench-pods"
	c := benchLab(b)
	ctx := context.Background()
	c.benchNamespace(b, ns)
	tl := newTimeline()
	defer c.watchPods(b, ns, tl)()
	defer c.watchCalico(b, v3.KindWorkloadEndpoint, ns, func(kv *backend.KVPair, at time.Time) {
		var w struct {
			Spec struct {
				Pod        string
				IPNetworks []string
			}
		}
		if json.Unmarshal(kv.Value, &w) == nil && len(w.Spec.IPNetworks) > 0 {
			ip, _, _ := strings.Cut(w.Spec.IPNetworks[0], "/")
			tl.mark("ip/"+w.Spec.Pod, at, ip)
		}
	})()
	from := c.byName["x/a"]
	var ours, bound, reach []time.Duration
	for i := range n + warmup {
		kp := lab.KubePod{Namespace: ns, Name: fmt.Sprintf("p%d", i), Host: []string{"host2", "host3"}[i%2],
			Labels: map[string]string{"app": "bench"}}
		t0 := time.Now()
		if err := c.lab.Apply(ctx, kp.Manifest()); err != nil {
			b.Fatal(err)
		}
		_, ip, err := tl.wait(ctx, "ip/"+kp.Name, time.Minute)
		if err != nil {
			b.Fatalf("pod %s got no IP: %v", kp.Name, err)
		}
		reached, err := c.awaitProbe(ctx, from, net.JoinHostPort(ip, "80"), true, time.Minute)
		if err != nil {
			b.Fatalf("pod %s at %s: %v", kp.Name, ip, err)
		}
		running, _, err := tl.wait(ctx, "running/"+kp.Name, time.Minute)
		if err != nil {
			b.Fatalf("pod %s not Running: %v", kp.Name, err)
		}
		if i >= warmup {
			ours = append(ours, max(running.Sub(t0), reached.Sub(t0)))
			bound = append(bound, running.Sub(t0))
			reach = append(reach, reached.Sub(t0))
		}
	}
	// When the first probe answered, Running or not: networking is
	// ready before kubelet reports Running when this is below bound-p50.
	b.ReportMetric(percentile(reach, 50), "answered-p50-ms")
	report(b, ours, bound, "p50-over-running-ratio(goal<=1.1)")
}

// BenchmarkPolicyEnforced: a NetworkPolicy denying ingress to a pod on
// host2, created with kubectl, until a TCP probe from a pod on host1 is
// blocked, over 20 policies (each deleted, and traffic back, before the
// next). The lower bound is the time until calico-kube-controllers has
// written the Calico policy to etcd (seen by an etcd watch): felix cannot
// enforce what is not there yet.
func BenchmarkPolicyEnforced(b *testing.B) {
	const n, warmup, ns = 20, 2, "bench-policy"
	c := benchLab(b)
	ctx := context.Background()
	c.benchNamespace(b, ns)
	ips, err := c.lab.CreatePods(ctx, []lab.KubePod{{Namespace: ns, Name: "target", Host: "host2",
		Labels: map[string]string{"app": "target"}}}, 2*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	to := net.JoinHostPort(ips[ns+"/target"], "80")
	from := c.byName["x/a"]
	if _, err := c.awaitProbe(ctx, from, to, true, time.Minute); err != nil {
		b.Fatal(err)
	}
	tl := newTimeline()
	defer c.watchCalico(b, v3.KindNetworkPolicy, ns, func(kv *backend.KVPair, at time.Time) {
		if k, ok := kv.Key.(model.ResourceKey); ok && strings.HasPrefix(k.Name, knpPrefix) {
			tl.mark(strings.TrimPrefix(k.Name, knpPrefix), at, "")
		}
	})()
	var ours, bound []time.Duration
	for i := range n + warmup {
		name := fmt.Sprintf("deny-%d", i)
		manifest := policyManifest(ns, name, `
			podSelector: {matchLabels: {app: target}}
			policyTypes: [Ingress]`)
		applied := make(chan error, 1)
		t0 := time.Now()
		go func() { applied <- c.lab.Apply(ctx, manifest) }()
		blocked, err := c.awaitProbe(ctx, from, to, false, time.Minute)
		if err != nil {
			b.Fatalf("policy %s: %v", name, err)
		}
		if err := <-applied; err != nil {
			b.Fatal(err)
		}
		written, _, err := tl.wait(ctx, name, time.Minute)
		if err != nil {
			b.Fatalf("policy %s not in etcd: %v", name, err)
		}
		if i >= warmup {
			ours = append(ours, blocked.Sub(t0))
			bound = append(bound, written.Sub(t0))
		}
		if _, err := c.lab.Kubectl(ctx, "delete", "networkpolicy", "-n", ns, name); err != nil {
			b.Fatal(err)
		}
		if _, err := c.awaitProbe(ctx, from, to, true, time.Minute); err != nil {
			b.Fatalf("after deleting %s: %v", name, err)
		}
	}
	report(b, ours, bound, "p50-over-etcd-ratio(goal<=1.5)")
}

// benchLab is the shared lab, or skips or fails the benchmark.
func benchLab(b *testing.B) *cluster {
	b.Helper()
	switch {
	case skip != "":
		b.Skip("SKIPPED: " + skip)
	case setupErr != nil:
		b.Fatalf("the lab did not come up: %v", setupErr)
	}
	return suite
}

// benchNamespace makes namespace ns, removed (with its pods) when b ends.
func (c *cluster) benchNamespace(b *testing.B, ns string) {
	b.Helper()
	if err := c.lab.Apply(context.Background(), namespaceManifest(ns, nil)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if _, err := c.lab.Kubectl(context.Background(), "delete", "namespace", ns, "--timeout=180s"); err != nil {
			b.Error(err)
		}
	})
}

// awaitProbe probes to from p every few milliseconds until the answer is
// want, and returns when the first probe that gave it started. A probe
// that goes unanswered is confirmed by a second one before it counts.
func (c *cluster) awaitProbe(ctx context.Context, p *pod, to string, want bool, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		start := time.Now()
		got := c.lab.Probe(ctx, p.netns, "tcp", to, 200*time.Millisecond)
		if got == want && (want || !c.lab.Probe(ctx, p.netns, "tcp", to, time.Second)) {
			return start, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("%s -> %s: not %s within %s", p, to, map[bool]string{true: "answered", false: "blocked"}[want], within)
}

// report gives the p50 and p99 of ours and bound in milliseconds, and
// ours' p50 over bound's as the ratio metric named ratio.
func report(b *testing.B, ours, bound []time.Duration, ratio string) {
	b.ReportMetric(percentile(ours, 50), "p50-ms")
	b.ReportMetric(percentile(ours, 99), "p99-ms")
	b.ReportMetric(percentile(bound, 50), "bound-p50-ms")
	b.ReportMetric(percentile(bound, 99), "bound-p99-ms")
	b.ReportMetric(percentile(ours, 50)/percentile(bound, 50), ratio)
}

// percentile is the nearest-rank p-th percentile of ds, in milliseconds.
func percentile(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(int(math.Ceil(p/100*float64(len(s))))-1, 0)
	return float64(s[i]) / float64(time.Millisecond)
}

// timeline records when things first happened, by key, for waiters.
type timeline struct {
	mu      sync.Mutex
	at      map[string]time.Time
	val     map[string]string
	changed chan struct{}
}

func newTimeline() *timeline {
	return &timeline{at: map[string]time.Time{}, val: map[string]string{}, changed: make(chan struct{})}
}

// mark records key (and a value) at t unless it happened before.
func (tl *timeline) mark(key string, t time.Time, val string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if _, ok := tl.at[key]; ok {
		return
	}
	tl.at[key], tl.val[key] = t, val
	close(tl.changed)
	tl.changed = make(chan struct{})
}

// wait returns when key happened and its value.
func (tl *timeline) wait(ctx context.Context, key string, within time.Duration) (time.Time, string, error) {
	timeout := time.After(within)
	for {
		tl.mu.Lock()
		t, ok := tl.at[key]
		v, changed := tl.val[key], tl.changed
		tl.mu.Unlock()
		if ok {
			return t, v, nil
		}
		select {
		case <-changed:
		case <-timeout:
			return time.Time{}, "", fmt.Errorf("%s did not happen within %s", key, within)
		case <-ctx.Done():
			return time.Time{}, "", ctx.Err()
		}
	}
}

// watchPods watches the pods of ns through the API server and marks on
// tl "ip/<pod>" (with the IP) when a pod first has an IP and
// "running/<pod>" when it is first Running; the returned func stops it.
func (c *cluster) watchPods(b *testing.B, ns string, tl *timeline) func() {
	b.Helper()
	server, err := c.lab.Kubectl(context.Background(), "config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.server}")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		strings.TrimSpace(server)+"/api/v1/namespaces/"+ns+"/pods?watch=true", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+kubeapi.Token)
	// The lab's API server has a self-signed certificate.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		b.Fatalf("watching pods: %s", resp.Status)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var ev struct {
				Object struct {
					Metadata struct{ Name string }
					Status   struct{ Phase, PodIP string }
				}
			}
			if err := dec.Decode(&ev); err != nil {
				return
			}
			now, o := time.Now(), ev.Object
			if o.Status.PodIP != "" {
				tl.mark("ip/"+o.Metadata.Name, now, o.Status.PodIP)
			}
			if o.Status.Phase == "Running" {
				tl.mark("running/"+o.Metadata.Name, now, "")
			}
		}
	}()
	return func() { cancel(); <-done }
}

// watchCalico watches the objects of kind in ns in etcd and calls onAdd
// with each one written, and when it arrived; the returned func stops it.
func (c *cluster) watchCalico(b *testing.B, kind, ns string, onAdd func(kv *backend.KVPair, at time.Time)) func() {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	_, rev, err := c.calico.List(ctx, kind, client.ListOptions{Namespace: ns})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	w, err := c.calico.Watch(ctx, kind, client.ListOptions{Namespace: ns}, rev)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.Events() {
			switch {
			case ev.Type == backend.EventError:
				if !errors.Is(ev.Err, context.Canceled) {
					b.Errorf("watching etcd: %v", ev.Err)
				}
				return
			case (ev.Type == backend.EventAdded || ev.Type == backend.EventModified) && ev.New != nil:
				onAdd(ev.New, time.Now())
			}
		}
	}()
	return func() { w.Stop(); cancel(); <-done }
}
