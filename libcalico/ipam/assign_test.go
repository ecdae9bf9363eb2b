package ipam

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

var ctx = context.Background()

func TestAutoAssignDualStackAndRelease(t *testing.T) {
	e := memEnv(t)
	e.pool("v4", "10.1.0.0/16", 26)
	e.pool("v6", "fd00:1::/112", 122)
	v4, v6 := e.assign("node1", "net.c1", 2, 1)
	if len(v4.IPs) != 2 || len(v6.IPs) != 1 || v4.IPs[0].Bits() != 26 || v6.IPs[0].Bits() != 122 {
		t.Fatalf("got %v %v", v4.IPs, v6.IPs)
	}
	s := readState(t, e.be)
	s.MustCheck(t)
	if len(s.Blocks) != 2 || len(s.Affs) != 2 {
		t.Fatalf("blocks %v affinities %v", s.Blocks, s.Affs)
	}
	for k, st := range s.Affs {
		if k.Host != "node1" || st != model.AffinityConfirmed {
			t.Fatalf("affinity %v = %s", k, st)
		}
	}
	h, attrs, err := e.ipam.GetAssignmentAttributes(ctx, v6.IPs[0].Addr())
	if err != nil || h != "net.c1" || attrs[AttributeNode] != "node1" {
		t.Fatalf("attributes = %q %v %v", h, attrs, err)
	}
	ips, err := e.ipam.IPsByHandle(ctx, "net.c1")
	if err != nil || len(ips) != 3 {
		t.Fatalf("IPsByHandle = %v, %v", ips, err)
	}
	if err := e.ipam.ReleaseByHandle(ctx, "net.c1"); err != nil {
		t.Fatal(err)
	}
	if err := e.ipam.ReleaseByHandle(ctx, "net.c1"); !errors.Is(err, cerrors.ErrNotFound) {
		t.Fatalf("second release = %v, want not found", err)
	}
	s = readState(t, e.be)
	s.MustCheck(t)
	if len(s.Owner) != 0 || len(s.Handles) != 0 || len(s.Blocks) != 2 {
		t.Fatalf("after release: owners %v handles %v blocks %d", s.Owner, s.Handles, len(s.Blocks))
	}
}

func TestFIFOReuseOfFreedOrdinals(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.2.0.0/24", 29)
	var got []netip.Addr
	for i := range 4 {
		v4, _ := e.assign("n", "h"+string(rune('a'+i)), 1, 0)
		got = append(got, v4.IPs[0].Addr())
	}
	// Free the second, then the first: they go to the tail, in that order.
	for _, a := range []netip.Addr{got[1], got[0]} {
		if na, err := e.ipam.ReleaseIPs(ctx, ReleaseOptions{Address: a}); err != nil || len(na) != 0 {
			t.Fatalf("release %s: %v %v", a, na, err)
		}
	}
	var next []netip.Addr
	for i := range 6 {
		v4, _ := e.assign("n", "x"+string(rune('a'+i)), 1, 0)
		next = append(next, v4.IPs[0].Addr())
	}
	base := netip.MustParsePrefix(got[0].String() + "/29").Masked().Addr()
	want := []netip.Addr{base.Next().Next().Next().Next(), nth(base, 5), nth(base, 6), nth(base, 7), got[1], got[0]}
	for i := range want {
		if next[i] != want[i] {
			t.Fatalf("reuse order %v, want %v", next, want)
		}
	}
	readState(t, e.be).MustCheck(t)
}

func nth(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}

func TestFullPoolFailsAtOnce(t *testing.T) {
	e := memEnv(t)
	e.pool("tiny", "10.30.0.0/29", 30)
	for i := range 8 {
		e.assign([]string{"a", "b", "c"}[i%3], "h"+string(rune('0'+i)), 1, 0)
	}
	start := time.Now()
	v4, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "one-too-many", Hostname: "a"})
	if !errors.Is(err, ErrNoAddresses) || len(v4.IPs) != 0 {
		t.Fatalf("full pool: %v %v", v4, err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("full pool took %v", time.Since(start))
	}
	t.Logf("full pool error: %v", err)
	s := readState(t, e.be)
	s.MustCheck(t)
	if len(s.Owner) != 8 || s.Handles["one-too-many"] != nil {
		t.Fatalf("state after failure: %d owners, handles %v", len(s.Owner), s.Handles)
	}
}

func TestStrictAffinityWithoutFreeBlock(t *testing.T) {
	e := memEnv(t)
	e.pool("tiny", "10.30.0.0/29", 30)
	if err := e.ipam.SetIPAMConfig(ctx, Config{StrictAffinity: true, AutoAllocateBlocks: true}); err != nil {
		t.Fatal(err)
	}
	e.assign("a", "ha", 1, 0) // claims one block
	e.assign("b", "hb", 1, 0) // claims the other
	_, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 4, HandleID: "hc", Hostname: "c"})
	if !errors.Is(err, ErrStrictAffinity) || !errors.Is(err, ErrNoAddresses) {
		t.Fatalf("strict affinity: %v", err)
	}
	t.Logf("strict affinity error: %v", err)
	// Without strict affinity c borrows from a's and b's blocks.
	if err := e.ipam.SetIPAMConfig(ctx, Config{AutoAllocateBlocks: true}); err != nil {
		t.Fatal(err)
	}
	v4, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 6, HandleID: "hc2", Hostname: "c"})
	if err != nil || len(v4.IPs) != 6 {
		t.Fatalf("borrowing: %v %v", v4, err)
	}
	s := readState(t, e.be)
	s.MustCheck(t)
	if len(s.Owner) != 8 {
		t.Fatalf("%d allocated", len(s.Owner))
	}
}

func TestDisabledPoolAndNodeSelector(t *testing.T) {
	e := memEnv(t)
	e.pool("off", "10.5.0.0/16", 26, func(p *v3.IPPool) { p.Spec.Disabled = true })
	e.pool("gpu", "10.6.0.0/16", 26, func(p *v3.IPPool) { p.Spec.NodeSelector = "gpu == 'yes'" })
	e.pool("rest", "10.7.0.0/16", 26, func(p *v3.IPPool) { p.Spec.NodeSelector = "!has(gpu)" })
	e.node("g1", map[string]string{"gpu": "yes"})
	e.node("c1", nil)
	for i := range 50 {
		v4, _ := e.assign("g1", "g"+string(rune('a'+i%26))+string(rune('a'+i/26)), 1, 0)
		if a := v4.IPs[0].Addr(); !netip.MustParsePrefix("10.6.0.0/16").Contains(a) {
			t.Fatalf("gpu node got %s", a)
		}
		v4, _ = e.assign("c1", "c"+string(rune('a'+i%26))+string(rune('a'+i/26)), 1, 0)
		if a := v4.IPs[0].Addr(); !netip.MustParsePrefix("10.7.0.0/16").Contains(a) {
			t.Fatalf("plain node got %s", a)
		}
	}
	_, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, Hostname: "g1", IPv4Pools: []string{"off"}})
	if !errors.Is(err, ErrNoQualifiedPool) {
		t.Fatalf("requesting a disabled pool: %v", err)
	}
	// A requested pool is used whatever its selector (as in Calico).
	v4, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, Hostname: "c1", IPv4Pools: []string{"10.6.0.0/16"}})
	if err != nil || !netip.MustParsePrefix("10.6.0.0/16").Contains(v4.IPs[0].Addr()) {
		t.Fatalf("requested pool: %v %v", v4, err)
	}
	for a := range readState(t, e.be).Owner {
		if netip.MustParsePrefix("10.5.0.0/16").Contains(a) {
			t.Fatalf("disabled pool used: %s", a)
		}
	}
}

func TestReservationsSkipped(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.8.0.0/24", 28)
	r := v3.NewIPReservation()
	r.Name = "r"
	r.Spec.ReservedCIDRs = []string{"10.8.0.0/30", "10.8.0.5", "10.8.0.16/28"}
	if _, err := e.cl.IPReservations().Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		v4, _ := e.assign("n", "h"+string(rune('A'+i)), 1, 0)
		a := v4.IPs[0].Addr()
		for _, s := range r.Spec.ReservedCIDRs {
			if p, _ := v3.ParseCIDR(s); p.Contains(a) {
				t.Fatalf("reserved %s assigned", a)
			}
		}
	}
	if _, ok := readState(t, e.be).Blocks[netip.MustParsePrefix("10.8.0.16/28")]; ok {
		t.Fatal("a wholly reserved block was claimed")
	}
}

func TestAssignIPAndConflicts(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.9.0.0/24", 26)
	ip := netip.MustParseAddr("10.9.0.77")
	if err := e.ipam.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "fixed", Hostname: "n1"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ipam.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "other", Hostname: "n1"}); !errors.Is(err, cerrors.ErrExists) {
		t.Fatalf("double assign = %v", err)
	}
	if err := e.ipam.AssignIP(ctx, AssignIPArgs{IP: netip.MustParseAddr("10.99.0.1"), Hostname: "n1"}); !errors.Is(err, ErrNotInPool) {
		t.Fatalf("outside pools = %v", err)
	}
	// A stale handle or sequence number does not free someone else's address.
	if _, err := e.ipam.ReleaseIPs(ctx, ReleaseOptions{Address: ip, Handle: "other"}); !errors.Is(err, cerrors.ErrConflict) {
		t.Fatalf("release with wrong handle = %v", err)
	}
	seq := uint64(1)
	if _, err := e.ipam.ReleaseIPs(ctx, ReleaseOptions{Address: ip, SequenceNumber: &seq}); !errors.Is(err, cerrors.ErrConflict) {
		t.Fatalf("release with wrong sequence number = %v", err)
	}
	s := readState(t, e.be)
	s.MustCheck(t)
	if s.Owner[ip] != "fixed" {
		t.Fatalf("owner = %q", s.Owner[ip])
	}
	na, err := e.ipam.ReleaseIPs(ctx, ReleaseOptions{Address: ip, Handle: "fixed"}, ReleaseOptions{Address: netip.MustParseAddr("10.9.0.78")})
	if err != nil || len(na) != 1 || na[0] != netip.MustParseAddr("10.9.0.78") {
		t.Fatalf("release = %v %v", na, err)
	}
	readState(t, e.be).MustCheck(t)
}

func TestReclaimEmptyBlockAfterMinAge(t *testing.T) {
	e := memEnv(t)
	now := time.Now()
	e.ipam.opts.Now = func() time.Time { return now }
	e.pool("tiny", "10.30.0.0/29", 30)
	if err := e.ipam.SetIPAMConfig(ctx, Config{StrictAffinity: true, AutoAllocateBlocks: true}); err != nil {
		t.Fatal(err)
	}
	e.assign("a", "ha", 1, 0)
	e.assign("b", "hb", 1, 0)
	if err := e.ipam.ReleaseByHandle(ctx, "hb"); err != nil {
		t.Fatal(err)
	}
	// b's block is empty but was claimed just now: c may not take it.
	if _, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "hc", Hostname: "c"}); !errors.Is(err, ErrStrictAffinity) {
		t.Fatalf("young block: %v", err)
	}
	now = now.Add(EmptyBlockMinReclaimAge + time.Second)
	v4, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "hc", Hostname: "c"})
	if err != nil {
		t.Fatalf("reclaim: %v", err)
	}
	s := readState(t, e.be)
	s.MustCheck(t)
	cidr := netip.PrefixFrom(v4.IPs[0].Addr(), 30).Masked()
	if s.Blocks[cidr].Host() != "c" || s.Affs[model.BlockAffinityKey{Host: "c", CIDR: cidr}] != model.AffinityConfirmed {
		t.Fatalf("block %s host %s, affinities %v", cidr, s.Blocks[cidr].Host(), s.Affs)
	}
	if _, ok := s.Affs[model.BlockAffinityKey{Host: "b", CIDR: cidr}]; ok {
		t.Fatal("b kept its affinity")
	}
}

func TestReleaseHostAffinities(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.10.0.0/24", 28)
	e.assign("gone", "h1", 20, 0) // two blocks
	if err := e.ipam.ReleaseByHandle(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	e.assign("gone", "h2", 1, 0)
	if _, err := e.ipam.ReleaseHostAffinities(ctx, "gone", true); !errors.Is(err, errBlockNotEmpty) {
		t.Fatalf("mustBeEmpty = %v", err)
	}
	released, err := e.ipam.ReleaseHostAffinities(ctx, "gone", false)
	if err != nil || len(released) != 1 { // the empty block went with the first call
		t.Fatalf("released %v, %v", released, err)
	}
	if again, err := e.ipam.ReleaseHostAffinities(ctx, "gone", false); err != nil || len(again) != 0 {
		t.Fatalf("second release: %v, %v", again, err)
	}
	s := readState(t, e.be)
	s.MustCheck(t)
	if len(s.Affs) != 0 || len(s.Blocks) != 1 || len(s.Owner) != 1 {
		t.Fatalf("affinities %v, %d blocks, %d owners", s.Affs, len(s.Blocks), len(s.Owner))
	}
	for _, b := range s.Blocks {
		if b.Affinity != nil || b.AffinityClaimTime != "" {
			t.Fatalf("block kept affinity %v", *b.Affinity)
		}
	}
	// Releasing the last address deletes the non-affine block.
	if err := e.ipam.ReleaseByHandle(ctx, "h2"); err != nil {
		t.Fatal(err)
	}
	if s := readState(t, e.be); len(s.Blocks) != 0 {
		t.Fatalf("%d blocks left", len(s.Blocks))
	}
}

func TestBlockLimitAndConfigRules(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.11.0.0/24", 29)
	if err := e.ipam.SetIPAMConfig(ctx, Config{}); err == nil {
		t.Fatal("both off accepted")
	}
	if err := e.ipam.SetIPAMConfig(ctx, Config{AutoAllocateBlocks: true, MaxBlocksPerHost: 1}); err == nil {
		t.Fatal("max blocks without strict affinity accepted")
	}
	if err := e.ipam.SetIPAMConfig(ctx, Config{StrictAffinity: true, AutoAllocateBlocks: true, MaxBlocksPerHost: 1}); err != nil {
		t.Fatal(err)
	}
	cfg, err := e.ipam.GetIPAMConfig(ctx)
	if err != nil || cfg != (Config{StrictAffinity: true, AutoAllocateBlocks: true, MaxBlocksPerHost: 1}) {
		t.Fatalf("config = %+v %v", cfg, err)
	}
	v4, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 10, HandleID: "h", Hostname: "n"})
	if !errors.Is(err, ErrBlockLimit) || len(v4.IPs) != 8 {
		t.Fatalf("block limit: %d IPs, %v", len(v4.IPs), err)
	}
	readState(t, e.be).MustCheck(t)
}
