package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
)

// Deleting a Kubernetes Node removes its Calico node with its endpoints
// and addresses, and leaves ipam check clean. Calico nodes of other
// Kubernetes nodes, without a Kubernetes node reference, or registered
// only moments ago (their kubelet may not have registered yet) stay.
func TestNodeDeletionCascade(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	l := logrus.New()
	l.SetOutput(io.Discard)
	ic, err := ipam.New(e.calico.Backend(), logrus.NewEntry(l), ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pool := v3.NewIPPool()
	pool.Name, pool.Spec.CIDR, pool.Spec.BlockSize = "pool", "10.70.0.0/16", 26
	if _, err := e.calico.IPPools().Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	calicoNode := func(name, kubeName string, created time.Time) {
		t.Helper()
		n := v3.NewNode()
		n.Name = name
		if kubeName != "" {
			n.Spec.OrchRefs = []v3.OrchRef{{Orchestrator: "k8s", NodeName: kubeName}}
		}
		out, err := e.calico.Nodes().Create(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if !created.IsZero() { // backdate it, as if registered long ago
			out.CreationTimestamp = v3.Time{Time: created}
			out.ResourceVersion = "" // never stored
			raw := e.etcd.RawClient(t)
			b, _ := json.Marshal(out)
			if _, err := raw.Put(ctx, "/calico/resources/v3/projectcalico.org/nodes/"+name, string(b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	long := time.Now().Add(-time.Hour)
	calicoNode("host-a", "kn-a", long)
	calicoNode("host-b", "kn-b", long)
	calicoNode("baremetal", "", long)
	calicoNode("young", "kn-young", time.Time{})
	calicoNode("stale", "kn-stale", long) // its Kubernetes node is already gone
	for _, n := range []string{"kn-a", "kn-b"} {
		if _, err := e.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pods := map[string]string{} // endpoint name → node
	for _, c := range []struct{ node, pod string }{{"host-a", "a1"}, {"host-a", "a2"}, {"host-b", "b1"}, {"stale", "s1"}} {
		v4, _, err := ic.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: "net." + c.pod, Hostname: c.node,
			Attrs: map[string]string{ipam.AttributeNode: c.node}})
		if err != nil {
			t.Fatal(err)
		}
		w := endpoint(c.node, "default", c.pod, nil)
		w.Spec.IPNetworks = []string{v4.IPs[0].Addr().String() + "/32"}
		if _, err := e.calico.WorkloadEndpoints().Create(ctx, w); err != nil {
			t.Fatal(err)
		}
		pods[w.Name] = c.node
	}

	e.start(t, nil)
	gone := func(name string) func() error {
		return func() error {
			if _, err := e.calico.Nodes().Get(ctx, "", name); !errors.Is(err, cerrors.ErrNotFound) {
				return notYet("node %s still there (%v)", name, err)
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "stale node swept at start", gone("stale"))
	if err := e.kube.CoreV1().Nodes().Delete(ctx, "kn-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "deleted node's Calico node removed", gone("host-a"))
	eventually(t, 10*time.Second, "ipam check clean", func() error {
		rep, err := ipamcheck.Check(ctx, ic, ipamcheck.Options{})
		if err != nil {
			return err
		}
		if !rep.OK() {
			return notYet("report %+v", rep)
		}
		return nil
	})
	for name, node := range pods {
		_, err := e.calico.WorkloadEndpoints().Get(ctx, "default", name)
		switch {
		case node == "host-b" && err != nil:
			t.Errorf("endpoint %s of a live node: %v", name, err)
		case node != "host-b" && !errors.Is(err, cerrors.ErrNotFound):
			t.Errorf("endpoint %s of a deleted node: %v", name, err)
		}
	}
	for _, n := range []string{"host-b", "baremetal", "young"} {
		if _, err := e.calico.Nodes().Get(ctx, "", n); err != nil {
			t.Errorf("node %s: %v", n, err)
		}
	}
}
