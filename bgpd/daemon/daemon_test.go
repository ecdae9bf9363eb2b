package daemon

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/bgpd/kernelwatch"
	"github.com/calico-etcd/calico/bgpd/routetable"
	"github.com/calico-etcd/calico/bgpd/speaker"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/testutil"
)

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return logrus.NewEntry(l)
}

func writeConfig(t *testing.T, path string, c *bgpconfig.Config) {
	t.Helper()
	data, err := bgpconfig.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// peerRIB records what a test speaker learns.
type peerRIB struct {
	mu   sync.Mutex
	best map[netip.Prefix]speaker.Path
}

func (r *peerRIB) on(ev speaker.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ev.Paths {
		if p.Withdrawn || p.Local() {
			delete(r.best, p.Prefix)
		} else {
			r.best[p.Prefix] = p
		}
	}
}

func (r *peerRIB) has(p string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.best[netip.MustParsePrefix(p)]
	return ok
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

// TestDaemon runs the daemon loop with a fake kernel and a real gobgp peer
// in this process.
func TestDaemon(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	myPort, _ := testutil.FreePort()
	peerPort, _ := testutil.FreePort()
	cfgPath := filepath.Join(dir, bgpconfig.FileName)
	conf := &bgpconfig.Config{
		Version: bgpconfig.FormatVersion, NodeName: "a", RouterID: "10.0.0.1", ASNumber: 64512,
		ListenPort: uint16(myPort), ListenAddresses: []string{"127.0.0.1"}, NodeIPv4: "127.0.0.1/8",
		Peers: []bgpconfig.Peer{{Name: "Mesh_b", Address: "127.0.0.1", Port: uint16(peerPort), ASNumber: 64512,
			Type: bgpconfig.PeerTypeMesh, RestartTime: 120}},
		Pools:  []bgpconfig.Pool{{CIDR: "10.65.0.0/16", Export: true}},
		Blocks: []bgpconfig.Block{{CIDR: "10.65.1.0/26", Export: true}},
	}
	writeConfig(t, cfgPath, conf)

	fake := routetable.NewFake()
	fake.Connected[netip.MustParsePrefix("127.0.0.0/8")] = "lo"
	stale := netip.MustParsePrefix("10.65.9.0/26")
	fake.Put(DefaultRouteProtocol, routetable.Route{Dst: stale, Gw: netip.MustParseAddr("127.0.0.9"), Dev: "lo"})
	kernel := make(chan []kernelwatch.Event, 8)
	kernel <- []kernelwatch.Event{
		{Dst: netip.MustParsePrefix("10.65.2.7/32"), Iface: "cali1"}, // borrowed: advertised
		{Dst: netip.MustParsePrefix("10.65.1.5/32"), Iface: "cali2"}, // inside our block: not
		{Dst: netip.MustParsePrefix("10.65.2.9/32"), Iface: "eth0"},  // not a workload
	}
	watch := func(ctx context.Context, out chan<- []kernelwatch.Event) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case b := <-kernel:
				out <- b
			}
		}
	}
	cfg := Config{RunDir: dir, ConnectRetry: time.Second, ConfigPollInterval: time.Hour, ResyncInterval: time.Hour, SweepTimeout: time.Minute, StopSessionsOnExit: true}
	var notes []string
	var notesMu sync.Mutex
	cfg.Notify = func(s string) { notesMu.Lock(); notes = append(notes, s); notesMu.Unlock() }
	cfg = cfg.WithDefaults()
	reload := make(chan struct{}, 1)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	// The peer: a plain speaker that advertises one block. gobgp keeps
	// route selection options in package globals that StartBgp writes,
	// so the peer starts first, with no route yet: the daemon's speaker
	// computes best paths as soon as it has started.
	peer := speaker.New(speaker.Options{ConnectRetry: time.Second, Log: quiet()})
	t.Cleanup(peer.Stop)
	if err := peer.Start(ctx, speaker.Global{ASNumber: 64512, RouterID: "10.0.0.2", ListenPort: int32(peerPort), ListenAddresses: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	go func() { done <- run(rctx, cfg, reload, quiet(), fake, watch) }()
	eventually(t, "daemon's speaker started", func() bool {
		st, err := bgpstatus.NewClient(filepath.Join(dir, bgpstatus.SocketName)).Status(ctx)
		return err == nil && st.RouterID == "10.0.0.1"
	})
	rib := &peerRIB{best: map[netip.Prefix]speaker.Path{}}
	wctx, wcancel := context.WithCancel(ctx)
	t.Cleanup(wcancel)
	if err := peer.Watch(wctx, rib.on); err != nil {
		t.Fatal(err)
	}
	back := bgpconfig.Peer{Name: "Mesh_a", Address: "127.0.0.1", Port: uint16(myPort), ASNumber: 64512, Passive: true, RestartTime: 120}
	pools := []bgpconfig.Pool{{CIDR: "10.65.0.0/16", Export: true}, {CIDR: "10.70.0.0/16", Export: true}}
	if err := peer.SetPolicy(ctx, pools, []bgpconfig.Peer{back}); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.SetPeers(ctx, []bgpconfig.Peer{back}); err != nil {
		t.Fatal(err)
	}
	if err := peer.Advertise(ctx, netip.MustParsePrefix("10.65.3.0/26"), netip.MustParseAddr("127.0.0.2"), nil); err != nil {
		t.Fatal(err)
	}

	eventually(t, "peer learns our block and borrowed route", func() bool { return rib.has("10.65.1.0/26") && rib.has("10.65.2.7/32") })
	if rib.has("10.65.1.5/32") || rib.has("10.65.2.9/32") {
		t.Error("advertised a route inside our block or through a non-workload interface")
	}
	eventually(t, "learned route programmed", func() bool {
		r, ok := fake.Get(DefaultRouteProtocol, netip.MustParsePrefix("10.65.3.0/26"))
		return ok && r.Gw == netip.MustParseAddr("127.0.0.2") && r.Dev == "lo"
	})
	if r, ok := fake.Get(DefaultRouteProtocol, netip.MustParsePrefix("10.65.1.0/26")); !ok || !r.Blackhole {
		t.Errorf("no blackhole for our block: %v", r)
	}
	eventually(t, "previous run's route swept after End-of-RIB", func() bool { _, ok := fake.Get(DefaultRouteProtocol, stale); return !ok })

	st, err := bgpstatus.NewClient(cfg.ControlSocket).Status(ctx)
	if err != nil || len(st.Peers4) != 1 || st.Peers4[0].Info != "Established" || st.RouterID != "10.0.0.1" {
		t.Errorf("status %+v, %v", st, err)
	}
	if data, _ := os.ReadFile(cfg.Pidfile); strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pidfile holds %q", data)
	}

	// A next hop the kernel cannot reach yet is retried until it can.
	if err := peer.Advertise(ctx, netip.MustParsePrefix("10.65.4.0/26"), netip.MustParseAddr("192.0.2.7"), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok := fake.Get(DefaultRouteProtocol, netip.MustParsePrefix("10.65.4.0/26")); ok {
		t.Error("route with an unreachable next hop programmed")
	}
	fake.SetConnected(netip.MustParsePrefix("192.0.2.0/24"), "eth1")
	eventually(t, "route programmed once its next hop is reachable", func() bool {
		r, ok := fake.Get(DefaultRouteProtocol, netip.MustParsePrefix("10.65.4.0/26"))
		return ok && r.Dev == "eth1"
	})

	// Workload routes come and go.
	kernel <- []kernelwatch.Event{{Dst: netip.MustParsePrefix("10.65.2.8/32"), Iface: "cali3"}}
	eventually(t, "new workload advertised", func() bool { return rib.has("10.65.2.8/32") })
	kernel <- []kernelwatch.Event{{Dst: netip.MustParsePrefix("10.65.2.8/32"), Iface: "cali3", Deleted: true}}
	eventually(t, "removed workload withdrawn", func() bool { return !rib.has("10.65.2.8/32") })

	// Reload: a new IPIP pool, and the block leaves.
	conf.Pools = append(conf.Pools, bgpconfig.Pool{CIDR: "10.70.0.0/16", Export: true, IPIPMode: "Always"})
	conf.Blocks = nil
	writeConfig(t, cfgPath, conf)
	reload <- struct{}{}
	if err := peer.Advertise(ctx, netip.MustParsePrefix("10.70.3.0/26"), netip.MustParseAddr("127.0.0.2"), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "IPIP route via the tunnel", func() bool {
		r, ok := fake.Get(DefaultRouteProtocol, netip.MustParsePrefix("10.70.3.0/26"))
		return ok && r.Dev == "tunl0" && r.OnLink
	})
	eventually(t, "block withdrawn and unblackholed", func() bool {
		_, ok := fake.Get(DefaultRouteProtocol, netip.MustParsePrefix("10.65.1.0/26"))
		return !rib.has("10.65.1.0/26") && !ok
	})
	if st2, _ := bgpstatus.NewClient(cfg.ControlSocket).Status(ctx); len(st2.Peers4) != 1 || st2.Peers4[0].Since != st.Peers4[0].Since {
		t.Errorf("session reset by a reload that did not change it: %+v -> %+v", st.Peers4, st2.Peers4)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	notesMu.Lock()
	if strings.Join(notes, ",") != "READY=1,STOPPING=1" {
		t.Errorf("systemd notifications %v", notes)
	}
	notesMu.Unlock()
	if _, err := os.Stat(cfg.Pidfile); !os.IsNotExist(err) {
		t.Errorf("pidfile left behind: %v", err)
	}
	if _, err := os.Stat(cfg.ControlSocket); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	// SIGTERM leaves the dataplane alone.
	if _, ok := fake.Get(DefaultRouteProtocol, netip.MustParsePrefix("10.65.3.0/26")); !ok {
		t.Error("learned route removed on stop")
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{RunDir: "/run/x"}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ConfigFile != "/run/x/bgpd.json" || c.ControlSocket != "/run/x/bgpd.ctl" || c.Pidfile != "/run/x/bgpd.pid" {
		t.Errorf("defaults %+v", c)
	}
	bad := c
	bad.ConfigFile, bad.RouteProtocol, bad.ConnectRetry = "relative", 300, -time.Second
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "relative") || !strings.Contains(err.Error(), "300") {
		t.Errorf("Validate = %v", err)
	}
}
