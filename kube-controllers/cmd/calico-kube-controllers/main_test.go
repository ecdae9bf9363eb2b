package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/kubeapi"
)

// build compiles this command and calicoctl into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range []string{".", "github.com/calico-etcd/calico/calicoctl/cmd/calicoctl"} {
		cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

type cluster struct {
	t       *testing.T
	bin     string
	kubectl string
	api     *kubeapi.APIServer
	etcd    *testutil.Etcd
}

func (c *cluster) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.api.Kubeconfig, "ETCD_ENDPOINTS="+c.etcd.Endpoint, "DATASTORE_TYPE=etcdv3")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// start runs a replica of the built binary; it is killed at cleanup.
func (c *cluster) start(identity string) *exec.Cmd {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, "calico-kube-controllers"))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.api.Kubeconfig, "ETCD_ENDPOINTS="+c.etcd.Endpoint,
		"POD_NAME="+identity, "HEALTH_PORT=0", "PROMETHEUS_METRICS_PORT=0", "LOG_LEVEL=info")
	log, err := os.Create(filepath.Join(c.t.TempDir(), identity+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if c.t.Failed() {
			b, _ := os.ReadFile(log.Name())
			c.t.Logf("%s log:\n%s", identity, b)
		}
	})
	return cmd
}

func (c *cluster) apply(name string) {
	c.t.Helper()
	f := filepath.Join(c.t.TempDir(), name+".yaml")
	if err := os.WriteFile(f, []byte(fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: %s, namespace: default}
spec:
  podSelector: {matchLabels: {app: %s}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{protocol: TCP, port: 80}]
`, name, name)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if out, err := c.run(c.kubectl, "apply", "-f", f); err != nil {
		c.t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// waitPolicy waits until calicoctl lists knp.default.<name>.
func (c *cluster) waitPolicy(name string, within time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := c.run(filepath.Join(c.bin, "calicoctl"), "get", "networkpolicy", "-A", "-o", "yaml")
		if err == nil && strings.Contains(out, "name: knp.default."+name) {
			return out
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("knp.default.%s not listed by calicoctl within %s: %v\n%s", name, within, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The acceptance path as an operator runs it: kubectl applies a
// NetworkPolicy, calicoctl shows knp.default.<name>. Then the leading
// replica is killed (-9, no lease release): the standby takes over once
// the lease expires and mirrors the next policy.
func TestKubectlToCalicoctlAndCrashHandOver(t *testing.T) {
	c := &cluster{t: t, bin: build(t), kubectl: kubeapi.Binary(t, "kubectl"), etcd: testutil.StartEtcd(t)}
	c.api = kubeapi.Start(t, c.etcd.Endpoint)
	first := c.start("first")
	time.Sleep(2 * time.Second) // first takes the lease
	c.start("second")
	c.apply("web")
	out := c.waitPolicy("web", 20*time.Second)
	for _, want := range []string{"namespace: default", "order: 1000", "tier: default",
		"selector: projectcalico.org/orchestrator == 'k8s' && app == 'web'"} {
		if !strings.Contains(out, want) {
			t.Errorf("calicoctl output lacks %q:\n%s", want, out)
		}
	}
	holder, _ := c.run(c.kubectl, "get", "lease", "-n", "kube-system", "calico-kube-controllers", "-o", "jsonpath={.spec.holderIdentity}")
	if holder != "first" {
		t.Fatalf("lease held by %q, want first", holder)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.apply("api")
	c.waitPolicy("api", 60*time.Second)
	holder, _ = c.run(c.kubectl, "get", "lease", "-n", "kube-system", "calico-kube-controllers", "-o", "jsonpath={.spec.holderIdentity}")
	if holder != "second" {
		t.Errorf("lease held by %q after the crash, want second", holder)
	}
}

// Bad settings stop the binary with the variable named, before anything
// starts.
func TestBadEnvironmentRefused(t *testing.T) {
	var out bytes.Buffer
	code := run(nil, func(k string) string {
		return map[string]string{"ENABLED_CONTROLLERS": "policy,nope"}[k]
	}, &out, &out)
	if code != 2 || !strings.Contains(out.String(), `ENABLED_CONTROLLERS: unknown controller "nope"`) {
		t.Errorf("exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--bogus"}, func(string) string { return "" }, &out, &out); code != 2 ||
		!strings.Contains(out.String(), `unknown argument "--bogus"`) {
		t.Errorf("exit %d: %s", code, out.String())
	}
}
