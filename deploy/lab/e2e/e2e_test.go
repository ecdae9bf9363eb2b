// Package e2e runs the whole suite in the lab: 3 hosts (network
// namespaces) with the real felix, confd and bgpd, pods networked by the
// real CNI plugins through libcni, and checks what an operator would.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/testutil"
)

var binDir string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: the lab needs root")
		os.Exit(1)
	}
	root, _ := filepath.Abs("../../..")
	out, err := exec.Command("make", "-C", root, "build").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "make build: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = filepath.Join(root, "bin")
	os.Exit(m.Run())
}

type labT struct {
	*lab.Lab
	t *testing.T
	c *client.Client
}

func startLab(t *testing.T, hosts int) *labT {
	t.Helper()
	name := testutil.UniqueName("e2e")
	l, err := lab.Up(context.Background(), lab.Options{Name: name, Dir: filepath.Join(t.TempDir(), "lab"), BinDir: binDir, Hosts: hosts, Out: testWriter{t}})
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
	t.Cleanup(func() { c.Close() })
	return &labT{Lab: l, t: t, c: c}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func dumpLogs(t *testing.T, l *lab.Lab) {
	logs, _ := filepath.Glob(filepath.Join(l.State.Dir, "*", "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		t.Logf("--- %s\n%s", f, strings.Join(lines, "\n"))
	}
}

func (l *labT) apply(r v3.Resource) {
	l.t.Helper()
	if _, err := l.c.Apply(context.Background(), r); err != nil {
		l.t.Fatalf("apply %s: %v", r.GetObjectMeta().Name, err)
	}
}

// expectMatrix waits until the ping matrix equals want(src, dst).
func (l *labT) expectMatrix(what string, want func(src, dst string) bool) {
	l.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var bad []string
	for time.Now().Before(deadline) {
		res, _ := l.Matrix(context.Background(), 1)
		bad = bad[:0]
		for k, ok := range res {
			if ok != want(k[0], k[1]) {
				bad = append(bad, fmt.Sprintf("%s -> %s: got %v", k[0], k[1], ok))
			}
		}
		if len(res) > 0 && len(bad) == 0 {
			return
		}
		time.Sleep(time.Second)
	}
	l.t.Fatalf("%s: matrix never matched; last mismatches:\n%s", what, strings.Join(bad, "\n"))
}

func ns(label string) string { return strings.SplitN(label, "/", 2)[0] }

func allowAll(string, string) bool { return true }

func noFrontendToBackend(src, dst string) bool {
	return !(ns(src) == "frontend" && ns(dst) == "backend")
}

func TestLabEndToEnd(t *testing.T) {
	l := startLab(t, 3)
	ctx := context.Background()
	pool := v3.NewIPPool()
	pool.Name = "e2e-pool"
	pool.Spec.CIDR = "10.66.0.0/16"
	allow := v3.NewGlobalNetworkPolicy()
	allow.Name = "allow-all"
	o := 1000.0
	allow.Spec.Order = &o
	allow.Spec.Selector = "all()"
	allow.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	allow.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	l.apply(pool)
	l.apply(allow)
	for _, h := range l.State.Hosts {
		for _, n := range []string{"frontend", "backend"} {
			if _, err := l.AddPod(ctx, h.Name, n, n+"-"+h.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.expectMatrix("all allowed, across hosts over BGP routes", allowAll)
	for _, h := range l.State.Hosts {
		out, err := exec.Command("ip", "-n", h.NetNS, "route", "show", "proto", "bird").CombinedOutput()
		if err != nil || strings.Count(string(out), "via") != len(l.State.Hosts)-1 {
			t.Errorf("%s BGP routes = %q (%v), want one per other host", h.Name, out, err)
		}
	}

	deny := v3.NewGlobalNetworkPolicy()
	deny.Name = "deny-frontend-to-backend"
	first := 10.0
	deny.Spec.Order = &first
	deny.Spec.Selector = "projectcalico.org/namespace == 'backend'"
	deny.Spec.Ingress = []v3.Rule{{Action: v3.Deny, Source: v3.EntityRule{Selector: "projectcalico.org/namespace == 'frontend'"}}}
	l.apply(deny)
	l.expectMatrix("deny policy enforced", noFrontendToBackend)

	t.Run("felix restart keeps the dataplane", func(t *testing.T) {
		if err := l.RestartDaemon("host1", "calico-felix"); err != nil {
			t.Fatal(err)
		}
		l.expectMatrix("after felix restart", noFrontendToBackend)
	})
	t.Run("etcd outage keeps the dataplane, then resyncs", func(t *testing.T) {
		if err := l.RestartEtcd(3 * time.Second); err != nil {
			t.Fatal(err)
		}
		l.expectMatrix("after etcd restart", noFrontendToBackend)
		if _, err := l.c.Delete(ctx, v3.KindGlobalNetworkPolicy, "", deny.Name, ""); err != nil {
			t.Fatal(err)
		}
		l.expectMatrix("policy removal after the outage", allowAll)
	})
	t.Run("pod churn leaves IPAM clean", func(t *testing.T) {
		for i := 0; i < 100; i++ {
			host := l.State.Hosts[i%len(l.State.Hosts)].Name
			name := fmt.Sprintf("churn-%d", i)
			if _, err := l.AddPod(ctx, host, "churn", name); err != nil {
				t.Fatalf("add %s: %v", name, err)
			}
			if err := l.DelPod(ctx, host, "churn", name); err != nil {
				t.Fatalf("del %s: %v", name, err)
			}
		}
		im, err := ipam.New(l.c.Backend(), logrus.NewEntry(logrus.New()), ipam.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ipamcheck.Check(ctx, im, ipamcheck.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("ipam check after churn: %+v", rep)
		}
	})
}

// TestDownAfterCrash kills the `up` process outright; down must still
// remove every namespace and daemon it made.
func TestDownAfterCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	name := testutil.UniqueName("crash")
	up := exec.Command(filepath.Join(binDir, "calico-lab"), "up", "--hosts", "2", "--state-dir", dir, "--name", name, "--bin-dir", binDir)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := lab.LoadState(dir)
		if err == nil && len(s.Hosts) == 2 && len(s.Hosts[1].PIDs) == 4 {
			break
		}
		if time.Now().After(deadline) {
			up.Process.Kill()
			up.Wait()
			// What it did start goes, or its daemons outlive the test.
			out, _ := exec.Command(filepath.Join(binDir, "calico-lab"), "down", "--state-dir", dir).CombinedOutput()
			t.Fatalf("lab did not come up; down said:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s, _ := lab.LoadState(dir)
	up.Process.Signal(syscall.SIGKILL)
	up.Wait()
	out, err := exec.Command(filepath.Join(binDir, "calico-lab"), "down", "--state-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	nsList, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(nsList), name) {
		t.Fatalf("namespaces left after down:\n%s", nsList)
	}
	for _, h := range s.Hosts {
		for d, pid := range h.PIDs {
			if syscall.Kill(pid, 0) == nil {
				t.Errorf("%s on %s (pid %d) still running", d, h.Name, pid)
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
}
