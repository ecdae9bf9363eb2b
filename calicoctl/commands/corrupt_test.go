package commands

import (
	"context"
	"strings"
	"testing"
	"time"
)

// putRaw writes value at key with the raw etcd client, as a stray
// etcdctl put or a truncated write would leave it.
func putRaw(t *testing.T, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rawClient(t).Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
}

const garbage = "{not json"

// One IPPool whose value does not decode: lists skip it with a warning
// naming the key and the decode error and exit 0, as Calico's calicoctl
// (which skips it silently); reading it by name fails; writes of other
// pools go on; and deleting it by name removes it.
// issue 23 item 7
func TestCorruptValueSkippedByListAndDeletedByName(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "pools.yaml", ipamPools))
	const badKey = "/calico/resources/v3/projectcalico.org/ippools/bad"
	putRaw(t, badKey, garbage)
	warning := func(r result) bool {
		return strings.Contains(r.stderr, "Warning: skipping a stored value that does not decode: decoding "+badKey+": decoding IPPool: ") &&
			strings.Contains(r.stderr, "'calicoctl delete ippool bad' removes it")
	}

	for _, out := range []string{"ps", "wide", "yaml", "json"} {
		r := c.run("get", "ippools", "-o", out)
		if r.code != 0 || !strings.Contains(r.stdout, "pool1") || !strings.Contains(r.stdout, "pool6") || !warning(r) {
			t.Errorf("get ippools -o %s: want the good pools, a warning and exit 0:\n%s", out, r)
		}
		if strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("get ippools -o %s: want one warning line:\n%s", out, r)
		}
	}
	if r := c.run("get", "ippool", "bad"); r.code != 1 || !strings.Contains(r.stderr, "decoding "+badKey+": decoding IPPool: ") {
		t.Errorf("get ippool bad: want exit 1 naming the key and the decode error:\n%s", r)
	}
	if r := c.run("get", "ippool", "pool1"); r.code != 0 || r.stderr != "" {
		t.Errorf("get of a good pool:\n%s", r)
	}
	// The overlap check lists the pools: it goes on without the bad one.
	r := c.run("create", "-f", writeFile(t, "p.yaml", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool3\nspec:\n  cidr: 10.0.2.0/24\n"))
	if r.code != 0 || !warning(r) {
		t.Errorf("create beside a corrupt pool:\n%s", r)
	}

	if r := c.run("delete", "ippool", "bad"); r.code != 0 || !strings.Contains(r.stdout, "Successfully deleted 1 'IPPool' resource(s)") {
		t.Fatalf("delete ippool bad:\n%s", r)
	}
	if _, ok := dump(t)[badKey]; ok {
		t.Fatal("the corrupt value is still stored after delete")
	}
	if r := c.mustRun("get", "ippools"); r.stderr != "" || !strings.Contains(r.stdout, "pool3") {
		t.Errorf("get after the delete:\n%s", r)
	}
}

// A namespaced resource and a Node whose values do not decode are
// deleted by name too (a Node with its cascade), from a file as well.
// issue 23 item 7
func TestCorruptNamespacedAndNodeDeletedByName(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "pools.yaml", ipamPools))
	const wepKey = "/calico/resources/v3/projectcalico.org/workloadendpoints/ns/node1-k8s-pod-eth0"
	const nodeKey = "/calico/resources/v3/projectcalico.org/nodes/node2"
	putRaw(t, wepKey, garbage)
	putRaw(t, nodeKey, `{"kind":"Node","spec":{"bgp":7}}`)

	r := c.run("get", "workloadendpoints", "-A")
	if r.code != 0 || !strings.Contains(r.stderr, wepKey) || !strings.Contains(r.stderr, "-n ns' removes it") {
		t.Errorf("get weps -A:\n%s", r)
	}
	if r := c.run("get", "nodes"); r.code != 0 || !strings.Contains(r.stdout, "node1") || !strings.Contains(r.stderr, nodeKey) {
		t.Errorf("get nodes:\n%s", r)
	}
	// The Node's cascade lists the endpoints: one that does not decode
	// may be the node's, so the delete stops and names it.
	if r := c.run("delete", "node", "node2"); r.code != 1 || !strings.Contains(r.stderr, wepKey) {
		t.Errorf("delete node beside a corrupt endpoint: want exit 1 naming it:\n%s", r)
	}
	f := writeFile(t, "wep.yaml", "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: node1-k8s-pod-eth0\n  namespace: ns\n")
	if r := c.run("delete", "-f", f); r.code != 0 {
		t.Fatalf("delete -f of a corrupt endpoint:\n%s", r)
	}
	if r := c.run("delete", "node", "node2"); r.code != 0 || !strings.Contains(r.stdout, "Successfully deleted 1 'Node' resource(s)") {
		t.Fatalf("delete of a corrupt node:\n%s", r)
	}
	for k := range dump(t) {
		if k == wepKey || k == nodeKey {
			t.Errorf("%s survived its delete", k)
		}
	}
}

// A block, a handle and a workload endpoint that do not decode: ipam show
// skips them with a warning (exit 0); ipam check counts them as problems,
// still exits 0, and --release-leaks refuses to repair (exit 1) rather
// than free the addresses the lost endpoint may use.
// issue 23 item 7
func TestCorruptIPAMValuesSkippedByShowAndCheck(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	const blockKey = "/calico/ipam/v2/assignment/ipv4/block/10.0.1.0-26"
	const handleKey = "/calico/ipam/v2/handle/net.db"
	const wepKey = "/calico/resources/v3/projectcalico.org/workloadendpoints/ns/node1-k8s-web-eth0"
	putRaw(t, blockKey, garbage)
	putRaw(t, handleKey, "[]")
	putRaw(t, wepKey, garbage)

	for _, args := range [][]string{{"ipam", "show"}, {"ipam", "show", "--show-blocks"}, {"ipam", "show", "--show-borrowed"}} {
		r := e.run(args...)
		if r.code != 0 || !strings.Contains(r.stderr, "decoding "+blockKey+": invalid character") || !strings.Contains(r.stdout, "10.0.0.") {
			t.Errorf("%v: want the usage of the rest, a warning for the block and exit 0:\n%s", args, r)
		}
	}
	r := e.run("ipam", "check", "--show-problem-ips")
	if r.code != 0 {
		t.Fatalf("ipam check:\n%s", r)
	}
	for _, key := range []string{blockKey, handleKey, wepKey} {
		if strings.Count(r.stderr, "decoding "+key+": ") != 1 {
			t.Errorf("ipam check: want one warning for %s:\n%s", key, r)
		}
		if !strings.Contains(r.stdout, "  "+key+": ") {
			t.Errorf("ipam check: report does not list %s:\n%s", key, r)
		}
	}
	if !strings.Contains(r.stdout, "Found 3 stored values that do not decode") {
		t.Errorf("ipam check: want the count of values that do not decode:\n%s", r)
	}
	// The lost endpoint's 10.0.0.1 looks leaked; its handle is not
	// reported missing (it exists, unreadable).
	if !strings.Contains(r.stdout, "  10.0.0.1 leaked") || strings.Contains(r.stdout, "net.db is in use in a block but doesn't exist") {
		t.Errorf("ipam check:\n%s", r)
	}
	before := dump(t)
	r = e.run("ipam", "check", "--release-leaks")
	if r.code != 1 || !strings.Contains(r.stderr, "Not repairing anything: 3 stored values do not decode") {
		t.Errorf("ipam check --release-leaks: want a refusal and exit 1:\n%s", r)
	}
	after := dump(t)
	if len(after) != len(before) {
		t.Errorf("--release-leaks changed the datastore: %d keys before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("--release-leaks changed %s", k)
		}
	}
	if r := e.run("ipam", "show", "--ip=10.0.0.1"); r.code != 0 || !strings.Contains(r.stdout, "is in use") {
		t.Errorf("10.0.0.1 should still be allocated:\n%s", r)
	}
}
