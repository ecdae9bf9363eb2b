package ipam

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
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
	s.MustCheck(e.t)
	return s.Owner
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
	if _, ok := s.Handles["net.w1"]; ok || len(s.Handles) != 2 {
		t.Fatalf("handles left %v", s.Handles)
	}
	if len(s.Blocks) != 2 { // both blocks keep their affinity
		t.Fatalf("blocks %v", s.Blocks)
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
