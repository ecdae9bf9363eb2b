package daemon

import (
	"context"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
	"github.com/calico-etcd/calico/testutil"
)

func testLog(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return logrus.NewEntry(l).WithField("test", t.Name())
}

type env struct {
	cfg Config
	c   *client.Client
}

func setup(t *testing.T) env {
	t.Helper()
	etcd := testutil.StartEtcd(t)
	dir := t.TempDir()
	apicfg := filepath.Join(dir, "calicoctl.cfg")
	data := "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: " + etcd.Endpoint + "\n"
	if err := os.WriteFile(apicfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := apiconfig.Load(apicfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewFromSpec(spec, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return env{c: c, cfg: Config{
		NodeName:        "node-a",
		NodenameFile:    filepath.Join(dir, "nodename"),
		DatastoreConfig: apicfg,
		RunDir:          filepath.Join(dir, "run"),
		SecretsDir:      filepath.Join(dir, "secrets"),
		Register:        true,
		Node:            nodeinfo.Options{IPv4: "172.31.255.11/24", ASNumber: "65001"},
	}}
}

func (e env) create(t *testing.T, rs ...v3.Resource) {
	t.Helper()
	for _, r := range rs {
		if _, err := e.c.Create(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func node(name, ip string) *v3.Node {
	n := v3.NewNode()
	n.Name = name
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: ip}
	return n
}

func pool(name, cidr string) *v3.IPPool {
	p := v3.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	return p
}

func affinity(t *testing.T, be backend.Client, host, cidr string) {
	t.Helper()
	kv := &backend.KVPair{
		Key:   model.BlockAffinityKey{Host: host, CIDR: netip.MustParsePrefix(cidr)},
		Value: []byte(`{"state":"confirmed","deleted":false}`),
	}
	if _, err := be.Create(context.Background(), kv); err != nil {
		t.Fatal(err)
	}
}

func TestOneTimeRegistersAndRenders(t *testing.T) {
	e := setup(t)
	e.create(t, node("node-b", "172.31.255.12/24"), pool("p", "10.65.0.0/16"))
	affinity(t, e.c.Backend(), "node-a", "10.65.1.0/26")
	affinity(t, e.c.Backend(), "node-b", "10.65.2.0/26")
	e.cfg.OneTime = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Run(ctx, e.cfg, testLog(t)); err != nil {
		t.Fatal(err)
	}
	cfg, err := bgpconfig.Load(filepath.Join(e.cfg.RunDir, bgpconfig.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ASNumber != 65001 || cfg.RouterID != "172.31.255.11" || len(cfg.Peers) != 1 || cfg.Peers[0].Address != "172.31.255.12" {
		t.Fatalf("rendered %+v", cfg)
	}
	if len(cfg.Blocks) != 1 || cfg.Blocks[0].CIDR != "10.65.1.0/26" || !cfg.Blocks[0].Export {
		t.Fatalf("blocks %+v", cfg.Blocks)
	}
	n, err := e.c.Nodes().Get(ctx, "", "node-a")
	if err != nil || n.Spec.BGP.IPv4Address != "172.31.255.11/24" {
		t.Fatalf("registered node %+v, %v", n.Spec.BGP, err)
	}
	if data, _ := os.ReadFile(e.cfg.NodenameFile); string(data) != "node-a\n" {
		t.Fatalf("nodename file %q", data)
	}
}

func TestFollowsChangesAndSignalsBgpd(t *testing.T) {
	e := setup(t)
	e.create(t, node("node-b", "172.31.255.12/24"))
	// This test process plays bgpd: its pid in the pidfile, under its own name.
	hup := make(chan os.Signal, 8)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := os.MkdirAll(e.cfg.RunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pidfile := bgpconfig.PidfilePath(e.cfg.RunDir)
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	e.cfg.BgpdProcessName = selfComm(t) // only a process of that name is signalled
	notified := make(chan string, 4)
	e.cfg.Notify = func(s string) { notified <- s }
	go func() { done <- Run(ctx, e.cfg, testLog(t)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	path := filepath.Join(e.cfg.RunDir, bgpconfig.FileName)
	waitFor(t, "first render", func() bool {
		c, err := bgpconfig.Load(path)
		return err == nil && len(c.Peers) == 1
	})
	waitSignal(t, hup)
	select {
	case s := <-notified:
		if s != "READY=1" {
			t.Fatalf("first systemd notification %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no READY=1")
	}

	e.create(t, node("node-c", "172.31.254.10/24"))
	waitFor(t, "second peer", func() bool {
		c, err := bgpconfig.Load(path)
		// Passive towards the higher address (as a string): .12, not 254.10.
		return err == nil && len(c.Peers) == 2 && !c.Peers[0].Passive && c.Peers[1].Passive
	})
	waitSignal(t, hup)

	// A change that does not alter the output writes nothing and sends no signal.
	n, err := e.c.Nodes().Get(context.Background(), "", "node-c")
	if err != nil {
		t.Fatal(err)
	}
	n.Labels = map[string]string{"unrelated": "label"}
	if _, err := e.c.Nodes().Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hup:
		t.Fatal("signalled for an unchanged config")
	case <-time.After(300 * time.Millisecond):
	}
}

func selfComm(t *testing.T) string {
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return string(comm[:len(comm)-1])
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitSignal(t *testing.T, ch <-chan os.Signal) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("bgpd was not signalled")
	}
}
