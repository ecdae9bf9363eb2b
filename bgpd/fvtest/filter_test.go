package fvtest

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// filterLab is h1 and h2 in a mesh, both peering with a BIRD ToR through
// a global BGPPeer with the BGPFilter "tor". The ToR's address
// 203.0.113.1 sits behind its announced 203.0.113.0/24.
func filterLab(t testing.TB, filter *v3.BGPFilter) (*lab, *host, *host, *birdPeer) {
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	torNS := l.newNS()
	l.plug(torNS, "eth0", "br0", "172.31.255.2/24")
	sh(t, torNS, "ip addr add 203.0.113.1/32 dev lo")
	tor := l.startBird("tor", torNS, torBirdConfig("h1=172.31.255.11", "h2=172.31.255.12"))
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	peer := v3.NewBGPPeer()
	peer.Name = "tor"
	peer.Spec.PeerIP = "172.31.255.2"
	peer.Spec.ASNumber = 65001
	peer.Spec.Filters = []string{filter.Name}
	l.create(filter, peer)
	h1.start()
	h2.start()
	global, mesh := bgpstatus.PeerTypeGlobal, bgpstatus.PeerTypeMesh
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.2": global, "172.31.255.12": mesh})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.2": global, "172.31.255.11": mesh})
	tor.waitEstablished(t, 30*time.Second, "h1", "h2")
	return l, h1, h2, tor
}

// waitRoute waits until BIRD has (or has no) route to prefix.
func (b *birdPeer) waitRoute(t testing.TB, prefix string, present bool) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%s present=%v in BIRD", prefix, present), func() error {
		out, err := b.birdc("show", "route")
		if err != nil {
			return err
		}
		if strings.Contains(out, prefix+" ") != present {
			return fmt.Errorf("BIRD table:\n%s", out)
		}
		return nil
	})
}

// sessionSince returns the since column of every session of the hosts
// and of BIRD's protocols, to show that none was reset.
func sessionSince(t testing.TB, tor *birdPeer, hosts ...*host) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range hosts {
		st, err := h.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range slices.Concat(st.Peers4, st.Peers6) {
			out[h.name+"->"+p.Address] = p.State + " " + p.Since
		}
	}
	protos, err := tor.birdc("show", "protocols")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(protos, "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[1] == "BGP" {
			out["tor->"+f[0]] = strings.Join(f[3:], " ")
		}
	}
	return out
}

func editFilter(t testing.TB, l *lab, name string, edit func(*v3.BGPFilter)) {
	t.Helper()
	f, err := l.c.BGPFilters().Get(context.Background(), "", name)
	if err != nil {
		t.Fatal(err)
	}
	edit(f)
	if _, err := l.c.BGPFilters().Update(context.Background(), f); err != nil {
		t.Fatal(err)
	}
}

// TestBGPFilterEditWithoutSessionReset: BGPFilter edits apply to live
// sessions by soft reconfiguration, as BIRD applies a changed filter: an
// export rule that starts rejecting a route withdraws it from the peer, one
// that stops rejecting it advertises it again, an import rule drops a
// route already learned; no session is reset, and a ping stream between
// the ToR and a pod (both unaffected by the rules) loses nothing. The
// routes BIRD gets carry no attribute of bgpd's own bookkeeping (the
// large community that stamps each path with its policy generation).
func TestBGPFilterEditWithoutSessionReset(t *testing.T) {
	filter := v3.NewBGPFilter()
	filter.Name = "tor"
	filter.Spec.ExportV4 = []v3.BGPFilterRuleV4{{Action: v3.BGPFilterActionReject, MatchOperator: v3.MatchOperatorIn, CIDR: "10.65.9.0/24"}}
	l, h1, h2, tor := filterLab(t, filter)
	w1 := h1.addWorkload("10.65.1.5")
	h2.addWorkload("10.65.2.5")
	tor.waitRoute(t, "10.65.1.0/26", true)
	tor.waitRoute(t, "10.65.2.0/26", true)
	waitRoutes(t, 20*time.Second, map[*host][]want{
		h1: {{dst: "203.0.113.0/24", gw: "172.31.255.2"}, {dst: "198.51.100.0/24", gw: "172.31.255.2"}},
		h2: {{dst: "198.51.100.0/24", gw: "172.31.255.2"}},
	})
	waitFor(t, 20*time.Second, "ToR reaches the pod", func() error {
		return dialFrom(tor.ns, netip.AddrPortFrom(w1.ip, echoPort))
	})

	before := sessionSince(t, tor, h1, h2)
	time.Sleep(1100 * time.Millisecond) // since has a one-second resolution
	pings := startPings(t, tor.ns, netip.MustParseAddr("203.0.113.1"), w1.ip, 10*time.Millisecond)

	// An export rule now rejects h2's block: withdrawn from the ToR by
	// both hosts (h1 passes on what it learned from h2).
	reject := v3.BGPFilterRuleV4{Action: v3.BGPFilterActionReject, MatchOperator: v3.MatchOperatorEqual, CIDR: "10.65.2.0/26"}
	editFilter(t, l, "tor", func(f *v3.BGPFilter) { f.Spec.ExportV4 = append(f.Spec.ExportV4, reject) })
	tor.waitRoute(t, "10.65.2.0/26", false)
	// An import rule drops a route the hosts already learned.
	editFilter(t, l, "tor", func(f *v3.BGPFilter) {
		f.Spec.ImportV4 = []v3.BGPFilterRuleV4{{Action: v3.BGPFilterActionReject, MatchOperator: v3.MatchOperatorEqual, CIDR: "198.51.100.0/24"}}
	})
	waitFor(t, 20*time.Second, "198.51.100.0/24 dropped on import", func() error {
		for _, h := range []*host{h1, h2} {
			if err := h.noRoute("198.51.100.0/24"); err != nil {
				return err
			}
		}
		return nil
	})
	// The export rule goes again: h2's block is advertised again.
	editFilter(t, l, "tor", func(f *v3.BGPFilter) { f.Spec.ExportV4 = f.Spec.ExportV4[:1] })
	tor.waitRoute(t, "10.65.2.0/26", true)
	tor.waitRoute(t, "10.65.1.0/26", true)
	time.Sleep(time.Second) // the stream goes on a little after the last edit

	sent, lost := pings.stop()
	t.Logf("ToR -> pod: %d pings at 10ms during three filter edits, %d lost", sent, lost)
	if lost != 0 {
		t.Errorf("%d of %d pings lost during filter edits", lost, sent)
	}
	if after := sessionSince(t, tor, h1, h2); !maps.Equal(before, after) {
		t.Errorf("sessions were reset by filter edits:\nbefore %v\nafter  %v", before, after)
	}
	out, err := tor.birdc("show", "route", "all")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "4294967294") || strings.Contains(out, "ext_community") {
		t.Errorf("routes reaching BIRD carry bgpd's generation stamp:\n%s", out)
	}
}
