package commands

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/ipam"
)

// nodeThings are a node's host endpoint, BGP peer and node.<name>
// configurations.
const nodeThings = `apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: NODE-eth0
spec:
  node: NODE
  interfaceName: eth0
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-NODE
spec:
  node: NODE
  peerIP: 192.0.2.1
  asNumber: 65001
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: node.NODE
spec:
  logSeverityScreen: Debug
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: node.NODE
spec:
  logSeverityScreen: Debug
`

// populate gives node1 two pods, IPIP and VXLAN tunnel addresses and its
// other resources, and node2 a pod, an IPIP tunnel address and its other
// resources.
func (e *ipamEnv) populate() {
	e.t.Helper()
	e.assign("10.0.0.1", "node1", "net.web", "web", nil)
	e.assign("10.0.0.2", "node1", "net.db", "db", nil)
	e.assign("10.0.0.3", "node1", "ipip-tunnel-addr-node1", "", map[string]string{ipam.AttributeType: ipam.AttributeTypeIPIP})
	e.assign("10.0.0.4", "node1", "vxlan-tunnel-addr-node1", "", map[string]string{ipam.AttributeType: ipam.AttributeTypeVXLAN})
	e.assign("10.0.0.65", "node2", "net.api", "api", nil)
	e.assign("10.0.0.66", "node2", "ipip-tunnel-addr-node2", "", map[string]string{ipam.AttributeType: ipam.AttributeTypeIPIP})
	e.tunnels("node1", "192.168.0.1/24", "10.0.0.3", "10.0.0.4")
	e.tunnels("node2", "192.168.0.2/24", "10.0.0.66", "")
	for _, n := range []string{"node1", "node2"} {
		e.mustRun("apply", "-f", writeFile(e.t, n+".yaml", strings.ReplaceAll(nodeThings, "NODE", n)))
	}
}

func (e *ipamEnv) tunnels(node, addr, ipip, vxlan string) {
	e.t.Helper()
	ctx := context.Background()
	n, err := e.cl.Nodes().Get(ctx, "", node)
	if err != nil {
		e.t.Fatal(err)
	}
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: addr, IPv4IPIPTunnelAddr: ipip}
	n.Spec.IPv4VXLANTunnelAddr = vxlan
	if _, err := e.cl.Nodes().Update(ctx, n); err != nil {
		e.t.Fatal(err)
	}
}

// mentions returns the keys whose key or value mention s.
func mentions(d map[string]string, s string) []string {
	var out []string
	for k, v := range d {
		if strings.Contains(k, s) || strings.Contains(v, s) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestDeleteNodeCascades deletes a node with everything it has through
// the command, leaving the other node and a clean IPAM check, then
// deletes it again (not found) and cleans a missing node's leftovers.
func TestDeleteNodeCascades(t *testing.T) {
	e := newIPAMEnv(t)
	e.populate()
	before := dump(t)
	if r := e.mustRun("ipam", "check", "--min-leak-age=0"); !strings.Contains(r.stdout, "Check complete; found 0 problems.") {
		t.Fatal(r)
	}

	if r := e.mustRun("delete", "node", "node1"); r.stdout != "Successfully deleted 1 'Node' resource(s)\n" || r.stderr != "" {
		t.Fatal(r)
	}
	after := dump(t)
	if left := mentions(after, "node1"); len(left) > 0 {
		t.Errorf("keys of node1 left: %v", left)
	}
	for _, k := range mentions(before, "node2") {
		if after[k] != before[k] {
			t.Errorf("%s changed:\n%s\n%s", k, before[k], after[k])
		}
	}
	if r := e.mustRun("ipam", "check", "--min-leak-age=0"); !strings.Contains(r.stdout, "Check complete; found 0 problems.") ||
		!strings.Contains(r.stdout, "IPAM blocks record 2 allocations.") {
		t.Fatal(r)
	}

	// Gone: the error of any kind, and nothing printed or changed.
	r := e.run("delete", "node", "node1")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "Failed to delete 'Node' resource: resource does not exist: Node(node1)") {
		t.Fatal(r)
	}
	if !maps.Equal(after, dump(t)) {
		t.Fatal("deleting a missing node changed the datastore")
	}

	// A node that never was, with a pod and its address: cleaned, and
	// still not found.
	e.assign("10.0.1.9", "node9", "net.stray", "stray", nil)
	r = e.run("delete", "node", "node9")
	if r.code != 1 || r.stdout != "Node node9 does not exist; removed what it left behind: 1 workload endpoint(s), 1 IP address(es), 1 block affinity(ies).\n" ||
		!strings.Contains(r.stderr, "resource does not exist: Node(node9)") {
		t.Fatal(r)
	}
	if left := mentions(dump(t), "node9"); len(left) > 0 {
		t.Errorf("keys of node9 left: %v", left)
	}
	if r := e.mustRun("delete", "node", "node9", "--skip-not-exists"); r.stdout != "Successfully deleted 1 'Node' resource(s)\n" {
		t.Fatal(r)
	}
}

// TestDeleteNodeFromFile deletes a Node named in a file, with a stale
// resourceVersion (refused, nothing removed) and without.
func TestDeleteNodeFromFile(t *testing.T) {
	e := newIPAMEnv(t)
	e.populate()
	before := dump(t)
	stale := writeFile(t, "stale.yaml", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: node1\n  resourceVersion: \"2\"\n")
	if r := e.run("delete", "-f", stale); r.code != 1 || !strings.Contains(r.stderr, "update conflict") {
		t.Fatal(r)
	}
	if !maps.Equal(before, dump(t)) {
		t.Fatal("a refused delete changed the datastore")
	}
	f := writeFile(t, "nodes.yaml", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: node1\n---\n"+
		"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool2\n")
	if r := e.mustRun("delete", "-f", f); r.stdout != "Successfully deleted 2 resource(s)\n" {
		t.Fatal(r)
	}
	if left := mentions(dump(t), "node1"); len(left) > 0 {
		t.Errorf("keys of node1 left: %v", left)
	}
}

// TestIPAMCheckDeletedNode finds what a Node deleted on its own left
// behind (as an old calicoctl's delete did), removes it with
// --release-leaks and checks clean.
func TestIPAMCheckDeletedNode(t *testing.T) {
	e := newIPAMEnv(t)
	e.populate()
	if _, err := e.cl.Nodes().Delete(context.Background(), "", "node1", ""); err != nil {
		t.Fatal(err)
	}
	// Its endpoints are young: the node may be starting, so they are not
	// counted; its old tunnel addresses and affinity are.
	if r := e.mustRun("ipam", "check"); !strings.Contains(r.stdout, "Found 0 workload endpoints of nodes that do not exist.") ||
		!strings.Contains(r.stdout, "Check complete; found 3 problems.") {
		t.Fatal(r)
	}
	s := &session{c: e.cli}
	if r := s.run("ipam", "check", "--show-problem-ips", "--min-leak-age=0"); r.code != 0 || !strings.Contains(r.stdout, "Check complete; found 7 problems.") {
		t.Fatal(r)
	}
	if r := s.run("ipam", "check", "--release-leaks", "--min-leak-age=0"); r.code != 0 || !strings.Contains(r.stdout, "Fixed 7 problems.") {
		t.Fatal(r)
	}
	if r := s.run("ipam", "check", "--min-leak-age=0"); r.code != 0 || !strings.Contains(r.stdout, "Check complete; found 0 problems.") {
		t.Fatal(r)
	}
	golden(t, "ipam-check-deleted-node", s.b.String())
	if left := mentions(dump(t), "node1"); len(left) > 0 {
		t.Errorf("keys of node1 left: %v", left)
	}
	for _, ip := range []string{"10.0.0.65", "10.0.0.66"} {
		if r := e.mustRun("ipam", "show", "--ip="+ip); !strings.Contains(r.stdout, "is in use") {
			t.Errorf("%s: %s", ip, r)
		}
	}
}
