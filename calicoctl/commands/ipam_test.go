package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/model"
)

// ipamEnv is a CLI plus direct clients over the same etcd, to set up
// allocations as the CNI plugin would.
type ipamEnv struct {
	*cli
	t    *testing.T
	cl   *client.Client
	ipam *ipam.Client
}

const ipamPools = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool1
spec:
  cidr: 10.0.0.0/24
  blockSize: 26
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool2
spec:
  cidr: 10.0.1.0/24
  blockSize: 26
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool6
spec:
  cidr: fd00:1::/120
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node1
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node2
`

// newIPAMEnv loads three pools and two nodes into an empty datastore.
func newIPAMEnv(t *testing.T) *ipamEnv {
	t.Helper()
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "ipam.yaml", ipamPools))
	cl, err := DefaultClientFactory(ClientConfig{Timeout: 10 * time.Second, Getenv: func(k string) string { return c.env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	ic, err := ipam.New(cl.Backend(), nil, ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &ipamEnv{cli: c, t: t, cl: cl, ipam: ic}
}

// assign assigns ip to host as the CNI plugin does, with a workload
// endpoint pod/ns using it unless pod is "".
func (e *ipamEnv) assign(ip, host, handle, pod string, attrs map[string]string) {
	e.t.Helper()
	a := map[string]string{ipam.AttributeNode: host}
	if pod != "" {
		a[ipam.AttributePod], a[ipam.AttributeNamespace] = pod, "ns"
	}
	for k, v := range attrs {
		a[k] = v
	}
	addr := netip.MustParseAddr(ip)
	if err := e.ipam.AssignIP(context.Background(), ipam.AssignIPArgs{IP: addr, HandleID: handle, Hostname: host, Attrs: a}); err != nil {
		e.t.Fatalf("assigning %s: %v", ip, err)
	}
	if pod != "" {
		e.wep(host, pod, addr)
	}
}

func (e *ipamEnv) wep(host, pod string, addr netip.Addr) {
	e.t.Helper()
	w := v3.NewWorkloadEndpoint()
	w.Namespace, w.Name = "ns", host+"-k8s-"+pod+"-eth0"
	w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: host, Pod: pod, Endpoint: "eth0", ContainerID: "c-" + pod,
		InterfaceName: ("cali" + pod + "0123456789")[:15], IPNetworks: []string{netip.PrefixFrom(addr, addr.BitLen()).String()}}
	if _, err := e.cl.WorkloadEndpoints().Create(context.Background(), w); err != nil {
		e.t.Fatal(err)
	}
}

// healthy sets up a consistent cluster: two pods of node1 (one in
// IPv6), a pod of node2 borrowing from node1's block, and node2's tunnel
// address in a block of its own.
func (e *ipamEnv) healthy() {
	e.t.Helper()
	e.assign("10.0.0.1", "node1", "net.web", "web", nil)
	e.assign("fd00:1::5", "node1", "net.web6", "web6", nil)
	e.assign("10.0.0.2", "node2", "net.db", "db", nil)
	e.assign("10.0.0.70", "node2", "ipip-tunnel-addr-node2", "", map[string]string{ipam.AttributeType: ipam.AttributeTypeIPIP})
	ctx := context.Background()
	n, err := e.cl.Nodes().Get(ctx, "", "node2")
	if err != nil {
		e.t.Fatal(err)
	}
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "192.168.0.2/24", IPv4IPIPTunnelAddr: "10.0.0.70"}
	if _, err := e.cl.Nodes().Update(ctx, n); err != nil {
		e.t.Fatal(err)
	}
}

// leaky adds problems: a leaked address of node1 (AutoAssign, no
// endpoint), a leaked address in a block affine to a node that does not
// exist, and a handle with no addresses.
func (e *ipamEnv) leaky() {
	e.t.Helper()
	v4, _, err := e.ipam.AutoAssign(context.Background(), ipam.AutoAssignArgs{Num4: 1, HandleID: "net.leaked", Hostname: "node1",
		IPv4Pools: []string{"pool1"}, Attrs: map[string]string{ipam.AttributeNode: "node1", ipam.AttributePod: "gone", ipam.AttributeNamespace: "ns"}})
	if err != nil || len(v4.IPs) != 1 || v4.IPs[0].Addr() != netip.MustParseAddr("10.0.0.0") {
		e.t.Fatalf("AutoAssign: %+v %v", v4, err)
	}
	e.assign("10.0.1.5", "ghost", "net.ghost", "", nil)
	v, _ := json.Marshal(model.IPAMHandle{Block: map[string]int{"10.0.0.0/26": 3}})
	if _, err := e.cl.Backend().Create(context.Background(), &backend.KVPair{Key: model.HandleKey{HandleID: "orphan"}, Value: v}); err != nil {
		e.t.Fatal(err)
	}
}

// session runs commands and records them and their output, for goldens.
type session struct {
	c *cli
	b strings.Builder
}

func (s *session) run(args ...string) result {
	r := s.c.run(args...)
	s.b.WriteString("$ calicoctl " + strings.Join(args, " ") + "\n")
	s.b.WriteString(r.stdout)
	if r.stderr != "" {
		s.b.WriteString("[stderr]\n" + r.stderr)
	}
	if r.code != 0 {
		s.b.WriteString("[exit 1]\n")
	}
	return r
}

func TestIPAMShowGolden(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	s := &session{c: e.cli}
	for _, args := range [][]string{
		{"ipam", "show"},
		{"ipam", "show", "--show-blocks"},
		{"ipam", "show", "--show-borrowed"},
		{"ipam", "show", "--show-configuration"},
		{"ipam", "show", "--ip=10.0.0.1"},
		{"ipam", "show", "--ip=fd00:1::5"},
		{"ipam", "show", "--ip=10.0.0.70"},
		{"ipam", "show", "--ip=10.0.0.9"},
	} {
		if r := s.run(args...); r.code != 0 {
			t.Fatalf("%v: %s", args, r)
		}
	}
	golden(t, "ipam-show", s.b.String())
}

// TestIPAMShowOrphanedAndUnclassified shows blocks outside every pool
// only with --show-blocks, and notes allocations without a node.
func TestIPAMShowOrphanedAndUnclassified(t *testing.T) {
	e := newIPAMEnv(t)
	if err := e.ipam.AssignIP(context.Background(), ipam.AssignIPArgs{IP: netip.MustParseAddr("10.0.1.1"), Hostname: "node1"}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("delete", "ippool", "pool2")
	s := &session{c: e.cli}
	s.run("ipam", "show")
	s.run("ipam", "show", "--show-blocks")
	s.run("ipam", "show", "--show-borrowed")
	golden(t, "ipam-show-orphaned", s.b.String())
}

func TestIPAMReleaseGolden(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	s := &session{c: e.cli}
	s.run("ipam", "release", "--ip=10.0.0.2")
	s.run("ipam", "release", "--ip=10.0.0.2")
	s.run("ipam", "show", "--ip=10.0.0.2")
	s.run("ipam", "release", "--ip=fd00:1::5")
	s.run("ipam", "release", "--ip=192.168.7.7")
	s.run("ipam", "show", "--show-blocks")
	golden(t, "ipam-release", s.b.String())
}

func TestIPAMConfigureGolden(t *testing.T) {
	e := newIPAMEnv(t)
	s := &session{c: e.cli}
	s.run("ipam", "configure", "--strictaffinity=true")
	s.run("ipam", "configure", "--max-blocks-per-host=4")
	s.run("ipam", "show", "--show-configuration")
	s.run("ipam", "configure", "--strictaffinity=false")
	s.run("ipam", "configure", "--strictaffinity=false", "--max-blocks-per-host=0")
	s.run("ipam", "show", "--show-configuration")
	s.run("ipam", "configure", "--strictaffinity=maybe")
	s.run("ipam", "configure", "--max-blocks-per-host=lots")
	s.run("ipam", "configure")
	golden(t, "ipam-configure", s.b.String())
}

// TestIPAMCheckGolden checks a clean cluster, then one with leaks, fixes
// them with --release-leaks and checks again.
func TestIPAMCheckGolden(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	s := &session{c: e.cli}
	if r := s.run("ipam", "check"); r.code != 0 || !strings.Contains(r.stdout, "Check complete; found 0 problems.") {
		t.Fatal(r)
	}
	s.run("ipam", "check", "--show-all-ips")
	golden(t, "ipam-check-clean", s.b.String())

	e.leaky()
	s = &session{c: e.cli}
	if r := s.run("ipam", "check", "--show-problem-ips"); r.code != 0 || !strings.Contains(r.stdout, "Check complete; found 4 problems.") {
		t.Fatal(r)
	}
	if r := s.run("ipam", "check", "--release-leaks"); r.code != 0 || !strings.Contains(r.stdout, "Fixed 4 problems.") {
		t.Fatal(r)
	}
	if r := s.run("ipam", "check"); r.code != 0 || !strings.Contains(r.stdout, "Check complete; found 0 problems.") {
		t.Fatal(r)
	}
	s.run("ipam", "show", "--show-blocks")
	golden(t, "ipam-check-leaks", s.b.String())

	// The ghost's block went with its affinity; in-use addresses stayed.
	for k := range dump(t) {
		if strings.Contains(k, "ghost") || strings.Contains(k, "10.0.1.0-26") || strings.HasSuffix(k, "/orphan") || strings.HasSuffix(k, "/net.leaked") {
			t.Errorf("key %s survived --release-leaks", k)
		}
	}
	for _, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.70", "fd00:1::5"} {
		if r := e.mustRun("ipam", "show", "--ip="+ip); !strings.Contains(r.stdout, "is in use") {
			t.Errorf("%s: %s", ip, r)
		}
	}
}

// TestIPAMCheckInUseProblems reports addresses used but not allocated,
// inside and outside the active pools.
func TestIPAMCheckInUseProblems(t *testing.T) {
	e := newIPAMEnv(t)
	e.wep("node1", "stray", netip.MustParseAddr("10.0.0.9"))
	e.wep("node1", "foreign", netip.MustParseAddr("172.16.0.1"))
	r := e.mustRun("ipam", "check", "--show-problem-ips")
	for _, want := range []string{
		"  10.0.0.9 in use by Workload(ns/node1-k8s-stray-eth0) and in active IPAM pool but has no IPAM allocation.\n",
		"  172.16.0.1 in use by Workload(ns/node1-k8s-foreign-eth0) is not in any active IP pool.\n",
		"Found 1 in-use IPs that are not in active IP pools.\n",
		"Found 1 in-use IPs that are in active IP pools but have no corresponding IPAM allocation.\n",
		"Check complete; found 2 problems.\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r)
		}
	}
}

// TestIPAMCheckMinLeakAge spares young allocations (by the CNI plugin's
// timestamp) unless --min-leak-age says otherwise.
func TestIPAMCheckMinLeakAge(t *testing.T) {
	e := newIPAMEnv(t)
	e.assign("10.0.0.3", "node1", "net.young", "", map[string]string{ipam.AttributeTimestamp: time.Now().UTC().String()})
	if r := e.mustRun("ipam", "check", "--release-leaks"); !strings.Contains(r.stdout, "found 0 problems") || !strings.Contains(r.stdout, "Fixed 0 problems.") {
		t.Fatal(r)
	}
	if r := e.mustRun("ipam", "show", "--ip=10.0.0.3"); !strings.Contains(r.stdout, "is in use") {
		t.Fatal(r)
	}
	if r := e.mustRun("ipam", "check", "--min-leak-age=0", "--release-leaks"); !strings.Contains(r.stdout, "found 1 problems") ||
		!strings.Contains(r.stdout, "  Released leaked IP 10.0.0.3 (handle net.young).\n") {
		t.Fatal(r)
	}
}

// TestIPAMDefaultRoot checks that the shipped binary's root has ipam.
func TestIPAMDefaultRoot(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Execute([]string{"ipam", "--help"}, strings.NewReader(""), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "check") || !strings.Contains(out.String(), "release") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// TestIPAMCheckFixesHandles repairs a miscounted handle whose address
// leaked (two passes: releasing the leak rewrites the handle) and
// recreates a missing handle.
func TestIPAMCheckFixesHandles(t *testing.T) {
	e := newIPAMEnv(t)
	ctx := context.Background()
	e.assign("10.0.0.3", "node1", "net.miscount", "", nil)
	e.assign("10.0.0.4", "node1", "net.nohandle", "kept", nil)
	be := e.cl.Backend()
	kv, err := be.Get(ctx, model.HandleKey{HandleID: "net.miscount"})
	if err != nil {
		t.Fatal(err)
	}
	kv.Value, _ = json.Marshal(model.IPAMHandle{Block: map[string]int{"10.0.0.0/26": 5}})
	if _, err := be.Update(ctx, kv); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Delete(ctx, model.HandleKey{HandleID: "net.nohandle"}, 0); err != nil {
		t.Fatal(err)
	}
	r := e.mustRun("ipam", "check", "--show-problem-ips", "--release-leaks")
	for _, want := range []string{
		"  net.miscount records {10.0.0.0/26: 5} but its blocks hold {10.0.0.0/26: 1}.\n",
		"  net.nohandle is in use in a block but doesn't exist.\n",
		"Check complete; found 3 problems.\n",
		"  Released leaked IP 10.0.0.3 (handle net.miscount).\n  Corrected the counts of handle net.miscount.\n  Recreated missing handle net.nohandle.\nFixed 3 problems.\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r)
		}
	}
	if r := e.mustRun("ipam", "check"); !strings.Contains(r.stdout, "found 0 problems") {
		t.Fatal(r)
	}
	if r := e.mustRun("ipam", "release", "--ip=10.0.0.4"); r.stdout != "Successfully released IP address 10.0.0.4\n" {
		t.Fatal(r)
	}
}
