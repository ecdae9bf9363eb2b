package fvtest

import (
	"context"
	"errors"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/testutil"
)

// TestFelixEtcdCluster runs felix on a 3-member etcd cluster (the host
// namespace joined to the members' LAN, ETCD_ENDPOINTS listing all three)
// through the cluster's faults: the dataplane stays as it was while the
// cluster is broken, a policy change made while a quorum stands is
// enforced, and so is one made once the cluster is healed.
//
// Its workloads (c1..c3, 10.66.0.0/16) and datastore are its own; they
// are removed at the end, and the package's other felix resyncs the host.
func TestFelixEtcdCluster(t *testing.T) {
	cl := testutil.StartEtcdCluster(t, 3)
	host, err := testutil.OpenNetNS(hostNS)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if _, err := cl.Attach(host, "etcd0"); err != nil {
		t.Fatal(err)
	}
	be, err := etcd.New(etcd.Config{Endpoints: cl.ClientURLs(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(be)
	defer c.Close()
	// write applies or deletes, retrying while the cluster settles.
	write := func(t *testing.T, del bool, rs ...v3.Resource) {
		t.Helper()
		for _, r := range rs {
			eventually(t, 30*time.Second, "writing "+r.GetObjectMeta().Name, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if del {
					m := r.GetObjectMeta()
					_, err := c.Delete(ctx, r.GetTypeMeta().Kind, m.Namespace, m.Name, "")
					if errors.Is(err, cerrors.ErrNotFound) {
						return nil
					}
					return err
				}
				_, err := c.Apply(ctx, v3.Clone(r))
				return err
			})
		}
	}

	w1, w2, w3 := addWorkload(t, "c1", "10.66.0.1"), addWorkload(t, "c2", "10.66.0.2"), addWorkload(t, "c3", "10.66.0.3")
	defer func() {
		for _, w := range []*wl{w1, w2, w3} {
			w.ns.Delete()
		}
	}()
	pool := v3.NewIPPool()
	pool.Name = "pool-c"
	pool.Spec.CIDR = "10.66.0.0/16"
	node := v3.NewNode()
	node.Name = nodeName
	node.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "192.168.90.1/24"}
	write(t, false, pool, node, nsProfile("ns-c", "c"),
		workloadEndpoint(w1, "ns-c", lbl("app", "c1"), "kns.ns-c", "projectcalico-default-allow"),
		workloadEndpoint(w2, "ns-c", lbl("app", "c2"), "kns.ns-c", "projectcalico-default-allow"),
		workloadEndpoint(w3, "ns-c", lbl("app", "c3"), "kns.ns-c", "projectcalico-default-allow"))

	f := startFelix(t, "ETCD_ENDPOINTS="+cl.Endpoints())
	defer func() {
		if f.running() {
			f.stop(t)
		}
	}()
	open := []probe{tcpP(w1, w2, 80, true), tcpP(w3, w2, 80, true), tcpP(w2, w1, 80, true)}
	closed := []probe{tcpP(w1, w2, 80, false), tcpP(w3, w2, 80, true), tcpP(w2, w1, 80, true)}
	deny := gnp("cluster-deny", 10, "app == 'c2'", []v3.Rule{{Action: v3.Deny, Source: sel("app == 'c1'")}, {Action: v3.Allow}}, nil)
	expect(t, f, open...)
	denying := false
	toggle := func(t *testing.T) {
		t.Helper()
		denying = !denying
		write(t, !denying, deny)
		if denying {
			expect(t, f, closed...)
		} else {
			expect(t, f, open...)
		}
	}
	now := func() []probe {
		if denying {
			return closed
		}
		return open
	}

	cl.RunFaults(t, func(t *testing.T, fault testutil.ClusterFault) {
		steady(t, time.Second, now()...)
		if !f.running() || f.get("/liveness") != 200 {
			t.Fatalf("felix not live during %s:\n%s", fault.Name, f.tail(20))
		}
		if fault.Quorum {
			toggle(t)
		}
	}, func(t *testing.T, _ testutil.ClusterFault) {
		toggle(t)
		if !f.running() {
			t.Fatalf("felix exited:\n%s", f.tail(20))
		}
	})
	reviewLogs(t)
}
