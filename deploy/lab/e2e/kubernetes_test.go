package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/kubeapi"
	"github.com/sirupsen/logrus"
)

// The Kubernetes lab as an operator runs it (calico-lab up --kubernetes
// --demo): pods made with kubectl on two hosts, through the real kubelet,
// containerd and our CNI, reach each other; a NetworkPolicy denies them;
// deleting it restores traffic. Afterwards ipam check is clean.
func TestKubernetesLabDemo(t *testing.T) {
	kubeBin, err := kubeapi.BinDir()
	if err != nil {
		t.Skipf("SKIPPED: no Kubernetes programs: %v", err)
	}
	name := testutil.UniqueName("k8s")
	l, err := lab.Up(context.Background(), lab.Options{Name: name, Dir: filepath.Join(t.TempDir(), "lab"), BinDir: binDir,
		Hosts: 2, Out: testWriter{t}, Kubernetes: true, KubeBin: kubeBin})
	if err != nil {
		t.Fatalf("lab up --kubernetes: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, l)
		}
		l.Shutdown()
	})
	ctx := context.Background()
	if err := l.KubeDemo(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := l.Kubectl(ctx, "get", "nodes", "-o", "name")
	if err != nil || !strings.Contains(out, "node/host1") || !strings.Contains(out, "node/host2") {
		t.Errorf("kubectl get nodes: %q %v", out, err)
	}
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lg := logrus.New()
	lg.SetOutput(testWriter{t})
	ic, err := ipam.New(c.Backend(), logrus.NewEntry(lg), ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := ipamcheck.Check(ctx, ic, ipamcheck.Options{}); err != nil || !rep.OK() {
		t.Errorf("ipam check after the demo: %+v %v", rep, err)
	}
}
