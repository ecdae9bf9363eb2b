package speaker

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/testutil"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// recorder collects Watch events.
type recorder struct {
	mu   sync.Mutex
	best map[netip.Prefix]Path
	eor  map[netip.Addr]bool
}

func (r *recorder) on(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ev.Paths {
		if p.Withdrawn || p.Local() {
			delete(r.best, p.Prefix)
		} else {
			r.best[p.Prefix] = p
		}
	}
	if ev.EndOfRIB.IsValid() {
		r.eor[ev.EndOfRIB] = true
	}
}

func (r *recorder) has(p string) (Path, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x, ok := r.best[netip.MustParsePrefix(p)]
	return x, ok
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startSpeaker(t *testing.T, rid string, port int) (*Speaker, *recorder) {
	t.Helper()
	s := New(Options{ConnectRetry: time.Second, Log: quietLog()})
	t.Cleanup(s.Stop)
	if err := s.Start(context.Background(), Global{ASNumber: 64512, RouterID: rid, ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	r := &recorder{best: map[netip.Prefix]Path{}, eor: map[netip.Addr]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Watch(ctx, r.on); err != nil {
		t.Fatal(err)
	}
	return s, r
}

func uptime(t *testing.T, s *Speaker, addr string) time.Time {
	t.Helper()
	var up time.Time
	_ = s.bgp.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr}, func(p *api.Peer) {
		if u := p.Timers.GetState().GetUptime(); u != nil {
			up = u.AsTime()
		}
	})
	return up
}

// TestTwoSpeakers runs two speakers in this process (gobgp's own test
// style), both on 127.0.0.1 with different ports.
func TestTwoSpeakers(t *testing.T) {
	ctx := context.Background()
	p1, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s1, r1 := startSpeaker(t, "10.0.0.1", p1)
	s2, r2 := startSpeaker(t, "10.0.0.2", p2)
	pools := []bgpconfig.Pool{{CIDR: "10.65.0.0/16", Export: true}}
	peer1 := bgpconfig.Peer{Name: "to-s2", Address: "127.0.0.1", Port: uint16(p2), ASNumber: 64512, Type: bgpconfig.PeerTypeMesh, Passive: true, RestartTime: 120}
	peer2 := bgpconfig.Peer{Name: "to-s1", Address: "127.0.0.1", Port: uint16(p1), ASNumber: 64512, Type: bgpconfig.PeerTypeMesh, RestartTime: 120}
	for _, x := range []struct {
		s *Speaker
		p bgpconfig.Peer
	}{{s1, peer1}, {s2, peer2}} {
		if err := x.s.SetPolicy(ctx, pools, []bgpconfig.Peer{x.p}); err != nil {
			t.Fatal(err)
		}
		if _, err := x.s.SetPeers(ctx, []bgpconfig.Peer{x.p}); err != nil {
			t.Fatal(err)
		}
	}
	nh := mustAddr("127.0.0.1")
	if err := s2.Advertise(ctx, netip.MustParsePrefix("10.65.2.0/26"), nh, []string{"65000:1"}); err != nil {
		t.Fatal(err)
	}
	// Outside every pool: the export policy keeps it to s2.
	if err := s2.Advertise(ctx, netip.MustParsePrefix("192.0.2.0/24"), nh, nil); err != nil {
		t.Fatal(err)
	}
	if err := s1.Advertise(ctx, netip.MustParsePrefix("10.65.1.0/26"), nh, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "s1 learns s2's block", func() bool { _, ok := r1.has("10.65.2.0/26"); return ok })
	eventually(t, "s2 learns s1's block", func() bool { _, ok := r2.has("10.65.1.0/26"); return ok })
	if p, _ := r1.has("10.65.2.0/26"); p.NextHop != nh || p.Peer != nh {
		t.Errorf("learned path %+v", p)
	}
	eventually(t, "End-of-RIB from s2", func() bool { r1.mu.Lock(); defer r1.mu.Unlock(); return r1.eor[nh] })
	time.Sleep(200 * time.Millisecond)
	if _, ok := r1.has("192.0.2.0/24"); ok {
		t.Error("a prefix outside the pools was exported")
	}
	st := s1.Status(ctx)
	if len(st.Peers4) != 1 || st.Peers4[0].State != "up" || st.Peers4[0].Info != "Established" ||
		st.Peers4[0].Type != bgpstatus.PeerTypeMesh || st.RouterID != "10.0.0.1" || st.ASNumber != 64512 {
		t.Errorf("status %+v", st)
	}

	// Adding a peer and renaming the existing one leaves its session alone.
	before := uptime(t, s1, "127.0.0.1")
	time.Sleep(1100 * time.Millisecond)
	renamed := peer1
	renamed.Name, renamed.Type = "Node_x", bgpconfig.PeerTypeNode
	dead := bgpconfig.Peer{Name: "dead", Address: "127.0.0.9", ASNumber: 65009, RestartTime: 120}
	if _, err := s1.SetPeers(ctx, []bgpconfig.Peer{renamed, dead}); err != nil {
		t.Fatal(err)
	}
	if after := uptime(t, s1, "127.0.0.1"); !after.Equal(before) {
		t.Errorf("unchanged session was reset: uptime %v -> %v", before, after)
	}
	// An import rule changes only the policy: a soft reset in drops the
	// route without touching the session.
	renamed.ImportRules = []bgpconfig.FilterRule{{Filter: "f", CIDR: "10.65.2.0/26", MatchOperator: bgpconfig.MatchEqual, Action: bgpconfig.ActionReject}}
	if err := s1.SetPolicy(ctx, pools, []bgpconfig.Peer{renamed, dead}); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.SetPeers(ctx, []bgpconfig.Peer{renamed, dead}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route rejected on import", func() bool { _, ok := r1.has("10.65.2.0/26"); return !ok })
	if after := uptime(t, s1, "127.0.0.1"); !after.Equal(before) {
		t.Errorf("session reset by an import rule: uptime %v -> %v", before, after)
	}
	renamed.ImportRules = nil
	if err := s1.SetPolicy(ctx, pools, []bgpconfig.Peer{renamed, dead}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route accepted again", func() bool { _, ok := r1.has("10.65.2.0/26"); return ok })
	st = s1.Status(ctx)
	if len(st.Peers4) != 2 || st.Peers4[0].Type != bgpstatus.PeerTypeNode || st.Peers4[1].State != "start" {
		t.Errorf("status after change %+v", st)
	}

	// An export rule on s2 withdraws the route from s1, and its removal
	// sends it again; the session stays.
	peer2.ExportRules = []bgpconfig.FilterRule{{Filter: "f", CIDR: "10.65.2.0/26", MatchOperator: bgpconfig.MatchEqual, Action: bgpconfig.ActionReject}}
	if err := s2.SetPolicy(ctx, pools, []bgpconfig.Peer{peer2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route withdrawn by an export rule", func() bool { _, ok := r1.has("10.65.2.0/26"); return !ok })
	peer2.ExportRules = nil
	if err := s2.SetPolicy(ctx, pools, []bgpconfig.Peer{peer2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route sent again", func() bool { _, ok := r1.has("10.65.2.0/26"); return ok })
	if after := uptime(t, s1, "127.0.0.1"); !after.Equal(before) {
		t.Errorf("session reset by an export rule: uptime %v -> %v", before, after)
	}
	// The generation stamp never leaves s2.
	_ = s1.bgp.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_IN, Name: "127.0.0.1", Family: family(nh)}, func(d *api.Destination) {
		for _, p := range d.Paths {
			for _, a := range p.Pattrs {
				if strings.Contains(a.GetTypeUrl(), "LargeCommunities") {
					t.Errorf("a path from s2 carries large communities: %v", p)
				}
			}
		}
	})

	if err := s2.Withdraw(ctx, netip.MustParsePrefix("10.65.2.0/26")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "withdrawal reaches s1", func() bool { _, ok := r1.has("10.65.2.0/26"); return !ok })
	if err := s2.Withdraw(ctx, netip.MustParsePrefix("10.99.0.0/16")); err != nil {
		t.Errorf("withdrawing what was never advertised: %v", err)
	}
	if got := s2.Advertised(); len(got) != 1 {
		t.Errorf("advertised %v", got)
	}
}

// TestRemovedSessionDrains: a removed session keeps running while a route
// is learned only over it, until DrainTimeout; one that carries nothing
// learned elsewhere goes at once.
func TestRemovedSessionDrains(t *testing.T) {
	ctx := context.Background()
	p1, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s1 := New(Options{ConnectRetry: time.Second, DrainTimeout: 300 * time.Millisecond, Log: quietLog()})
	t.Cleanup(s1.Stop)
	if err := s1.Start(ctx, Global{ASNumber: 64512, RouterID: "10.0.0.1", ListenPort: int32(p1), ListenAddresses: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	r1 := &recorder{best: map[netip.Prefix]Path{}, eor: map[netip.Addr]bool{}}
	wctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := s1.Watch(wctx, r1.on); err != nil {
		t.Fatal(err)
	}
	s2, _ := startSpeaker(t, "10.0.0.2", p2)
	pools := []bgpconfig.Pool{{CIDR: "10.65.0.0/16", Export: true}}
	peer1 := bgpconfig.Peer{Name: "to-s2", Address: "127.0.0.1", Port: uint16(p2), ASNumber: 64512, Passive: true, RestartTime: 120}
	peer2 := bgpconfig.Peer{Name: "to-s1", Address: "127.0.0.1", Port: uint16(p1), ASNumber: 64512, RestartTime: 120}
	for _, x := range []struct {
		s *Speaker
		p bgpconfig.Peer
	}{{s1, peer1}, {s2, peer2}} {
		if err := x.s.SetPolicy(ctx, pools, []bgpconfig.Peer{x.p}); err != nil {
			t.Fatal(err)
		}
		if _, err := x.s.SetPeers(ctx, []bgpconfig.Peer{x.p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.Advertise(ctx, netip.MustParsePrefix("10.65.2.0/26"), mustAddr("127.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "s1 learns s2's block", func() bool { _, ok := r1.has("10.65.2.0/26"); return ok })

	if _, err := s1.SetPeers(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if len(s1.Peers()) != 0 || !s1.Draining() {
		t.Fatalf("peers %v, draining %v", s1.Peers(), s1.Draining())
	}
	if more, err := s1.Drain(ctx); err != nil || !more {
		t.Fatalf("a session with the only path to a prefix was removed at once (more %v, %v)", more, err)
	}
	if _, ok := r1.has("10.65.2.0/26"); !ok {
		t.Fatal("the draining session's route is gone")
	}
	eventually(t, "drain timeout", func() bool {
		more, err := s1.Drain(ctx)
		return err == nil && !more
	})
	eventually(t, "route gone with the session", func() bool { _, ok := r1.has("10.65.2.0/26"); return !ok })
	if s1.Draining() {
		t.Error("still draining")
	}
}
