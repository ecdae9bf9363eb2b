package ipam

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func (e *env) assignIP(ip, host, handle string, attrs map[string]string) netip.Addr {
	e.t.Helper()
	a := netip.MustParseAddr(ip)
	if err := e.ipam.AssignIP(ctx, AssignIPArgs{IP: a, HandleID: handle, Hostname: host, Attrs: attrs}); err != nil {
		e.t.Fatalf("AssignIP(%s): %v", ip, err)
	}
	return a
}

func (e *env) owners() map[netip.Addr]string {
	e.t.Helper()
	s := readState(e.t, e.be)
	s.mustCheck(e.t)
	return s.owner
}

// TestReleaseNodeAllocations frees a node's addresses by attribute in
// every block, and the unattributed addresses it is given, but nothing
// of another node's.
func TestReleaseNodeAllocations(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.30.0.0/24", 28)
	node := func(n string) map[string]string { return map[string]string{AttributeNode: n} }
	// n1's block 10.30.0.0/28 and n2's block 10.30.0.16/28.
	w1 := e.assignIP("10.30.0.1", "n1", "net.w1", node("n1"))
	e.assignIP("10.30.0.2", "n1", "net.w2", node("n1"))
	e.assignIP("10.30.0.3", "n1", "vxlan-tunnel-addr-n1", map[string]string{AttributeNode: "n1", AttributeType: AttributeTypeVXLAN})
	bare := e.assignIP("10.30.0.4", "n1", "net.bare", nil)       // no node attribute: only when named
	untouched := e.assignIP("10.30.0.5", "n1", "net.other", nil) // not named
	kept := e.assignIP("10.30.0.17", "n2", "net.n2", node("n2"))
	borrowed := e.assignIP("10.30.0.18", "n1", "net.borrowed", node("n1")) // n1's address in n2's block

	freed, err := e.ipam.ReleaseNodeAllocations(ctx, "n1", []netip.Addr{bare, kept, w1, netip.MustParseAddr("10.99.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(freed, netip.Addr.Compare)
	want := []netip.Addr{w1, netip.MustParseAddr("10.30.0.2"), netip.MustParseAddr("10.30.0.3"), bare, borrowed}
	if !slices.Equal(freed, want) {
		t.Fatalf("freed %v, want %v", freed, want)
	}
	owners := e.owners()
	if len(owners) != 2 || owners[untouched] != "net.other" || owners[kept] != "net.n2" {
		t.Fatalf("left %v", owners)
	}
	s := readState(t, e.be)
	if _, ok := s.handles["net.w1"]; ok || len(s.handles) != 2 {
		t.Fatalf("handles left %v", s.handles)
	}
	if len(s.blocks) != 2 { // both blocks keep their affinity
		t.Fatalf("blocks %v", s.blocks)
	}
	if again, err := e.ipam.ReleaseNodeAllocations(ctx, "n1", []netip.Addr{bare}); err != nil || len(again) != 0 {
		t.Fatalf("second release: %v %v", again, err)
	}
	if _, err := e.ipam.ReleaseNodeAllocations(ctx, "", nil); err == nil {
		t.Fatal("empty node accepted")
	}
}

// TestReleaseNodeAllocationsConcurrent races two releases of one node
// and assignments of another: each address is freed once, and only the
// node's.
func TestReleaseNodeAllocationsConcurrent(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.31.0.0/24", 28)
	for i := range 20 {
		e.assign("n1", "net.a"+string(rune('a'+i)), 1, 0)
	}
	var wg sync.WaitGroup
	var freed [2][]netip.Addr
	for i := range 2 {
		wg.Go(func() {
			f, err := e.ipam.ReleaseNodeAllocations(ctx, "n1", nil)
			if err != nil {
				t.Error(err)
			}
			freed[i] = f
		})
	}
	wg.Go(func() {
		for range 10 {
			e.assign("n2", "", 1, 0)
		}
	})
	wg.Wait()
	all := append(slices.Clone(freed[0]), freed[1]...)
	slices.SortFunc(all, netip.Addr.Compare)
	if len(all) != 20 || len(slices.Compact(all)) != 20 {
		t.Fatalf("freed %v and %v", freed[0], freed[1])
	}
	owners := e.owners()
	if len(owners) != 10 {
		t.Fatalf("%d addresses left, want n2's 10", len(owners))
	}
}

// TestCheckDeletedNodes reports the endpoints and in-use addresses of a
// deleted node, spares a node with young ones, and leaves both to the
// caller when fixing.
func TestCheckDeletedNodes(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, memEnv(t).be, Options{Now: func() time.Time { return now }})
	e.pool("p", "10.32.0.0/24", 28)
	e.node("live", nil)
	wep := func(node, pod string, ip netip.Addr) {
		t.Helper()
		w := v3.NewWorkloadEndpoint()
		w.Namespace, w.Name = "ns", node+"-k8s-"+pod+"-eth0"
		w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: node, Pod: pod, Endpoint: "eth0", ContainerID: "c-" + pod,
			InterfaceName: "cali0123456789a", IPNetworks: []string{ip.String() + "/32"}}
		if _, err := e.cl.WorkloadEndpoints().Create(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	old := now.Add(-time.Hour).String()
	attrs := func(node, ts string) map[string]string {
		return map[string]string{AttributeNode: node, AttributeTimestamp: ts}
	}
	wep("live", "a", e.assignIP("10.32.0.1", "live", "net.a", attrs("live", old)))
	inUse := e.assignIP("10.32.0.17", "gone", "net.b", attrs("gone", old))
	wep("gone", "b", inUse)
	e.assignIP("10.32.0.18", "gone", "net.c", attrs("gone", old)) // leaked
	e.assignIP("10.32.0.33", "starting", "net.d", attrs("starting", now.Add(-time.Minute).String()))
	wep("starting", "d", netip.MustParseAddr("10.32.0.33"))

	r, err := e.ipam.Check(ctx, CheckOptions{MinLeakAge: 5 * time.Minute})
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
	r, err = e.ipam.Check(ctx, CheckOptions{})
	if err != nil || !slices.Equal(r.DeletedNodes, []string{"gone", "starting"}) || len(r.OrphanedEndpoints) != 2 {
		t.Fatalf("report %+v %v", r, err)
	}
	fixed, err := e.ipam.Check(ctx, CheckOptions{Fix: true, MinLeakAge: 5 * time.Minute})
	if err != nil || len(fixed.FixErrors) != 0 {
		t.Fatalf("fix %+v %v", fixed, err)
	}
	after, err := e.ipam.Check(ctx, CheckOptions{MinLeakAge: 5 * time.Minute})
	if err != nil || len(after.Leaked)+len(after.StaleAffinities) != 0 || len(after.OrphanedEndpoints) != 1 || len(after.DeletedNodeAllocations) != 1 {
		t.Fatalf("after fix %+v %v", after, err)
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1/32": "10.0.0.1", "10.0.0.70": "10.0.0.70", "10.0.0.70/26": "10.0.0.70", "fd00::5/128": "fd00::5", "::ffff:10.0.0.1": "10.0.0.1"} {
		if a, ok := ParseAddr(in); !ok || a.String() != want {
			t.Errorf("ParseAddr(%q) = %v %v", in, a, ok)
		}
	}
	for _, in := range []string{"", "x", "fe80::1%eth0"} {
		if a, ok := ParseAddr(in); ok {
			t.Errorf("ParseAddr(%q) = %v", in, a)
		}
	}
}
