package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/testutil"
)

// TestLabEtcdCluster: `calico-lab up --etcd-members 3` (the members are
// calico-lab processes running etcd's main) with two hosts. Pods added
// while the cluster has a member killed, stopped or cut off get their
// addresses and reach every other pod; the dataplane stays while the
// cluster has no quorum; and every host's daemons run on.
func TestLabEtcdCluster(t *testing.T) {
	name := testutil.UniqueName("e2ec")
	l, err := lab.Up(context.Background(), lab.Options{Name: name, Dir: filepath.Join(t.TempDir(), "lab"), BinDir: binDir,
		Hosts: 2, Out: testWriter{t}, EtcdMembers: 3, EtcdCommand: []string{filepath.Join(binDir, "calico-lab"), lab.EtcdMemberArg}})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, l)
		}
		l.Shutdown()
	})
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lt := &labT{Lab: l, t: t, c: c}
	allow := v3.NewGlobalNetworkPolicy()
	allow.Name = "allow-all"
	allow.Spec.Selector = "all()"
	allow.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	allow.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	lt.apply(allow)
	ctx := context.Background()
	n := 0
	addPod := func(t *testing.T) {
		t.Helper()
		host := l.State.Hosts[n%len(l.State.Hosts)].Name
		n++
		if _, err := l.AddPod(ctx, host, "ns", fmt.Sprintf("pod-%d", n)); err != nil {
			t.Fatalf("pod add on %s: %v", host, err)
		}
	}
	addPod(t)
	addPod(t)
	lt.expectMatrix("pods on both hosts", allowAll)
	l.EtcdCluster().RunFaults(t, func(t *testing.T, f testutil.ClusterFault) {
		lt.t = t
		if f.Quorum {
			addPod(t)
		}
		lt.expectMatrix("during "+f.Name, allowAll)
	}, nil)
	lt.t = t
	lt.expectMatrix("after the faults", allowAll)
	for _, h := range l.State.Hosts {
		for d, pid := range h.PIDs {
			if pid == 0 {
				t.Errorf("%s: %s not running", h.Name, d)
			}
		}
	}
}
