package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/testutil"
)

// target is a CLI over a second, empty etcd: where an export is imported.
func target(t *testing.T) (*cli, *testutil.Etcd) {
	t.Helper()
	srv := testutil.StartEtcd(t)
	c := newCLI(t)
	c.env["ETCD_ENDPOINTS"] = srv.Endpoint
	return c, srv
}

// dumpOf returns every key under /calico/ of an etcd and its value.
func dumpOf(t *testing.T, raw *clientv3.Client) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := raw.Get(ctx, "/calico/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// comparable is a stored value without what belongs to one datastore:
// uid, creationTimestamp (new on import, as in Calico) and, for the
// ClusterInformation, all but its GUID and lock.
func comparable(t *testing.T, key, val string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(val), &m); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "uid")
		delete(md, "creationTimestamp")
	}
	// Calico writes an empty status sometimes, this client always.
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	if strings.Contains(key, "/clusterinformations/") {
		spec := m["spec"].(map[string]any)
		m["spec"] = map[string]any{"clusterGUID": spec["clusterGUID"], "datastoreReady": spec["datastoreReady"]}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// sameDatastore checks that dst holds every resource of src (up to uid
// and creationTimestamp) and byte for byte its IPAM keys, and nothing
// else.
func sameDatastore(t *testing.T, src, dst map[string]string) {
	t.Helper()
	for k, v := range src {
		if strings.HasPrefix(k, "/calico/felix/") {
			continue
		}
		got, ok := dst[k]
		switch {
		case !ok:
			t.Errorf("missing after import: %s", k)
		case strings.HasPrefix(k, "/calico/ipam/"):
			if got != compactJSON(t, v) {
				t.Errorf("%s:\n got  %s\n want %s", k, got, v)
			}
		default:
			if a, b := comparable(t, k, got), comparable(t, k, v); a != b {
				t.Errorf("%s:\n got  %s\n want %s", k, a, b)
			}
		}
	}
	for k := range dst {
		if _, ok := src[k]; !ok {
			t.Errorf("not in the source: %s", k)
		}
	}
}

func compactJSON(t *testing.T, s string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var listRVRe = regexp.MustCompile(`(?m)^  resourceVersion: "\d+"$`)

// migrateSource is a cluster whose IPAM is consistent: every kind, pods
// with addresses (one borrowed, one IPv6), a tunnel address, strict
// affinity.
func migrateSource(t *testing.T) *ipamEnv {
	e := newIPAMEnv(t)
	e.mustRun("apply", "-f", "testdata/all-kinds.yaml")
	e.healthy()
	e.assign("10.10.3.4", "node1", "k8s-pod-network.abc123", "", map[string]string{ipam.AttributePod: "web-1", ipam.AttributeNamespace: "prod"})
	e.mustRun("ipam", "configure", "--strictaffinity=true")
	if r := e.mustRun("ipam", "check"); !strings.Contains(r.stdout, "Check complete; found 0 problems.") {
		t.Fatalf("the source is not clean:\n%s", r)
	}
	return e
}

// TestDatastoreMigrateRoundTrip moves a datastore to a fresh etcd with
// lock, export, import and unlock, as an operator would: every resource
// and every IPAM key arrive, and ipam check is clean there.
func TestDatastoreMigrateRoundTrip(t *testing.T) {
	src := migrateSource(t)
	s := &session{c: src.cli}
	if r := s.run("datastore", "migrate", "export"); r.code != 1 || !strings.Contains(r.stderr, "datastore is not locked") {
		t.Fatalf("export of an unlocked datastore:\n%s", r)
	}
	s.run("datastore", "migrate", "lock")
	export := src.mustRun("datastore", "migrate", "export").stdout
	yamlPart, _, _ := strings.Cut(export, "\n===\n")
	golden(t, "datastore-export-resources", normalize(listRVRe.ReplaceAllString(yamlPart, `  resourceVersion: "<rv>"`))+"\n")
	s.run("datastore", "migrate", "unlock")
	file := writeFile(t, "datastore.yaml", export)

	dst, srv := target(t)
	ts := &session{c: dst}
	ts.run("datastore", "migrate", "import", "-f", file)
	ts.run("get", "clusterinfo", "-o", "custom-columns=DATASTOREREADY")
	ts.run("datastore", "migrate", "unlock")
	ts.run("get", "clusterinfo", "-o", "custom-columns=DATASTOREREADY")
	golden(t, "datastore-migrate", strings.ReplaceAll(s.b.String()+ts.b.String(), file, "datastore.yaml"))

	source := dump(t)
	imported := dumpOf(t, srv.RawClient(t))
	sameDatastore(t, source, imported)
	if r := dst.mustRun("ipam", "check"); !strings.Contains(r.stdout, "Check complete; found 0 problems.") {
		t.Fatalf("ipam check after import:\n%s", r)
	}
	for _, args := range [][]string{{"get", "wep", "-A", "-o", "wide"}, {"ipam", "show", "--show-blocks"}, {"ipam", "show", "--show-configuration"}} {
		if a, b := src.mustRun(args...).stdout, dst.mustRun(args...).stdout; a != b {
			t.Errorf("%v differs:\n%s\nvs\n%s", args, a, b)
		}
	}

	// A second import finds the datastore in use and writes nothing.
	before := dumpOf(t, srv.RawClient(t))
	if r := dst.run("datastore", "migrate", "import", "-f", file); r.code != 1 ||
		!strings.Contains(r.stderr, "datastore already has Calico resources: found existing Calico ") {
		t.Fatal(r)
	}
	if !maps.Equal(before, dumpOf(t, srv.RawClient(t))) {
		t.Fatal("a refused import changed the datastore")
	}
}

// loadFixture writes the etcd state a real Calico wrote, values compact
// as Calico stores them.
func loadFixture(t *testing.T) {
	t.Helper()
	var kvs []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(testutil.Fixture(t, "calico-etcd-state.json"), &kvs); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t)
	for _, kv := range kvs {
		if _, err := raw.Put(context.Background(), kv.Key, compactJSON(t, string(kv.Value))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDatastoreMigrateCalicoState moves the state a real Calico wrote:
// every resource and IPAM key arrives, and ipam check finds there
// exactly what it finds in the source (the fixture has leaks of its own).
func TestDatastoreMigrateCalicoState(t *testing.T) {
	src := fresh(t)
	loadFixture(t)
	check := src.mustRun("ipam", "check").stdout
	src.mustRun("datastore", "migrate", "lock")
	export := src.mustRun("datastore", "migrate", "export").stdout
	dst, srv := target(t)
	r := dst.mustRun("datastore", "migrate", "import", "-f", writeFile(t, "calico.yaml", export))
	if !strings.Contains(r.stdout, "Successfully applied 29 resource(s)\n") || !strings.Contains(r.stdout, "Successfully applied 14 IPAM resource(s)\n") {
		t.Fatal(r)
	}
	sameDatastore(t, dump(t), dumpOf(t, srv.RawClient(t)))
	if got := dst.mustRun("ipam", "check").stdout; got != check {
		t.Fatalf("ipam check differs after import:\n%s\nvs the source:\n%s", got, check)
	}
}

// TestDatastoreImportCalicoExport imports the file Calico's own calicoctl
// (v3.34 development) exported from the fixture's state (its nodes given the 'k8s'
// orchestrator reference Calico's export insists on, which node1 had
// already): its empty lists of
// kinds this calicoctl lacks are skipped, and everything else arrives.
func TestDatastoreImportCalicoExport(t *testing.T) {
	dst, srv := target(t)
	r := dst.mustRun("datastore", "migrate", "import", "-f", "testdata/calico-export.txt")
	golden(t, "datastore-import-calico", r.stdout)
	got := dumpOf(t, srv.RawClient(t))
	fresh(t)
	loadFixture(t)
	want := dump(t)
	for k := range want {
		// Calico's export leaves out Profiles and WorkloadEndpoints.
		if strings.Contains(k, "/profiles/") || strings.Contains(k, "/workloadendpoints/") {
			delete(want, k)
		}
	}
	for k, v := range got {
		if strings.HasSuffix(k, "/nodes/node2") || strings.HasSuffix(k, "/nodes/node3") {
			var n map[string]any
			_ = json.Unmarshal([]byte(v), &n)
			delete(n["spec"].(map[string]any), "orchRefs")
			b, _ := json.Marshal(n)
			got[k] = string(b)
		}
	}
	// Calico's client keeps policy names in an annotation it strips on
	// read, so its export has none.
	for k, v := range want {
		if strings.Contains(k, "policies/") {
			var p map[string]any
			_ = json.Unmarshal([]byte(v), &p)
			md := p["metadata"].(map[string]any)
			if ann, ok := md["annotations"].(map[string]any); ok {
				delete(ann, "projectcalico.org/metadata")
				if len(ann) == 0 {
					delete(md, "annotations")
				}
			}
			b, _ := json.Marshal(p)
			want[k] = string(b)
		}
	}
	want["/calico/resources/v3/projectcalico.org/clusterinformations/default"] = strings.Replace(
		want["/calico/resources/v3/projectcalico.org/clusterinformations/default"], `"datastoreReady":true`, `"datastoreReady":false`, 1)
	sameDatastore(t, want, got)
}

// TestDatastoreImportErrors checks the whole file and the target before
// writing: each bad file or non-empty target exits 1, names what is
// wrong, and writes nothing.
func TestDatastoreImportErrors(t *testing.T) {
	const pool = "apiVersion: projectcalico.org/v3\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n  metadata:\n    name: p\n  spec:\n    cidr: %s\nkind: IPPoolList\nmetadata:\n  resourceVersion: \"7\"\n---\n"
	const staged = "apiVersion: projectcalico.org/v3\nitems: %s\nkind: KubeControllersConfigurationList\nmetadata:\n  resourceVersion: \"7\"\n---\n"
	const ci = "===\n{\"kind\": \"ClusterInformation\", \"apiVersion\": \"projectcalico.org/v3\", \"metadata\": {\"name\": \"default\"}, \"spec\": {\"clusterGUID\": \"0123\", \"datastoreReady\": false}}\n===\n"
	const block = `{"Key": "/calico/ipam/v2/assignment/ipv4/block/10.5.0.0-26", "Value": {"cidr": "%s", "affinity": "host:n1", "allocations": [null, null, null, null], "unallocated": [0, 1, 2, 3], "attributes": [], "deleted": false}, "TTL": 0}`
	okBlock := strings.Replace(block, "%s", "10.5.0.0/26", 1)
	okIPAM := `{"blocks": [` + okBlock + `], "config": {"Key": "/calico/ipam/v2/config", "Value": {"strict_affinity": false, "auto_allocate_blocks": true}, "TTL": 0}}` + "\n"
	good := strings.Replace(pool, "%s", "10.5.0.0/16", 1) + strings.Replace(staged, "%s", "[]", 1) + ci + okIPAM

	for _, tc := range []struct {
		name, file string
		setup      []string
		want       string
	}{
		{"no separators", strings.Replace(pool, "%s", "10.5.0.0/16", 1), nil, "is improperly formatted (it has 0 \"===\" separator lines, not 2)"},
		{"bad CIDR", strings.Replace(pool, "%s", "10.500.0.0/16", 1) + ci + okIPAM, nil, "IPPool.Spec.CIDR = '10.500.0.0/16'"},
		{"bad YAML", "kind: [\n" + ci + okIPAM, nil, "failed to import v3 resources: document 1"},
		{"read-only kind", "apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata:\n  name: default\n---\n" + ci + okIPAM, nil, "operation apply is not supported on ClusterInformation"},
		{"unsupported kind with items", strings.Replace(staged, "%s", "[{metadata: {name: x}}]", 1) + ci + okIPAM, nil, "the file holds 1 KubeControllersConfiguration resource(s)"},
		{"bad ClusterInformation", "===\n{\"kind\": \"IPPool\"}\n===\n" + okIPAM, nil, "error reading exported cluster info for migration"},
		{"unknown IPAM section", strings.Replace(good, `"blocks"`, `"blockz"`, 1), nil, `failed to read IPAM resources: json: unknown field "blockz"`},
		{"IPAM key in the wrong section", strings.Replace(good, `"blocks"`, `"handles"`, 1), nil, "handles[0]: key \"/calico/ipam/v2/assignment/ipv4/block/10.5.0.0-26\" is not the key of an IPAM handle"},
		{"block CIDR not its key's", strings.Replace(good, okBlock, strings.Replace(block, "%s", "10.5.0.64/26", 1), 1), nil, "holds the block of CIDR 10.5.0.64/26"},
		{"IPAM value that does not decode", strings.Replace(good, `"strict_affinity": false`, `"strict_affinity": "no"`, 1), nil, "config: decoding /calico/ipam/v2/config: json: cannot unmarshal string"},
		{"IPAM key twice", strings.Replace(good, okBlock, okBlock+", "+okBlock, 1), nil, "blocks[1]: key /calico/ipam/v2/assignment/ipv4/block/10.5.0.0-26 appears twice"},
		{"target not empty", good, []string{"apply", "-f", "testdata/all-kinds.yaml"}, "datastore already has Calico resources: found existing Calico "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fresh(t)
			if tc.setup != nil {
				c.mustRun(tc.setup...)
			}
			before := dump(t)
			r := c.run("datastore", "migrate", "import", "-f", writeFile(t, "in.yaml", tc.file))
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stdout, "Successfully") {
				t.Fatalf("want exit 1 and %q:\n%s", tc.want, r)
			}
			if !maps.Equal(before, dump(t)) {
				t.Fatal("a refused import changed the datastore")
			}
		})
	}

	c := fresh(t)
	if r := c.run("datastore", "migrate", "import", "-f", "/nonexistent/x.yaml"); r.code != 1 || !strings.Contains(r.stderr, "error while reading migration file: open /nonexistent/x.yaml") {
		t.Fatal(r)
	}
	c.stdin = good
	r := c.mustRun("datastore", "migrate", "import", "-f", "-")
	want := "Datastore locked.\nSuccessfully applied 1 'IPPool' resource(s)\nImporting IPAM resources\nSuccessfully applied 2 IPAM resource(s)\n" +
		"Datastore information successfully imported. Please refer to the datastore migration documentation for next steps.\n"
	if r.stdout != want {
		t.Fatalf("got:\n%s", r.stdout)
	}
	if r := c.mustRun("get", "clusterinfo", "-o", "custom-columns=CLUSTERGUID,DATASTOREREADY"); !strings.Contains(r.stdout, "0123          false") {
		t.Fatal(r)
	}
}

// TestReleaseFromReportAfterMigrateLock is why lock exists for ipam:
// release --from-report needs no --force once the datastore is locked.
func TestReleaseFromReportAfterMigrateLock(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	e.leaky()
	e.mustRun("datastore", "migrate", "lock")
	rp := filepath.Join(t.TempDir(), "r.json")
	e.mustRun("ipam", "check", "-o", rp)
	r := e.mustRun("ipam", "release", "--from-report="+rp)
	if strings.Contains(r.stdout, "WARNING") || !strings.Contains(r.stdout, "Released 2 IPs successfully") || !strings.HasSuffix(r.stdout, "You may now unlock the data store.\n") {
		t.Fatal(r)
	}
	if r := e.mustRun("datastore", "migrate", "unlock"); r.stdout != "Datastore unlocked.\n" {
		t.Fatal(r)
	}
	if r := e.run("ipam", "release", "--from-report="+rp); r.code != 1 || !strings.Contains(r.stderr, "stale") {
		t.Fatal(r)
	}
}

// TestDatastoreLockInitializes locks an empty datastore, creating its
// ClusterInformation as Calico does; unlock of a datastore that has none
// fails plainly.
func TestDatastoreLockInitializes(t *testing.T) {
	c := fresh(t)
	if r := c.run("datastore", "migrate", "unlock"); r.code != 1 || !strings.Contains(r.stderr, "error retrieving ClusterInformation for unlocking: resource does not exist") {
		t.Fatal(r)
	}
	if r := c.run("datastore", "migrate", "export"); r.code != 1 || !strings.Contains(r.stderr, "error while checking if datastore was locked") {
		t.Fatal(r)
	}
	c.mustRun("datastore", "migrate", "lock")
	c.mustRun("datastore", "migrate", "lock")
	r := c.mustRun("datastore", "migrate", "export")
	if !strings.Contains(r.stdout, "kind: TierList") || !strings.Contains(r.stdout, "\"datastoreReady\": false") || !strings.HasSuffix(r.stdout, "===\n{}\n") {
		t.Fatal(r)
	}
	if _, err := os.Stat("testdata/calico-export.txt"); err != nil {
		t.Fatal(err)
	}
}
