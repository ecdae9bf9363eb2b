package speaker

import (
	"context"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/libcalico/testutil"
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
		if err := x.s.SetPeers(ctx, []bgpconfig.Peer{x.p}); err != nil {
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
	if err := s1.SetPeers(ctx, []bgpconfig.Peer{renamed, dead}); err != nil {
		t.Fatal(err)
	}
	if after := uptime(t, s1, "127.0.0.1"); !after.Equal(before) {
		t.Errorf("unchanged session was reset: uptime %v -> %v", before, after)
	}
	// An import rule changes only the policy: a soft reset in drops the
	// route without touching the session. (Export rule changes reset the
	// session, see TestExportChanged; doing that here would trip a data
	// race inside gobgp between its watcher and a re-established FSM.)
	renamed.ImportRules = []bgpconfig.FilterRule{{Filter: "f", CIDR: "10.65.2.0/26", MatchOperator: bgpconfig.MatchEqual, Action: bgpconfig.ActionReject}}
	if err := s1.SetPolicy(ctx, pools, []bgpconfig.Peer{renamed, dead}); err != nil {
		t.Fatal(err)
	}
	if err := s1.SetPeers(ctx, []bgpconfig.Peer{renamed, dead}); err != nil {
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

func TestExportChanged(t *testing.T) {
	s := &Speaker{peers: map[netip.Addr]peerState{}}
	a := bgpconfig.Peer{Address: "10.0.0.1", ASNumber: 1}
	b := bgpconfig.Peer{Address: "10.0.0.2", ASNumber: 1}
	s.peers[mustAddr("10.0.0.1")] = peerState{cfg: a}
	if got := s.exportChanged([]bgpconfig.Peer{a, b}); got != nil {
		t.Fatalf("first call: %v", got)
	}
	a2, b2 := a, b
	a2.ExportRules = []bgpconfig.FilterRule{{Action: bgpconfig.ActionReject}}
	b2.NextHop = bgpconfig.NextHopSelf
	a2.ImportRules = []bgpconfig.FilterRule{{Action: bgpconfig.ActionReject}}
	// b is not a configured session yet: nothing to reset there.
	if got := s.exportChanged([]bgpconfig.Peer{a2, b2}); len(got) != 1 || got[0] != "10.0.0.1" {
		t.Fatalf("changed = %v", got)
	}
	if got := s.exportChanged([]bgpconfig.Peer{a2, b2}); got != nil {
		t.Fatalf("unchanged = %v", got)
	}
}
