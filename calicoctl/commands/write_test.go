package commands

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
)

func gnsYAML(name, net string) string {
	return "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: " + name + "\nspec:\n  nets: [" + net + "]\n"
}

func TestWriteLifecycle(t *testing.T) {
	c := fresh(t)
	two := writeFile(t, "two.yaml", poolYAML("a", "10.1.0.0/16")+"---\n"+poolYAML("b", "10.2.0.0/16"))
	if r := c.mustRun("create", "-f", two); r.stdout != "Successfully created 2 'IPPool' resource(s)\n" {
		t.Fatal(r)
	}
	if r := c.mustRun("create", "-f", two, "--skip-exists"); r.stdout != "Successfully created 2 'IPPool' resource(s)\n" {
		t.Fatal(r)
	}
	changed := writeFile(t, "changed.yaml", poolYAML("a", "10.1.0.0/16")+"  natOutgoing: true\n")
	if r := c.mustRun("apply", "-f", changed); r.stdout != "Successfully applied 1 'IPPool' resource(s)\n" {
		t.Fatal(r)
	}
	if r := c.mustRun("get", "pool", "a", "-o", "custom-columns=NAT"); !strings.Contains(r.stdout, "true") {
		t.Fatal(r)
	}
	// replace with the resourceVersion just read succeeds.
	out := c.mustRun("get", "pool", "a", "-o", "yaml").stdout
	out = strings.Replace(out, "natOutgoing: true", "natOutgoing: false", 1)
	if r := c.mustRun("replace", "-f", writeFile(t, "r.yaml", out)); r.stdout != "Successfully replaced 1 'IPPool' resource(s)\n" {
		t.Fatal(r)
	}
	// ... and the same file again is stale.
	if r := c.run("replace", "-f", writeFile(t, "r.yaml", out)); r.code != 1 || !strings.Contains(r.stderr, "out of date") {
		t.Fatal(r)
	}
	mixed := writeFile(t, "mixed.yaml", gnsYAML("g1", "1.1.1.0/24")+"---\n"+poolYAML("c", "10.3.0.0/16"))
	if r := c.mustRun("apply", "-f", mixed); r.stdout != "Successfully applied 2 resource(s)\n" {
		t.Fatal(r)
	}
	if r := c.mustRun("delete", "-f", mixed); r.stdout != "Successfully deleted 2 resource(s)\n" {
		t.Fatal(r)
	}
	if r := c.run("delete", "pools", "a", "nope", "b"); r.code != 1 ||
		r.stdout != "Successfully deleted 2 'IPPool' resource(s)\n" ||
		!strings.Contains(r.stderr, "Failed to delete 'IPPool' resource: resource does not exist: IPPool(nope)") {
		t.Fatal(r)
	}
	if r := c.mustRun("delete", "pools", "a", "--skip-not-exists"); r.stdout != "Successfully deleted 1 'IPPool' resource(s)\n" {
		t.Fatal(r)
	}
}

func TestStdinDirectoryAndNamespaces(t *testing.T) {
	c := fresh(t)
	c.stdin = gnsYAML("from-stdin", "1.1.1.0/24")
	c.mustRun("apply", "-f", "-")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(gnsYAML("dir-a", "2.2.2.0/24")), 0o644)
	os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkSet","metadata":{"name":"dir-b"}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "ignored.txt"), []byte("junk"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "c.yaml"), []byte(gnsYAML("dir-c", "3.3.3.0/24")), 0o644)
	if r := c.mustRun("apply", "-f", dir); r.stdout != "Successfully applied 2 'GlobalNetworkSet' resource(s)\n" {
		t.Fatal(r)
	}
	if r := c.mustRun("apply", "-f", dir, "-R"); r.stdout != "Successfully applied 3 'GlobalNetworkSet' resource(s)\n" {
		t.Fatal(r)
	}
	ns := "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata:\n  name: n1\nspec:\n  nets: [10.0.0.0/8]\n"
	c.mustRun("apply", "-f", writeFile(t, "ns.yaml", ns), "-n", "team-a")
	c.mustRun("apply", "-f", writeFile(t, "ns.yaml", ns))
	keys := dump(t)
	for _, k := range []string{"/calico/resources/v3/projectcalico.org/networksets/team-a/n1", "/calico/resources/v3/projectcalico.org/networksets/default/n1"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("missing %s", k)
		}
	}
	if r := c.mustRun("get", "netsets", "-A", "-o", "custom-columns=NAMESPACE,NAME"); !strings.Contains(r.stdout, "team-a") || !strings.Contains(r.stdout, "default") {
		t.Fatal(r)
	}
	if r := c.mustRun("get", "netsets", "-n", "team-a", "-o", "custom-columns=NAMESPACE,NAME"); strings.Contains(r.stdout, "default") {
		t.Fatal(r)
	}
	if r := c.run("apply", "-f", writeFile(t, "ns2.yaml", strings.Replace(ns, "name: n1", "name: n1\n  namespace: x", 1)), "-n", "y"); r.code != 1 ||
		!strings.Contains(r.stderr, "resource namespace does not match client namespace. x != y") {
		t.Fatal(r)
	}
}

// TestExportedManifestReapplies accepts a manifest exported from another
// cluster: its uid and timestamps are dropped, as Calico's calicoctl does.
func TestExportedManifestReapplies(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "g.yaml", gnsYAML("g", "1.1.1.0/24")))
	foreign := "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: g\n  uid: 11111111-2222-4333-8444-555555555555\n  creationTimestamp: \"2020-01-01T00:00:00Z\"\nspec:\n  nets: [9.9.9.0/24]\n"
	c.mustRun("apply", "-f", writeFile(t, "f.yaml", foreign))
	if r := c.mustRun("get", "gnetset", "g", "-o", "yaml"); strings.Contains(r.stdout, "11111111") || strings.Contains(r.stdout, "2020") || !strings.Contains(r.stdout, "9.9.9.0/24") {
		t.Fatal(r)
	}
}

func TestPoolCIDRChangeRejectedUpFront(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "p.yaml", poolYAML("p", "10.1.0.0/16")))
	before := dump(t)
	r := c.run("apply", "-f", writeFile(t, "q.yaml", gnsYAML("new", "1.1.1.0/24")+"---\n"+poolYAML("p", "10.9.0.0/16")))
	if r.code != 1 || !strings.Contains(r.stderr, "IPPool.Spec.CIDR = '10.9.0.0/16' (IPPool CIDR cannot be modified)") {
		t.Fatal(r)
	}
	if !maps.Equal(before, dump(t)) {
		t.Fatal("nothing may be written")
	}
}

// failingBackend fails every write of one key.
type failingBackend struct {
	backend.Client
	failKey string
	calls   atomic.Int32
}

func (f *failingBackend) fail(k model.Key) error {
	f.calls.Add(1)
	if p, _ := k.Path(); strings.HasSuffix(p, "/"+f.failKey) {
		time.Sleep(100 * time.Millisecond) // let concurrent writes start first
		return &cerrors.Unavailable{Endpoints: []string{"http://injected"}, Err: context.DeadlineExceeded}
	}
	return nil
}

func (f *failingBackend) Create(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	if err := f.fail(kv.Key); err != nil {
		return nil, err
	}
	return f.Client.Create(ctx, kv)
}

func (f *failingBackend) Update(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	if err := f.fail(kv.Key); err != nil {
		return nil, err
	}
	return f.Client.Update(ctx, kv)
}

func failingFactory(failKey string) ClientFactory {
	return func(cfg ClientConfig) (*client.Client, error) {
		spec, err := apiconfig.FromEnv(cfg.Getenv)
		if err != nil {
			return nil, err
		}
		be, err := etcd.New(spec.EtcdConfig(cfg.Timeout))
		if err != nil {
			return nil, err
		}
		return client.New(&failingBackend{Client: be, failKey: failKey}), nil
	}
}

// TestPartialFailureReportsWhatWasWritten loses the datastore part-way.
func TestPartialFailureReportsWhatWasWritten(t *testing.T) {
	three := gnsYAML("a", "1.1.1.0/24") + "---\n" + gnsYAML("b", "2.2.2.0/24") + "---\n" + gnsYAML("c", "3.3.3.0/24")
	for _, tc := range []struct {
		name, fail, inflight string
		wantOut              string
		stored               map[string]bool
	}{
		{"last fails, serial", "c", "1",
			"Partial success: applied the first 2 out of 3 'GlobalNetworkSet' resources:\n  GlobalNetworkSet(a)\n  GlobalNetworkSet(b)\n",
			map[string]bool{"a": true, "b": true, "c": false}},
		{"last fails, concurrent", "c", "8",
			"Partial success: applied the first 2 out of 3 'GlobalNetworkSet' resources:\n  GlobalNetworkSet(a)\n  GlobalNetworkSet(b)\n",
			map[string]bool{"a": true, "b": true, "c": false}},
		{"middle fails, serial", "b", "1",
			"Partial success: applied the first 1 out of 3 'GlobalNetworkSet' resources:\n  GlobalNetworkSet(a)\n",
			map[string]bool{"a": true, "b": false, "c": false}},
		{"middle fails, concurrent", "b", "8",
			"Partial success: applied 2 out of 3 'GlobalNetworkSet' resources:\n  GlobalNetworkSet(a)\n  GlobalNetworkSet(c)\n",
			map[string]bool{"a": true, "b": false, "c": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fresh(t)
			c.deps.NewClient = failingFactory(tc.fail)
			r := c.run("apply", "-f", writeFile(t, "three.yaml", three), "--max-inflight", tc.inflight)
			if r.code != 1 || r.stdout != tc.wantOut ||
				!strings.HasPrefix(r.stderr, "Hit error(s): [GlobalNetworkSet("+tc.fail+"): datastore unavailable (etcd endpoints http://injected)") {
				t.Fatalf("%s\nwant stdout:\n%s", r, tc.wantOut)
			}
			keys := dump(t)
			for name, want := range tc.stored {
				if _, ok := keys["/calico/resources/v3/projectcalico.org/globalnetworksets/"+name]; ok != want {
					t.Errorf("%s stored = %v, want %v", name, ok, want)
				}
			}
		})
	}
}

// TestConcurrentWritesKeepOrder writes a tier before its policies and the
// last of two copies of a resource last, whatever the concurrency.
func TestConcurrentWritesKeepOrder(t *testing.T) {
	c := fresh(t)
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "%s---\n", gnsYAML(fmt.Sprintf("g%d", i), "1.1.1.0/24"))
	}
	b.WriteString("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: t1\nspec:\n  order: 10\n---\n")
	for i := range 20 {
		fmt.Fprintf(&b, "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: t1.p%d\nspec:\n  tier: t1\n---\n", i)
	}
	b.WriteString(gnsYAML("g3", "9.9.9.0/24"))
	if r := c.mustRun("apply", "-f", writeFile(t, "ordered.yaml", b.String())); r.stdout != "Successfully applied 42 resource(s)\n" {
		t.Fatal(r)
	}
	if v := dump(t)["/calico/resources/v3/projectcalico.org/globalnetworksets/g3"]; !strings.Contains(v, "9.9.9.0/24") {
		t.Fatalf("the later copy of g3 must win: %s", v)
	}
}
