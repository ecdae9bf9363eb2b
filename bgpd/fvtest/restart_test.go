package fvtest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/testutil"
)

// netlinkOf opens a netlink handle inside h's namespace.
func netlinkOf(t testing.TB, h *host) *netlink.Handle {
	t.Helper()
	nh, err := netlink.NewHandleAt(netns.NsHandle(int(h.ns.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

// hasRoute reports whether the main table has a protocol-12 route to dst.
func hasRoute(nh *netlink.Handle, dst netip.Prefix) bool {
	ipn := &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}
	rs, err := nh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipn, Table: unix.RT_TABLE_MAIN, Protocol: 12},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	return err == nil && len(rs) > 0
}

// monitor checks routes every 20ms until stopped and records every miss.
type monitor struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	misses []string
	checks int
}

func watchRoutes(t testing.TB, want map[*host][]string) *monitor {
	m := &monitor{stop: make(chan struct{})}
	for h, dsts := range want {
		m.watch(netlinkOf(t, h), h.name, dsts)
	}
	return m
}

// watchRoutesIn checks protocol-12 routes in any namespace (say, BIRD's
// kernel routes on a ToR).
func watchRoutesIn(t testing.TB, ns *testutil.NetNS, name string, dsts []string) *monitor {
	nh, err := netlink.NewHandleAt(netns.NsHandle(int(ns.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	m := &monitor{stop: make(chan struct{})}
	m.watch(nh, name, dsts)
	return m
}

func (m *monitor) watch(nh *netlink.Handle, name string, dsts []string) {
	m.wg.Go(func() {
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, d := range dsts {
				ok := hasRoute(nh, netip.MustParsePrefix(d))
				m.mu.Lock()
				m.checks++
				if !ok {
					m.misses = append(m.misses, fmt.Sprintf("%s %s missing at %s", name, d, time.Now().Format("15:04:05.000")))
				}
				m.mu.Unlock()
			}
		}
	})
}

func (m *monitor) finish() (checks int, misses []string) {
	close(m.stop)
	m.wg.Wait()
	return m.checks, m.misses
}

// TestGracefulRestart stops h1's bgpd (SIGTERM) and starts it again. While
// it is down its peers keep its routes (they are graceful restart
// helpers) and h1 keeps the routes it learned; traffic keeps flowing. After
// the restart, a route withdrawn while h1 was down is swept from h1 once
// its peers have resent their tables.
func TestGracefulRestart(t *testing.T) {
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	h3 := l.addHost("h3", "a", "172.31.255.13")
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	l.affinity("h3", "10.65.3.0/26")
	for _, h := range l.hosts {
		h.start()
	}
	w1 := h1.addWorkload("10.65.1.5")
	h1.addWorkload("10.65.2.50") // borrowed: h1 advertises the /32
	w2 := h2.addWorkload("10.65.2.5")
	w2b := h2.addWorkload("10.65.1.50") // borrowed: removed while h1's bgpd is down
	w3 := h3.addWorkload("10.65.3.5")

	waitRoutes(t, 30*time.Second, map[*host][]want{
		h1: {{dst: "10.65.2.0/26", gw: "172.31.255.12"}, {dst: "10.65.3.0/26", gw: "172.31.255.13"}, {dst: "10.65.1.50/32", gw: "172.31.255.12"}},
		h2: {{dst: "10.65.1.0/26", gw: "172.31.255.11"}, {dst: "10.65.2.50/32", gw: "172.31.255.11"}},
		h3: {{dst: "10.65.1.0/26", gw: "172.31.255.11"}, {dst: "10.65.2.50/32", gw: "172.31.255.11"}},
	})
	mesh := bgpstatus.PeerTypeMesh
	h1peers := map[string]string{"172.31.255.12": mesh, "172.31.255.13": mesh}
	h1.waitEstablished(t, 20*time.Second, h1peers)
	reaches(t, w2, w1)

	mon := watchRoutes(t, map[*host][]string{
		h1: {"10.65.1.0/26", "10.65.2.0/26", "10.65.3.0/26"},
		h2: {"10.65.1.0/26", "10.65.2.50/32"},
		h3: {"10.65.1.0/26", "10.65.2.50/32"},
	})
	h1.bgpd.stop(syscall.SIGTERM)
	if h1.bgpd.running() {
		t.Fatal("bgpd did not stop on SIGTERM")
	}
	w2b.remove() // h2 withdraws 10.65.1.50/32; h1 is not listening
	down := time.Now()
	for time.Since(down) < 3*time.Second {
		for _, pair := range [][2]*workload{{w2, w1}, {w3, w1}, {w1, w2}} {
			if err := dialFrom(pair[0].ns, netip.AddrPortFrom(pair[1].ip, echoPort)); err != nil {
				t.Errorf("traffic %s -> %s during restart: %v", pair[0].ip, pair[1].ip, err)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := h1.routeIs(want{dst: "10.65.1.50/32", gw: "172.31.255.12"}); err != nil {
		t.Errorf("h1 lost a learned route while bgpd was down: %v", err)
	}

	h1.startBgpd()
	h1.waitEstablished(t, 30*time.Second, h1peers)
	waitFor(t, 30*time.Second, "stale route swept from h1", func() error { return h1.noRoute("10.65.1.50/32") })
	checks, misses := mon.finish()
	if len(misses) > 0 {
		t.Errorf("routes disappeared during the restart (%d of %d checks):\n%v", len(misses), checks, misses[:min(len(misses), 10)])
	}
	t.Logf("%d route checks during the restart, none missing", checks)
	waitRoutes(t, 10*time.Second, map[*host][]want{
		h1: {{dst: "10.65.2.0/26", gw: "172.31.255.12"}, {dst: "10.65.3.0/26", gw: "172.31.255.13"}},
		h2: {{dst: "10.65.1.0/26", gw: "172.31.255.11"}, {dst: "10.65.2.50/32", gw: "172.31.255.11"}},
	})
	reaches(t, w3, w1)
	reaches(t, w1, w2)
}

// gobgpdConfig is a gobgpd peer without graceful restart: it never sends
// End-of-RIB.
const gobgpdConfig = `[global.config]
  as = 65002
  router-id = "172.31.255.3"
  local-address-list = ["172.31.255.3"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "172.31.255.11"
    peer-as = 64512
`

// TestStaleRouteSweptWithNonGRPeer: h1 peers with h2 (graceful restart)
// and with a gobgpd that has no graceful restart. A route h2 withdraws
// while h1's bgpd is down must leave h1 once h2 has resent its table: only
// peers that negotiated graceful restart are waited for, since the others
// never send End-of-RIB. (The sweep timeout is long here, so only that
// rule can remove the route.)
func TestStaleRouteSweptWithNonGRPeer(t *testing.T) {
	gobgpd := sbin("gobgpd")
	if gobgpd == "" {
		t.Fatal("gobgpd is needed (Debian package gobgpd; .ci/install-deps installs it)")
	}
	l, h1, h2 := twoHosts(t)
	peerNS := l.newNS()
	l.plug(peerNS, "eth0", "br0", "172.31.255.3/24")
	conf := filepath.Join(l.dir, "gobgpd.toml")
	if err := os.WriteFile(conf, []byte(gobgpdConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	l.spawn("gobgpd", peerNS, gobgpd, "-f", conf, "--api-hosts", "127.0.0.1:50051", "--log-level", "debug")
	peer := v3.NewBGPPeer()
	peer.Name = "non-gr"
	peer.Spec.Node = "h1"
	peer.Spec.PeerIP = "172.31.255.3"
	peer.Spec.ASNumber = 65002
	l.create(peer)
	h1.startConfd()
	h1.startBgpd("--sweep-timeout", "10m")
	h2.start()
	h2.addWorkload("10.65.2.5")
	w2b := h2.addWorkload("10.65.1.50") // borrowed from h1's block: h2 advertises the /32

	peers := map[string]string{"172.31.255.12": bgpstatus.PeerTypeMesh, "172.31.255.3": bgpstatus.PeerTypeNode}
	h1.waitEstablished(t, 30*time.Second, peers)
	waitRoutes(t, 20*time.Second, map[*host][]want{h1: {{dst: "10.65.1.50/32", gw: "172.31.255.12"}, {dst: "10.65.2.0/26", gw: "172.31.255.12"}}})

	h1.bgpd.stop(syscall.SIGTERM)
	w2b.remove()
	h1.startBgpd("--sweep-timeout", "10m")
	h1.waitEstablished(t, 30*time.Second, peers)
	waitFor(t, 30*time.Second, "stale route swept from h1", func() error { return h1.noRoute("10.65.1.50/32") })
	if err := h1.routeIs(want{dst: "10.65.2.0/26", gw: "172.31.255.12"}); err != nil {
		t.Error(err)
	}
}
