package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
)

// A NetworkPolicy becomes knp.default.<name> in its namespace, follows
// updates and goes with deletion.
func TestPolicyFollowsNetworkPolicy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "ns1", nil)
	e.start(t, nil)
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(80)
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns1"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	np, err := e.kube.NetworkingV1().NetworkPolicies("ns1").Create(ctx, np, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got *v3.NetworkPolicy
	eventually(t, 10*time.Second, "policy created", func() (err error) {
		got, err = e.calico.NetworkPolicies().Get(ctx, "ns1", "knp.default.web")
		return err
	})
	if got.Spec.Selector != "projectcalico.org/orchestrator == 'k8s' && app == 'web'" {
		t.Errorf("selector %q", got.Spec.Selector)
	}
	if got.Spec.Order == nil || *got.Spec.Order != 1000 || got.Spec.Tier != "default" {
		t.Errorf("order %v tier %q, want 1000 default", got.Spec.Order, got.Spec.Tier)
	}
	if len(got.Spec.Ingress) != 1 || got.Spec.Ingress[0].Source.Selector != "projectcalico.org/orchestrator == 'k8s' && role == 'client'" ||
		len(got.Spec.Ingress[0].Destination.Ports) != 1 || got.Spec.Ingress[0].Destination.Ports[0].MinPort != 80 {
		t.Errorf("ingress %+v", got.Spec.Ingress)
	}

	np.Spec.PodSelector.MatchLabels = map[string]string{"app": "api"}
	if _, err := e.kube.NetworkingV1().NetworkPolicies("ns1").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "policy updated", func() error {
		p, err := e.calico.NetworkPolicies().Get(ctx, "ns1", "knp.default.web")
		if err != nil {
			return err
		}
		if !strings.Contains(p.Spec.Selector, "app == 'api'") {
			return notYet("selector %q", p.Spec.Selector)
		}
		return nil
	})

	if err := e.kube.NetworkingV1().NetworkPolicies("ns1").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "policy deleted", func() error {
		_, err := e.calico.NetworkPolicies().Get(ctx, "ns1", "knp.default.web")
		if errors.Is(err, cerrors.ErrNotFound) {
			return nil
		}
		return notYet("still there (%v)", err)
	})
}

// Namespaces and service accounts become kns./ksa. profiles carrying
// their labels; label changes and deletions follow.
func TestProfilesFollowNamespacesAndServiceAccounts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "team-a", map[string]string{"team": "a"})
	e.start(t, nil)
	eventually(t, 10*time.Second, "namespace profile", func() error {
		p, err := e.calico.Profiles().Get(ctx, "", "kns.team-a")
		if err != nil {
			return err
		}
		want := map[string]string{"pcns.team": "a", "pcns.projectcalico.org/name": "team-a",
			"pcns.kubernetes.io/metadata.name": "team-a"} // set by the API server
		if !maps.Equal(p.Spec.LabelsToApply, want) {
			return notYet("labelsToApply %v, want %v", p.Spec.LabelsToApply, want)
		}
		if len(p.Spec.Ingress) != 1 || p.Spec.Ingress[0].Action != v3.Allow || len(p.Spec.Egress) != 1 || p.Spec.Egress[0].Action != v3.Allow {
			return fmt.Errorf("rules %+v %+v, want allow in and out", p.Spec.Ingress, p.Spec.Egress)
		}
		return nil
	})
	eventually(t, 10*time.Second, "service account profile", func() error {
		p, err := e.calico.Profiles().Get(ctx, "", "ksa.team-a.default")
		if err != nil {
			return err
		}
		if p.Spec.LabelsToApply["pcsa.projectcalico.org/name"] != "default" {
			return notYet("labelsToApply %v", p.Spec.LabelsToApply)
		}
		return nil
	})

	ns, err := e.kube.CoreV1().Namespaces().Get(ctx, "team-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["team"] = "b"
	if _, err := e.kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "namespace label change", func() error {
		p, err := e.calico.Profiles().Get(ctx, "", "kns.team-a")
		if err != nil {
			return err
		}
		if p.Spec.LabelsToApply["pcns.team"] != "b" {
			return notYet("labelsToApply %v", p.Spec.LabelsToApply)
		}
		return nil
	})

	if err := e.kube.CoreV1().ServiceAccounts("team-a").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "service account profile deleted", func() error {
		if _, err := e.calico.Profiles().Get(ctx, "", "ksa.team-a.default"); !errors.Is(err, cerrors.ErrNotFound) {
			return notYet("still there (%v)", err)
		}
		return nil
	})
}

// At start, objects of ours that Kubernetes no longer has are removed;
// what others wrote, even with a similar name, is left alone.
func TestStartRemovesStaleAndLeavesOthers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "live", nil)
	mk := func(r v3.Resource) {
		t.Helper()
		if _, err := e.calico.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	stalePol := v3.NewNetworkPolicy()
	stalePol.Name, stalePol.Namespace, stalePol.Spec.Selector = "knp.default.gone", "live", "all()"
	mk(stalePol)
	minePol := v3.NewNetworkPolicy()
	minePol.Name, minePol.Namespace, minePol.Spec.Selector = "knp-mine", "live", "all()"
	mk(minePol)
	for _, n := range []string{"kns.gone", "ksa.live.gone", "my-profile", "kns"} {
		p := v3.NewProfile()
		p.Name = n
		mk(p)
	}
	e.start(t, nil)
	eventually(t, 10*time.Second, "stale objects removed", func() error {
		var left []string
		if _, err := e.calico.NetworkPolicies().Get(ctx, "live", "knp.default.gone"); err == nil {
			left = append(left, "knp.default.gone")
		}
		for _, n := range []string{"kns.gone", "ksa.live.gone"} {
			if _, err := e.calico.Profiles().Get(ctx, "", n); err == nil {
				left = append(left, n)
			}
		}
		if len(left) > 0 {
			return notYet("left: %v", left)
		}
		if _, err := e.calico.Profiles().Get(ctx, "", "kns.live"); err != nil {
			return err
		}
		return nil
	})
	if _, err := e.calico.NetworkPolicies().Get(ctx, "live", "knp-mine"); err != nil {
		t.Errorf("someone else's policy: %v", err)
	}
	for _, n := range []string{"my-profile", "kns"} {
		if _, err := e.calico.Profiles().Get(ctx, "", n); err != nil {
			t.Errorf("someone else's profile %s: %v", n, err)
		}
	}
}

// Someone editing or deleting a mirrored object in etcd is undone.
func TestEditsInEtcdAreUndone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "ns1", map[string]string{"a": "1"})
	e.start(t, nil)
	var p *v3.Profile
	eventually(t, 10*time.Second, "profile", func() (err error) {
		p, err = e.calico.Profiles().Get(ctx, "", "kns.ns1")
		return err
	})
	p.Spec.LabelsToApply["pcns.a"] = "forged"
	if _, err := e.calico.Profiles().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "edit undone", func() error {
		p, err := e.calico.Profiles().Get(ctx, "", "kns.ns1")
		if err != nil {
			return err
		}
		if p.Spec.LabelsToApply["pcns.a"] != "1" {
			return notYet("label %q", p.Spec.LabelsToApply["pcns.a"])
		}
		return nil
	})
	if _, err := e.calico.Profiles().Delete(ctx, "", "kns.ns1", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "deletion undone", func() error {
		_, err := e.calico.Profiles().Get(ctx, "", "kns.ns1")
		return err
	})
}

// A pod's label changes reach the WorkloadEndpoints the CNI plugin wrote
// for it; other endpoints are untouched.
func TestPodLabelsReachWorkloadEndpoint(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace(t, "ns1", nil)
	pod, err := e.kube.CoreV1().Pods("ns1").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node1", AutomountServiceAccountToken: new(bool),
			Containers: []corev1.Container{{Name: "c", Image: "test"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint("node1", "ns1", "web-0", map[string]string{"app": "old"})
	other := endpoint("node1", "ns1", "other", map[string]string{"app": "other"})
	for _, w := range []*v3.WorkloadEndpoint{ep, other} {
		if _, err := e.calico.WorkloadEndpoints().Create(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	e.start(t, nil)
	wantLabels := func(want map[string]string) func() error {
		return func() error {
			got, err := e.calico.WorkloadEndpoints().Get(ctx, "ns1", ep.Name)
			if err != nil {
				return err
			}
			if !maps.Equal(got.Labels, want) {
				return notYet("labels %v, want %v", got.Labels, want)
			}
			return nil
		}
	}
	base := map[string]string{"projectcalico.org/namespace": "ns1", "projectcalico.org/orchestrator": "k8s",
		"projectcalico.org/serviceaccount": "default"}
	want := maps.Clone(base)
	want["app"] = "web"
	eventually(t, 10*time.Second, "labels at start", wantLabels(want))

	pod.Labels = map[string]string{"app": "web", "tier": "front"}
	if _, err := e.kube.CoreV1().Pods("ns1").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want = maps.Clone(base)
	want["app"], want["tier"] = "web", "front"
	eventually(t, 10*time.Second, "labels after change", wantLabels(want))
	got, err := e.calico.WorkloadEndpoints().Get(ctx, "ns1", other.Name)
	if err != nil || got.Labels["app"] != "other" {
		t.Errorf("endpoint of another pod: %v %v", got, err)
	}
}

// endpoint is a WorkloadEndpoint as the CNI plugin writes it in
// Kubernetes mode.
func endpoint(node, ns, pod string, labels map[string]string) *v3.WorkloadEndpoint {
	w := v3.NewWorkloadEndpoint()
	w.Name = v3.WorkloadEndpointName(node, v3.OrchestratorKubernetes, pod, "eth0")
	w.Namespace = ns
	w.Labels = labels
	w.Spec = v3.WorkloadEndpointSpec{Orchestrator: v3.OrchestratorKubernetes, Node: node, Pod: pod, Endpoint: "eth0",
		ContainerID: "c-" + pod, InterfaceName: "cali" + strings.Repeat("0", 11), Profiles: []string{"kns." + ns},
		IPNetworks: []string{}}
	return w
}
