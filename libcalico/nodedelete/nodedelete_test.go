package nodedelete_test

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/libcalico/nodedelete"
	"github.com/calico-etcd/calico/testutil"
)

var ctx = context.Background()

type env struct {
	t   *testing.T
	srv *testutil.Etcd
	c   *client.Client
	ic  *ipam.Client
	log *logrus.Entry
}

// newEnv is a client and an IPAM client over a fresh embedded etcd, with
// one pool whose /28 blocks hold both workload and tunnel addresses.
func newEnv(t *testing.T) *env {
	t.Helper()
	srv := testutil.StartEtcd(t)
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(be)
	t.Cleanup(func() { c.Close() })
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	log := logrus.NewEntry(l)
	ic, err := ipam.New(be, log, ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := v3.NewIPPool()
	p.Name, p.Spec.CIDR, p.Spec.BlockSize = "pool", "10.40.0.0/24", 28
	if _, err := c.IPPools().Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, c: c, ic: ic, log: log}
}

func (e *env) must(_ any, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) autoAssign(node, handle, typ string, use v3.IPPoolAllowedUse) netip.Addr {
	e.t.Helper()
	attrs := map[string]string{ipam.AttributeNode: node}
	if typ != "" {
		attrs[ipam.AttributeType] = typ
	}
	v4, _, err := e.ic.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: handle, Hostname: node, Attrs: attrs, IntendedUse: use})
	if err != nil || len(v4.IPs) != 1 {
		e.t.Fatalf("assigning %s: %+v %v", handle, v4, err)
	}
	return v4.IPs[0].Addr()
}

// node is what setup made for one node.
type node struct {
	name      string
	weps      []string
	addrs     []netip.Addr
	hep, peer string
}

// setup makes node name with everything Delete must remove: two pods
// with addresses from its affine block, a host endpoint, a BGP peer,
// node.<name> Felix and BGP configurations, and VXLAN and IPIP tunnel
// addresses on the Node.
func (e *env) setup(name string, peerIP string) node {
	e.t.Helper()
	n := node{name: name, hep: name + "-eth0", peer: "peer-" + name}
	nd := v3.NewNode()
	nd.Name = name
	nd.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: peerIP + "0/24"}
	e.must(e.c.Nodes().Create(ctx, nd))
	for _, pod := range []string{"web", "db"} {
		ip := e.autoAssign(name, "k8s-pod-network.c-"+name+"-"+pod, "", "")
		w := v3.NewWorkloadEndpoint()
		w.Namespace, w.Name = "ns", strings.ReplaceAll(name, "-", "--")+"-k8s-"+pod+"-eth0"
		w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: name, Pod: pod, Endpoint: "eth0", ContainerID: "c-" + pod,
			InterfaceName: "cali0123456789a", IPNetworks: []string{ip.String() + "/32"}}
		e.must(e.c.WorkloadEndpoints().Create(ctx, w))
		n.weps = append(n.weps, "ns/"+w.Name)
		n.addrs = append(n.addrs, ip)
	}
	hep := v3.NewHostEndpoint()
	hep.Name, hep.Spec.Node, hep.Spec.InterfaceName = n.hep, name, "eth0"
	e.must(e.c.HostEndpoints().Create(ctx, hep))
	peer := v3.NewBGPPeer()
	peer.Name, peer.Spec.Node, peer.Spec.PeerIP, peer.Spec.ASNumber = n.peer, name, peerIP+"1", 65001
	e.must(e.c.BGPPeers().Create(ctx, peer))
	fc := v3.NewFelixConfiguration()
	fc.Name = "node." + name
	e.must(e.c.FelixConfigurations().Create(ctx, fc))
	bc := v3.NewBGPConfiguration()
	bc.Name, bc.Spec.LogSeverityScreen = "node."+name, "Info"
	e.must(e.c.BGPConfigurations().Create(ctx, bc))

	vxlan := e.autoAssign(name, "vxlan-tunnel-addr-"+name, ipam.AttributeTypeVXLAN, v3.IPPoolAllowedUseTunnel)
	ipip := e.autoAssign(name, "ipip-tunnel-addr-"+name, ipam.AttributeTypeIPIP, v3.IPPoolAllowedUseTunnel)
	n.addrs = append(n.addrs, vxlan, ipip)
	cur, err := e.c.Nodes().Get(ctx, "", name)
	if err != nil {
		e.t.Fatal(err)
	}
	cur.Spec.IPv4VXLANTunnelAddr = vxlan.String()
	cur.Spec.BGP.IPv4IPIPTunnelAddr = ipip.String()
	e.must(e.c.Nodes().Update(ctx, cur))
	slices.SortFunc(n.addrs, netip.Addr.Compare)
	return n
}

// dump is every key under /calico/ with its value.
func (e *env) dump() map[string]string {
	e.t.Helper()
	resp, err := e.srv.RawClient(e.t).Get(ctx, "/calico/", clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// mentioning returns the keys whose key or value mention s.
func mentioning(d map[string]string, s string) []string {
	var out []string
	for k, v := range d {
		if strings.Contains(k, s) || strings.Contains(v, s) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// allocationsOf returns the allocations attributed to node.
func (e *env) allocationsOf(node string) []ipam.Allocation {
	e.t.Helper()
	all, err := e.ic.Allocations(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(a ipam.Allocation) bool { return a.Attrs[ipam.AttributeNode] != node })
}

// checkClean asserts that ipamcheck.Check finds nothing and that no
// key or value mentions the node.
func (e *env) checkClean(n node) {
	e.t.Helper()
	r, err := ipamcheck.Check(ctx, e.ic, ipamcheck.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	if !r.OK() || len(r.DeletedNodes) != 0 {
		e.t.Errorf("check after delete: %+v", r)
	}
	if left := mentioning(e.dump(), n.name); len(left) > 0 {
		e.t.Errorf("keys mentioning %s left: %v", n.name, left)
	}
}

func wantAll(t *testing.T, r *nodedelete.Result, n node) {
	t.Helper()
	slices.Sort(r.WorkloadEndpoints)
	weps := slices.Sorted(slices.Values(n.weps))
	if !slices.Equal(r.WorkloadEndpoints, weps) || !slices.Equal(r.HostEndpoints, []string{n.hep}) ||
		!slices.Equal(r.BGPPeers, []string{n.peer}) || len(r.Configs) != 2 ||
		!slices.Equal(r.Addresses, n.addrs) || len(r.Affinities) != 1 || !r.NodeDeleted {
		t.Fatalf("result %+v, want everything of %+v", r, n)
	}
}

func TestDeleteRemovesEverythingOfTheNodeOnly(t *testing.T) {
	e := newEnv(t)
	h1 := e.setup("h1", "192.168.1.")
	h2 := e.setup("h2", "192.168.2.")
	if r, err := ipamcheck.Check(ctx, e.ic, ipamcheck.Options{}); err != nil || !r.OK() {
		t.Fatalf("check before: %+v %v", r, err)
	}
	before := e.dump()
	h2Allocs := e.allocationsOf("h2")

	r, err := nodedelete.Delete(ctx, e.c, e.ic, "h1", e.log)
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, r, h1)
	if !slices.Equal(r.Configs, []string{"FelixConfiguration(node.h1)", "BGPConfiguration(node.h1)"}) {
		t.Fatalf("configs %v", r.Configs)
	}
	if got := r.Summary(); got != "2 workload endpoint(s), 1 host endpoint(s), 1 BGP peer(s), 2 configuration(s), 4 IP address(es), 1 block affinity(ies)" {
		t.Fatalf("summary %q", got)
	}
	e.checkClean(h1)

	// h2 is untouched: its keys and values, and its allocations.
	after := e.dump()
	for _, k := range mentioning(before, "h2") {
		if after[k] != before[k] {
			t.Errorf("%s changed:\n%s\n%s", k, before[k], after[k])
		}
	}
	if got := e.allocationsOf("h2"); !slices.EqualFunc(got, h2Allocs, func(a, b ipam.Allocation) bool {
		return a.IP == b.IP && a.Handle == b.Handle && maps.Equal(a.Attrs, b.Attrs) && a.SequenceNumber == b.SequenceNumber
	}) {
		t.Errorf("h2's allocations %+v, were %+v", got, h2Allocs)
	}
	if len(h2Allocs) != 4 {
		t.Fatalf("h2 has %d allocations", len(h2Allocs))
	}
	_ = h2
}

// TestDeleteIsIdempotent runs Delete twice, and after only the Node was
// deleted.
func TestDeleteIsIdempotent(t *testing.T) {
	e := newEnv(t)
	h1 := e.setup("h1", "192.168.1.")
	h2 := e.setup("h2", "192.168.2.")

	r, err := nodedelete.Delete(ctx, e.c, e.ic, "h1", e.log)
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, r, h1)
	again, err := nodedelete.Delete(ctx, e.c, e.ic, "h1", e.log)
	if err != nil || again.NodeDeleted || again.Leftovers() || again.Summary() != "" {
		t.Fatalf("second delete: %+v %v", again, err)
	}
	e.checkClean(h1)

	// The Node deleted on its own (as an old calicoctl did): the rest is
	// found by node name and allocation attribute.
	e.must(e.c.Nodes().Delete(ctx, "", "h2", ""))
	if r, err := ipamcheck.Check(ctx, e.ic, ipamcheck.Options{}); err != nil || !slices.Equal(r.DeletedNodes, []string{"h2"}) ||
		len(r.OrphanedEndpoints) != 2 || len(r.DeletedNodeAllocations) != 2 || len(r.Leaked) != 2 {
		t.Fatalf("check of leftovers: %+v %v", r, err)
	}
	r, err = nodedelete.Delete(ctx, e.c, e.ic, "h2", e.log)
	if err != nil {
		t.Fatal(err)
	}
	r.NodeDeleted = true // everything else as if the Node had been there
	wantAll(t, r, h2)
	e.checkClean(h2)
}

// TestDeleteAfterFailureMidway re-runs a delete that stopped after
// releasing the addresses: the endpoints still name freed addresses.
func TestDeleteAfterFailureMidway(t *testing.T) {
	e := newEnv(t)
	h1 := e.setup("h1", "192.168.1.")
	freed, err := e.ic.ReleaseNodeAllocations(ctx, "h1", nil)
	if err != nil || len(freed) != 4 {
		t.Fatalf("freed %v %v", freed, err)
	}
	r, err := nodedelete.Delete(ctx, e.c, e.ic, "h1", e.log)
	if err != nil || len(r.Addresses) != 0 || len(r.WorkloadEndpoints) != 2 || !r.NodeDeleted {
		t.Fatalf("re-run: %+v %v", r, err)
	}
	e.checkClean(h1)
}

// TestConcurrentDeletes runs two Deletes at once: neither fails, and
// between them everything is removed exactly once.
func TestConcurrentDeletes(t *testing.T) {
	e := newEnv(t)
	h1 := e.setup("h1", "192.168.1.")
	var wg sync.WaitGroup
	var rs [2]*nodedelete.Result
	for i := range rs {
		wg.Go(func() {
			r, err := nodedelete.Delete(ctx, e.c, e.ic, "h1", e.log)
			if err != nil {
				t.Error(err)
			}
			rs[i] = r
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	sum := &nodedelete.Result{NodeDeleted: rs[0].NodeDeleted || rs[1].NodeDeleted}
	for _, r := range rs {
		sum.WorkloadEndpoints = append(sum.WorkloadEndpoints, r.WorkloadEndpoints...)
		sum.HostEndpoints = append(sum.HostEndpoints, r.HostEndpoints...)
		sum.BGPPeers = append(sum.BGPPeers, r.BGPPeers...)
		sum.Configs = append(sum.Configs, r.Configs...)
		sum.Addresses = append(sum.Addresses, r.Addresses...)
		sum.Affinities = append(sum.Affinities, r.Affinities...)
	}
	slices.SortFunc(sum.Addresses, netip.Addr.Compare)
	if rs[0].NodeDeleted == rs[1].NodeDeleted {
		t.Fatalf("node deleted by both or neither: %+v %+v", rs[0], rs[1])
	}
	wantAll(t, sum, h1)
	e.checkClean(h1)
}

// TestDeleteOptions: OnlyIfAbsent refuses an existing node, a stale
// ResourceVersion refuses everything.
func TestDeleteOptions(t *testing.T) {
	e := newEnv(t)
	h1 := e.setup("h1", "192.168.1.")
	before := e.dump()
	if _, err := nodedelete.DeleteWithOptions(ctx, e.c, e.ic, "h1", nodedelete.Options{OnlyIfAbsent: true}, e.log); !errors.Is(err, nodedelete.ErrNodeExists) {
		t.Fatalf("OnlyIfAbsent: %v", err)
	}
	if _, err := nodedelete.DeleteWithOptions(ctx, e.c, e.ic, "h1", nodedelete.Options{ResourceVersion: "1"}, e.log); !errors.Is(err, cerrors.ErrConflict) {
		t.Fatalf("stale ResourceVersion: %v", err)
	}
	if after := e.dump(); !maps.Equal(before, after) {
		t.Fatal("a refused delete changed the datastore")
	}
	n, err := e.c.Nodes().Get(ctx, "", "h1")
	if err != nil {
		t.Fatal(err)
	}
	r, err := nodedelete.DeleteWithOptions(ctx, e.c, nil, "h1", nodedelete.Options{ResourceVersion: n.ResourceVersion}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, r, h1)
	e.checkClean(h1)
	if _, err := nodedelete.Delete(ctx, e.c, e.ic, "", nil); err == nil {
		t.Fatal("empty name accepted")
	}
}

// TestDeleteRetriesAChangedNode deletes a Node that another writer
// updates a few times while the cascade runs.
func TestDeleteRetriesAChangedNode(t *testing.T) {
	e := newEnv(t)
	h1 := e.setup("h1", "192.168.1.")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			n, err := e.c.Nodes().Get(ctx, "", "h1")
			if err != nil {
				return
			}
			n.Labels = map[string]string{"touched": time.Now().Format("150405.000000")}
			if _, err := e.c.Nodes().Update(ctx, n); err != nil && !errors.Is(err, cerrors.ErrConflict) && !errors.Is(err, cerrors.ErrNotFound) {
				t.Error(err)
				return
			}
		}
	}()
	r, err := nodedelete.Delete(ctx, e.c, e.ic, "h1", e.log)
	close(stop)
	<-done
	if err != nil || !r.NodeDeleted {
		t.Fatalf("%+v %v", r, err)
	}
	e.checkClean(h1)
}
