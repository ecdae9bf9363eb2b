package commands

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/client"
)

// secret is what no diagnostics bundle may contain.
const secret = "s3cret-Pa55"

const privateKey = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg" + secret + "\n-----END EC PRIVATE KEY-----\n"

// TestClusterDiags collects the cluster's resources, each node's felix
// status and the IPAM state into one bundle, with the etcd password
// redacted.
func TestClusterDiags(t *testing.T) {
	c := loaded(t)
	c.mustRun("apply", "-f", writeFile(t, "peer.yaml", `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: with-password
spec:
  peerIP: 192.0.2.9
  asNumber: 64999
  password:
    secretKeyRef:
      name: bgp-secrets
      key: peer-password
`))
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	raw := rawClient(t)
	ctx := context.Background()
	for k, v := range map[string]string{
		"/calico/felix/v2/no-region/host/node1/status":                                  `{"time":"2024-01-02T03:03:55Z","uptime":3600.5,"first_update":false}`,
		"/calico/felix/v2/no-region/host/node1/last_reported_status":                    `{"time":"2024-01-02T03:03:55Z","uptime":3600.5,"first_update":false}`,
		"/calico/felix/v2/no-region/host/node2/last_reported_status":                    `{"time":"2024-01-01T23:04:05Z","uptime":60,"first_update":true}`,
		"/calico/felix/v2/no-region/host/gone/last_reported_status":                     `{"time":"2023-12-01T00:00:00Z","uptime":5,"first_update":true}`,
		"/calico/felix/v2/no-region/host/node1/workload/k8s/prod%2fweb-1/endpoint/eth0": `{"status":"up"}`,
	} {
		if _, err := raw.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// The etcd credentials come from the environment; the test's etcd
	// has no auth, so the factory drops them.
	c.env["ETCD_USERNAME"], c.env["ETCD_PASSWORD"] = "root", secret
	c.deps.NewClient = func(cfg ClientConfig) (*client.Client, error) {
		spec, err := loadSpec(cfg)
		if err != nil {
			return nil, err
		}
		spec.EtcdUsername, spec.EtcdPassword = "", ""
		return client.NewFromSpec(spec, cfg.Timeout)
	}
	c.deps.Now = func() time.Time { return now }
	dir := t.TempDir()
	r := c.mustRun("cluster", "diags", "-o", dir+"/", "--focus-nodes", "node2")
	path := filepath.Join(dir, "calico-diagnostics-20240102_030405.tar.gz")
	golden(t, "cluster-diags", strings.ReplaceAll(r.stdout, dir, "<dir>"))
	files := untar(t, path)
	for name, body := range files {
		if strings.Contains(body, secret) {
			t.Errorf("%s holds the etcd password:\n%s", name, body)
		}
		if !strings.HasPrefix(name, "calico-diagnostics-20240102_030405/") {
			t.Errorf("%s is outside the bundle's directory", name)
		}
	}
	var names []string
	for _, n := range slices.Sorted(maps.Keys(files)) {
		names = append(names, strings.TrimPrefix(n, "calico-diagnostics-20240102_030405/"))
	}
	golden(t, "cluster-diags-files", strings.Join(names, "\n")+"\n")
	get := func(name string) string {
		t.Helper()
		body, ok := files["calico-diagnostics-20240102_030405/"+name]
		if !ok {
			t.Fatalf("no %s in the bundle", name)
		}
		return body
	}
	golden(t, "cluster-diags-summary", get("nodes/summary.txt"))
	for name, want := range map[string]string{
		"datastore.yaml":                              "etcdPassword: <redacted>",
		"version":                                     "Cluster Type:      etcd",
		"resources/bgppeers.yaml":                     "name: bgp-secrets",
		"resources/ippools.txt":                       "pool-v4",
		"resources/workloadendpoints.yaml":            "node1-k8s-web--1-eth0",
		"nodes/node1/node.yaml":                       "ipv4Address: 172.16.0.1/24",
		"nodes/node1/felix-status.json":               `"uptime": 3600.5`,
		"nodes/node2/felix-last-reported-status.json": `"first_update": true`,
		"nodes/node1/endpoint-status.json":            `"status": "up"`,
		"ipam/check.txt":                              "Check complete; found",
		"ipam/show-blocks.txt":                        "10.10.0.0/16",
		"README":                                      "calicoctl node diags",
	} {
		if body := get(name); !strings.Contains(body, want) {
			t.Errorf("%s lacks %q:\n%s", name, want, body)
		}
	}

	// Without -o the bundle lands in the current directory, as in Calico.
	wd, _ := os.Getwd()
	if err := os.Chdir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chdir(wd) }()
	r = c.mustRun("cluster", "diags")
	if !strings.HasSuffix(r.stdout, "Diagnostic bundle created at ./calico-diagnostics-20240102_030405.tar.gz\n") {
		t.Fatal(r)
	}
	if _, err := os.Stat("calico-diagnostics-20240102_030405.tar.gz"); err != nil {
		t.Fatal(err)
	}
	// An existing bundle is not overwritten; nothing is left half-written.
	if r := c.run("cluster", "diags"); r.code != 1 || !strings.Contains(r.stderr, "file exists") {
		t.Fatal(r)
	}
}

// TestClusterDiagsEtcdDown leaves no bundle behind.
func TestClusterDiagsEtcdDown(t *testing.T) {
	c := offline(t)
	dir := t.TempDir()
	r := c.run("cluster", "diags", "-o", dir, "--timeout", "300ms")
	if r.code != 1 || !strings.Contains(r.stderr, "datastore unavailable") {
		t.Fatal(r)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %v", entries)
	}
}

// TestNodeDiagsRedacts keeps secrets in logs out of node diags, as
// cluster diags does.
func TestNodeDiagsRedacts(t *testing.T) {
	logDir, out := t.TempDir(), t.TempDir()
	log := "ETCD_PASSWORD=" + secret + "\n" + `{"level":"info","etcdPassword":"` + secret + `"}` + "\n" + privateKey +
		"time=x msg=\"starting\" args=\"calico-felix --etcd-password " + secret + "\"\n"
	if err := os.WriteFile(filepath.Join(logDir, "felix.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	c.deps.Now = func() time.Time { return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) }
	c.deps.Runner = scriptedRunner{"hostname": "node1\n"}
	c.mustRun("node", "diags", "--run-dir", t.TempDir(), "--log-dir", logDir, "--output", out, "--timeout", "300ms")
	files := untar(t, filepath.Join(out, "diags-20240102_030405.tar.gz"))
	got := files["diagnostics/logs/felix.log"]
	if strings.Contains(got, secret) || !strings.Contains(got, "ETCD_PASSWORD=<redacted>") || !strings.Contains(got, "-----BEGIN EC PRIVATE KEY-----\n<redacted>") {
		t.Fatalf("felix.log:\n%s", got)
	}
}
