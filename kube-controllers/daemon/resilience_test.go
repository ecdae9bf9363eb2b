package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/testutil"
)

func policy(ns, name, app string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
}

// policiesIn returns the names of the Calico policies in ns.
func (e *env) policiesIn(ctx context.Context, ns string) (map[string]string, error) {
	ps, _, err := e.calico.NetworkPolicies().List(ctx, client.ListOptions{Namespace: ns})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range ps {
		out[p.Name] = p.Spec.Selector
	}
	return out, nil
}

// wantPolicies waits until ns holds exactly the knp.default.<name>
// policies of want (name → app).
func (e *env) wantPolicies(t *testing.T, ns string, want map[string]string, within time.Duration) {
	t.Helper()
	eventually(t, within, "policies of "+ns, func() error {
		got, err := e.policiesIn(context.Background(), ns)
		if err != nil {
			return err
		}
		if len(got) != len(want) {
			return notYet("have %v, want %v", got, want)
		}
		for name, app := range want {
			sel, ok := got["knp.default."+name]
			if !ok || !strings.Contains(sel, fmt.Sprintf("app == '%s'", app)) {
				return notYet("have %v, want %v", got, want)
			}
		}
		return nil
	})
}

// Calico's etcd stopped while NetworkPolicies are created, changed and
// deleted: once it is back, the controllers converge; nothing is lost.
func TestEtcdRestartMidStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "ns1", nil)
	nps := e.kube.NetworkingV1().NetworkPolicies("ns1")
	for _, n := range []string{"a", "b"} {
		if _, err := nps.Create(ctx, policy("ns1", n, n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.start(t, nil)
	e.wantPolicies(t, "ns1", map[string]string{"a": "a", "b": "b"}, 10*time.Second)

	e.etcd.Stop()
	if _, err := nps.Create(ctx, policy("ns1", "c", "c"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nps.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := nps.Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.PodSelector.MatchLabels["app"] = "b2"
	if _, err := nps.Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // writes fail and are retried meanwhile
	if err := e.etcd.Start(); err != nil {
		t.Fatal(err)
	}
	e.wantPolicies(t, "ns1", map[string]string{"b": "b2", "c": "c"}, 45*time.Second)
}

// etcd compacted and a stale object planted while the controllers run:
// they see it through the watch and remove it.
func TestStaleObjectAfterCompactionRemoved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "ns1", nil)
	e.start(t, nil)
	eventually(t, 10*time.Second, "namespace profile", func() error {
		_, err := e.calico.Profiles().Get(ctx, "", "kns.ns1")
		return err
	})
	if _, err := e.etcd.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	p := v3.NewProfile()
	p.Name = "kns.gone"
	if _, err := e.calico.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "stale profile removed", func() error {
		if _, err := e.calico.Profiles().Get(ctx, "", "kns.gone"); !errors.Is(err, cerrors.ErrNotFound) {
			return notYet("still there (%v)", err)
		}
		return nil
	})
}

// The API server restarted mid-stream: the informers relist and nothing
// made meanwhile is lost.
func TestAPIServerRestartMidStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "ns1", nil)
	nps := e.kube.NetworkingV1().NetworkPolicies("ns1")
	if _, err := nps.Create(ctx, policy("ns1", "a", "a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.start(t, nil)
	e.wantPolicies(t, "ns1", map[string]string{"a": "a"}, 10*time.Second)
	e.api.Stop()
	time.Sleep(2 * time.Second) // the watches break
	if err := e.api.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := nps.Create(ctx, policy("ns1", "b", "b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nps.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.wantPolicies(t, "ns1", map[string]string{"b": "b"}, 30*time.Second)
}

// Two replicas: one leads; when it stops, the other takes the lease and
// carries on.
func TestLeaderHandOver(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "ns1", nil)
	le := map[string]string{"LEADER_ELECTION": "true", "LEADER_ELECTION_NAMESPACE": "kube-system"}
	first := e.start(t, with(le, "POD_NAME", "first"))
	nps := e.kube.NetworkingV1().NetworkPolicies("ns1")
	if _, err := nps.Create(ctx, policy("ns1", "a", "a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.wantPolicies(t, "ns1", map[string]string{"a": "a"}, 20*time.Second)
	second := e.start(t, with(le, "POD_NAME", "second"))
	holder := func() string {
		l, err := e.kube.CoordinationV1().Leases("kube-system").Get(ctx, "calico-kube-controllers", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	if h := holder(); h != "first" {
		t.Fatalf("lease held by %q, want first", h)
	}
	first.stop(t)
	eventually(t, 30*time.Second, "second takes the lease", func() error {
		if h := holder(); h != "second" {
			return notYet("held by %q", h)
		}
		return nil
	})
	if _, err := nps.Create(ctx, policy("ns1", "b", "b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.wantPolicies(t, "ns1", map[string]string{"a": "a", "b": "b"}, 20*time.Second)
	select {
	case err := <-second.done:
		second.done <- err
		t.Fatalf("second replica ended: %v", err)
	default:
	}
}

// The health and metrics servers answer once synced.
func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t)
	hp, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	mp, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	e.start(t, map[string]string{"HEALTH_PORT": fmt.Sprint(hp), "PROMETHEUS_METRICS_PORT": fmt.Sprint(mp)})
	eventually(t, 15*time.Second, "ready", func() error {
		code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/readiness", hp))
		if err != nil {
			return err
		}
		if code != 200 {
			return notYet("%d %s", code, body)
		}
		for _, c := range []string{"policy", "namespace", "serviceaccount", "workloadendpoint", "node"} {
			if !strings.Contains(body, "+ "+c) {
				return fmt.Errorf("readiness body %q lacks %s", body, c)
			}
		}
		return nil
	})
	code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/liveness", hp))
	if err != nil || code != 200 || !strings.Contains(body, "+ leader-election") {
		t.Errorf("liveness: %d %q %v", code, body, err)
	}
	code, body, err = httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", mp))
	if err != nil || code != 200 {
		t.Fatalf("metrics: %d %v", code, err)
	}
	for _, m := range []string{"calico_kube_controllers_writes_total", "calico_kube_controllers_etcd_in_sync 1",
		"calico_kube_controllers_is_leader 1"} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
