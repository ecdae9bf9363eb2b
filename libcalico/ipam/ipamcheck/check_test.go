package ipamcheck

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/internal/ipamtest"
	"github.com/calico-etcd/calico/libcalico/model"
)

var ctx = context.Background()

type env struct {
	t  *testing.T
	be backend.Client
	cl *client.Client
	ic *ipam.Client
}

// newEnv is a memory store and an IPAM client over it with a Cache of
// its own, as a long-lived process's would have.
func newEnv(t *testing.T, opts ipam.Options) *env {
	s := memory.New()
	t.Cleanup(func() { s.Close() })
	opts.Cache = ipam.NewCache()
	ic, err := ipam.New(s, ipamtest.Log(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, be: s, cl: client.New(s), ic: ic}
}

// assign gives host an address of handle, with host as its node.
func (e *env) assign(host, handle string) netip.Addr {
	e.t.Helper()
	v4, _, err := e.ic.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: handle, Hostname: host,
		Attrs: map[string]string{ipam.AttributeNode: host}})
	if err != nil {
		e.t.Fatalf("AutoAssign(%s, %s): %v", host, handle, err)
	}
	return v4.IPs[0].Addr()
}

// assignIP gives host the address ip of handle.
func (e *env) assignIP(ip, host, handle string, attrs map[string]string) netip.Addr {
	e.t.Helper()
	a := netip.MustParseAddr(ip)
	if err := e.ic.AssignIP(ctx, ipam.AssignIPArgs{IP: a, HandleID: handle, Hostname: host, Attrs: attrs}); err != nil {
		e.t.Fatalf("AssignIP(%s): %v", ip, err)
	}
	return a
}

// wep creates the WorkloadEndpoint of pod on node, using ip.
func (e *env) wep(node, pod string, ip netip.Addr) {
	e.t.Helper()
	w := v3.NewWorkloadEndpoint()
	w.Namespace, w.Name = "ns", node+"-k8s-"+pod+"-eth0"
	w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: node, Pod: pod, Endpoint: "eth0", ContainerID: "c-" + pod,
		InterfaceName: "cali0123456789a", IPNetworks: []string{ip.String() + "/32"}}
	if _, err := e.cl.WorkloadEndpoints().Create(ctx, w); err != nil {
		e.t.Fatal(err)
	}
}

func TestCheckFindsAndFixesLeaks(t *testing.T) {
	e := newEnv(t, ipam.Options{})
	ipamtest.Pool(t, e.cl, "p", "10.20.0.0/24", 28)
	ipamtest.Node(t, e.cl, "n1", nil)
	inUse := e.assign("n1", "net.used")
	e.assign("n1", "net.leaked")
	e.assign("dead", "net.dead") // node "dead" does not exist
	tunnel, _, err := e.ic.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: "ipip-tunnel-addr-n1", Hostname: "n1",
		Attrs: map[string]string{ipam.AttributeNode: "n1", ipam.AttributeType: ipam.AttributeTypeIPIP}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.cl.Nodes().Get(ctx, "", "n1")
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "192.168.1.10/24", IPv4IPIPTunnelAddr: tunnel.IPs[0].Addr().String()}
	if _, err := e.cl.Nodes().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	e.wep("n1", "web", inUse)
	// A handle a crashed writer left behind.
	v, _ := json.Marshal(model.IPAMHandle{Block: map[string]int{"10.20.0.0/28": 3}})
	if _, err := e.be.Create(ctx, &backend.KVPair{Key: model.HandleKey{HandleID: "orphan"}, Value: v}); err != nil {
		t.Fatal(err)
	}

	young, err := Check(ctx, e.ic, Options{MinLeakAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(young.Leaked) != 2 { // no timestamp attribute: treated as old
		t.Fatalf("leaks with min age: %+v", young.Leaked)
	}
	r, err := Check(ctx, e.ic, Options{})
	if err != nil {
		t.Fatal(err)
	}
	leaked := map[string]bool{}
	for _, a := range r.Leaked {
		leaked[a.Handle] = true
	}
	if r.Allocations != 4 || len(leaked) != 2 || !leaked["net.leaked"] || !leaked["net.dead"] {
		t.Fatalf("leaks: %+v", r)
	}
	if len(r.BadHandles) != 1 || r.BadHandles[0].Handle != "orphan" || len(r.StaleAffinities) != 1 || r.StaleAffinities[0].Host != "dead" || r.OK() {
		t.Fatalf("report: %+v", r)
	}
	fixed, err := Check(ctx, e.ic, Options{Fix: true})
	if err != nil || len(fixed.FixErrors) != 0 || fixed.Fixed != 4 {
		t.Fatalf("fix: %+v %v", fixed, err)
	}
	after, err := Check(ctx, e.ic, Options{})
	if err != nil || !after.OK() || after.Allocations != 2 {
		t.Fatalf("after fix: %+v %v", after, err)
	}
	ipamtest.Read(t, e.be).MustCheck(t)

	usage, err := e.ic.Usage(ctx)
	if err != nil || len(usage) != 1 || usage[0].InUse != 2 || usage[0].Capacity != 256 {
		t.Fatalf("usage %+v %v", usage, err)
	}
	for _, b := range usage[0].Blocks {
		if b.Host != "n1" || b.Capacity != 16 || b.Free != b.Capacity-b.InUse {
			t.Fatalf("block usage %+v", b)
		}
	}
}

// TestCheckDeletedNodes reports the endpoints and in-use addresses of a
// deleted node, spares a node with young ones, and leaves both to the
// caller when fixing.
func TestCheckDeletedNodes(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	e := newEnv(t, ipam.Options{Now: clock})
	ipamtest.Pool(t, e.cl, "p", "10.32.0.0/24", 28)
	ipamtest.Node(t, e.cl, "live", nil)
	old := now.Add(-time.Hour).String()
	attrs := func(node, ts string) map[string]string {
		return map[string]string{ipam.AttributeNode: node, ipam.AttributeTimestamp: ts}
	}
	e.wep("live", "a", e.assignIP("10.32.0.1", "live", "net.a", attrs("live", old)))
	inUse := e.assignIP("10.32.0.17", "gone", "net.b", attrs("gone", old))
	e.wep("gone", "b", inUse)
	e.assignIP("10.32.0.18", "gone", "net.c", attrs("gone", old)) // leaked
	e.assignIP("10.32.0.33", "starting", "net.d", attrs("starting", now.Add(-time.Minute).String()))
	e.wep("starting", "d", netip.MustParseAddr("10.32.0.33"))

	r, err := Check(ctx, e.ic, Options{MinLeakAge: 5 * time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	// Endpoints were created "now" by the real clock, long before the
	// test's clock: old.
	if len(r.OrphanedEndpoints) != 1 || r.OrphanedEndpoints[0] != (OrphanedEndpoint{Namespace: "ns", Name: "gone-k8s-b-eth0", Node: "gone"}) {
		t.Fatalf("orphans %+v", r.OrphanedEndpoints)
	}
	if len(r.DeletedNodeAllocations) != 1 || r.DeletedNodeAllocations[0].IP != inUse {
		t.Fatalf("deleted-node allocations %+v", r.DeletedNodeAllocations)
	}
	if len(r.Leaked) != 1 || r.Leaked[0].Handle != "net.c" || !slices.Equal(r.DeletedNodes, []string{"gone"}) || r.OK() {
		t.Fatalf("report %+v", r)
	}
	// With no minimum age, the starting node counts too.
	r, err = Check(ctx, e.ic, Options{Now: clock})
	if err != nil || !slices.Equal(r.DeletedNodes, []string{"gone", "starting"}) || len(r.OrphanedEndpoints) != 2 {
		t.Fatalf("report %+v %v", r, err)
	}
	fixed, err := Check(ctx, e.ic, Options{Fix: true, MinLeakAge: 5 * time.Minute, Now: clock})
	if err != nil || len(fixed.FixErrors) != 0 {
		t.Fatalf("fix %+v %v", fixed, err)
	}
	after, err := Check(ctx, e.ic, Options{MinLeakAge: 5 * time.Minute, Now: clock})
	if err != nil || len(after.Leaked)+len(after.StaleAffinities) != 0 || len(after.OrphanedEndpoints) != 1 || len(after.DeletedNodeAllocations) != 1 {
		t.Fatalf("after fix %+v %v", after, err)
	}
}
