package fvtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

// nsPrefix names every namespace of these tests, so a killed run's
// leftovers can be swept without touching other packages' namespaces.
const nsPrefix = testutil.NetNSPrefix + "bgp"

// Addresses of the test topology (only ever inside the test's namespaces).
const (
	segA        = "172.31.255.0/24"
	segB        = "172.31.254.0/24"
	proxyAddr   = "172.31.255.254"
	routerAddrA = "172.31.255.1"
	routerAddrB = "172.31.254.1"
)

var bins struct{ confd, bgpd, calicoctl string }

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "fvtest: these tests build network namespaces and must run as root")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "bgpd-fvtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.confd = filepath.Join(dir, "calico-confd")
	bins.bgpd = filepath.Join(dir, "calico-bgpd")
	bins.calicoctl = filepath.Join(dir, "calicoctl")
	for _, b := range []struct{ out, moduleDir, pkg string }{
		{bins.confd, "../../confd", "./cmd/calico-confd"},
		{bins.bgpd, "..", "./cmd/calico-bgpd"},
		{bins.calicoctl, "../../calicoctl", "./cmd/calicoctl"},
	} {
		cmd := exec.Command(goTool(), "build", "-o", b.out, b.pkg)
		cmd.Dir = b.moduleDir
		// Static, as `make build` builds them (bgpd needs a runtime
		// without cgo to set its host name; see calico-bgpd).
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.pkg, err, out)
			os.Exit(1)
		}
	}
	_ = testutil.SweepNetNS(nsPrefix)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	//lint:ignore SA1019 a fallback only: the toolchain that built this test, when go is not on PATH
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// lab is one test's world: etcd, a bridge namespace with two segments, an
// optional router between them, and hosts.
type lab struct {
	t        testing.TB
	dir      string
	etcd     *testutil.Etcd
	c        *client.Client
	apicfg   string
	bridge   *testutil.NetNS
	router   *testutil.NetNS
	hosts    []*host
	procsMu  sync.Mutex
	procs    []*proc
	nsMu     sync.Mutex
	nss      []*testutil.NetNS
	nextVeth int
}

// newNS makes a namespace that the lab deletes after stopping every
// process, so cleanup order never depends on creation order.
func (l *lab) newNS() *testutil.NetNS {
	l.t.Helper()
	n, err := testutil.NewNetNSNamed(testutil.UniqueName(nsPrefix))
	if err != nil {
		l.t.Fatal(err)
	}
	l.nsMu.Lock()
	l.nss = append(l.nss, n)
	l.nsMu.Unlock()
	return n
}

// sh runs a command in ns and fails the test on error.
func sh(t testing.TB, ns *testutil.NetNS, cmd string, args ...any) string {
	t.Helper()
	line := fmt.Sprintf(cmd, args...)
	f := strings.Fields(line)
	out, err := ns.Output(f[0], f[1:]...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// sysctl sets "net.ipv4.x=v" values inside ns (writing /proc/sys from a
// thread in ns, which is what the sysctl tool does).
func sysctl(t testing.TB, ns *testutil.NetNS, kv ...string) {
	t.Helper()
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := ns.RunIn(func() error { return os.WriteFile(path, []byte(v), 0o644) }); err != nil {
			t.Fatalf("sysctl %s in %s: %v", s, ns.Name, err)
		}
	}
}

func newLab(t testing.TB, withRouter bool) *lab { return newLabOn(t, withRouter, nil) }

// newLabOn makes a lab whose datastore is cluster (reached by the daemons
// through one proxy per member in the bridge namespace), or the embedded
// test etcd when cluster is nil.
func newLabOn(t testing.TB, withRouter bool, cluster *testutil.EtcdCluster) *lab {
	t.Helper()
	l := &lab{t: t, dir: t.TempDir()}
	var be *client.Client
	var err error
	if cluster == nil {
		l.etcd = testutil.StartEtcd(t)
		be, err = client.NewFromSpec(&apiconfig.Spec{DatastoreType: "etcdv3", EtcdEndpoints: l.etcd.Endpoint}, 10*time.Second)
	} else {
		var raw *etcd.Client
		raw, err = etcd.New(etcd.Config{Endpoints: cluster.ClientURLs(), Dialer: cluster.DialContext, Timeout: 10 * time.Second})
		be = client.New(raw)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: logs, then processes, then
	// namespaces, then etcd.
	t.Cleanup(l.teardown)
	t.Cleanup(l.dumpLogsOnFailure)
	l.c = be
	t.Cleanup(func() { be.Close() })

	l.bridge = l.newNS()
	for _, br := range []string{"br0", "br1"} {
		sh(t, l.bridge, "ip link add %s type bridge", br)
		sh(t, l.bridge, "ip link set %s up", br)
	}
	sh(t, l.bridge, "ip addr add %s/24 dev br0", proxyAddr)
	var endpoints []string
	if cluster == nil {
		l.startEtcdProxy()
		u, _ := url.Parse(l.etcd.Endpoint)
		endpoints = []string{fmt.Sprintf("http://%s:%s", proxyAddr, u.Port())}
	} else if endpoints, err = cluster.Proxy(l.bridge, proxyAddr); err != nil {
		t.Fatal(err)
	}
	if withRouter {
		l.router = l.newNS()
		l.plug(l.router, "eth0", "br0", routerAddrA+"/24")
		l.plug(l.router, "eth1", "br1", routerAddrB+"/24")
		sysctl(t, l.router, "net.ipv4.ip_forward=1")
		sh(t, l.bridge, "ip route add %s via %s", segB, routerAddrA)
	}
	l.apicfg = filepath.Join(l.dir, "calicoctl.cfg")
	cfg := fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: %s\n",
		strings.Join(endpoints, ","))
	if err := os.WriteFile(l.apicfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// plug joins ns to a bridge with a veth named dev inside ns.
func (l *lab) plug(ns *testutil.NetNS, dev, br, addr string) {
	l.t.Helper()
	l.nextVeth++
	outer := fmt.Sprintf("v%d%s", l.nextVeth, br)
	sh(l.t, l.bridge, "ip link add %s type veth peer name %s netns %s", outer, dev, ns.Name)
	sh(l.t, l.bridge, "ip link set %s master %s up", outer, br)
	sh(l.t, ns, "ip addr add %s dev %s", addr, dev)
	sh(l.t, ns, "ip link set %s up", dev)
}

// startEtcdProxy listens on proxyAddr inside the bridge namespace and
// forwards to etcd on the root namespace's loopback.
func (l *lab) startEtcdProxy() {
	u, _ := url.Parse(l.etcd.Endpoint)
	var ln net.Listener
	err := l.bridge.RunIn(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(proxyAddr, u.Port()))
		return err
	})
	if err != nil {
		l.t.Fatalf("etcd proxy: %v", err)
	}
	l.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", u.Host)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
}

// host is one node: a namespace with eth0 on a segment and its daemons.
type host struct {
	l      *lab
	name   string
	ns     *testutil.NetNS
	ip     netip.Prefix
	ip6    netip.Prefix
	runDir string
	confd  *proc
	bgpd   *proc
	wls    int
}

// addHost makes a host on segment A ("a") or B ("b") with address ip/24.
func (l *lab) addHost(name, seg, ip string) *host {
	l.t.Helper()
	h := &host{l: l, name: name, ns: l.newNS(), ip: netip.MustParsePrefix(ip + "/24"), runDir: filepath.Join(l.dir, name)}
	br, gw := "br0", routerAddrA
	if seg == "b" {
		br, gw = "br1", routerAddrB
	}
	l.plug(h.ns, "eth0", br, h.ip.String())
	sysctl(l.t, h.ns, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	// A default route is also what makes proxy ARP answer workloads
	// asking for 169.254.1.1; without a router it points at the bridge.
	if l.router != nil {
		sh(l.t, h.ns, "ip route add default via %s", gw)
	} else {
		sh(l.t, h.ns, "ip route add default via %s", proxyAddr)
	}
	if err := os.MkdirAll(h.runDir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	l.hosts = append(l.hosts, h)
	return h
}

// addIPv6 gives h an IPv6 address on eth0 (no duplicate address
// detection, so BGP can bind it at once); confd registers it.
func (h *host) addIPv6(addr string) {
	h.l.t.Helper()
	h.ip6 = netip.MustParsePrefix(addr + "/64")
	sh(h.l.t, h.ns, "ip -6 addr add %s dev eth0 nodad", h.ip6)
	sysctl(h.l.t, h.ns, "net.ipv6.conf.all.forwarding=1")
}

// start runs calico-confd (registering the node with its address) and
// calico-bgpd.
func (h *host) start(extraConfdArgs ...string) {
	h.startConfd(extraConfdArgs...)
	h.startBgpd()
}

func (h *host) startConfd(extra ...string) {
	args := []string{
		"--config", h.l.apicfg, "--nodename", h.name, "--nodename-file", filepath.Join(h.runDir, "nodename"),
		"--run-dir", h.runDir, "--secrets-dir", filepath.Join(h.l.dir, "secrets"), "--ip", h.ip.String(),
		"--log-level", "debug",
	}
	if h.ip6.IsValid() {
		args = append(args, "--ip6", h.ip6.String())
	}
	args = append(args, extra...)
	h.confd = h.l.spawn(h.name+"-confd", h.ns, bins.confd, args...)
}

// startBgpd runs calico-bgpd; extra flags come last and so win.
func (h *host) startBgpd(extra ...string) {
	args := append([]string{"--run-dir", h.runDir, "--connect-retry", "1s", "--config-poll-interval", "2s",
		"--sweep-timeout", "60s", "--log-level", "debug"}, extra...)
	h.bgpd = h.l.spawn(h.name+"-bgpd", h.ns, bins.bgpd, args...)
}

// proc is a daemon running inside a namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (l *lab) spawn(name string, ns *testutil.NetNS, bin string, args ...string) *proc {
	l.t.Helper()
	logPath := filepath.Join(l.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // every setting is a flag
	if err := cmd.Start(); err != nil {
		f.Close()
		l.t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	l.procsMu.Lock()
	l.procs = append(l.procs, p)
	l.procsMu.Unlock()
	return p
}

// stop sends sig and waits (SIGKILL after 10s).
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// teardown stops every process, then deletes the namespaces.
func (l *lab) teardown() {
	l.stopAll()
	l.nsMu.Lock()
	defer l.nsMu.Unlock()
	for i := len(l.nss) - 1; i >= 0; i-- {
		l.nss[i].Delete()
	}
}

func (l *lab) stopAll() {
	l.procsMu.Lock()
	procs := l.procs
	l.procsMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(syscall.SIGTERM) })
	}
	wg.Wait()
}

func (l *lab) dumpLogsOnFailure() {
	if !l.t.Failed() && os.Getenv("FVTEST_LOGS") == "" {
		return
	}
	if d := os.Getenv("FVTEST_PAUSE_ON_FAILURE"); d != "" {
		pause, _ := time.ParseDuration(d)
		l.t.Logf("pausing %v for inspection; namespaces: bridge %s", pause, l.bridge.Name)
		for _, h := range l.hosts {
			l.t.Logf("host %s: %s", h.name, h.ns.Name)
		}
		time.Sleep(pause)
	}
	for _, p := range l.procs {
		data, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		l.t.Logf("---- last lines of %s ----\n%s", p.name, strings.Join(lines, "\n"))
	}
}

// Datastore helpers.

func (l *lab) create(rs ...v3.Resource) {
	l.t.Helper()
	for _, r := range rs {
		if _, err := l.c.Create(context.Background(), r); err != nil {
			l.t.Fatalf("creating %s %s: %v", r.GetTypeMeta().Kind, r.GetObjectMeta().Name, err)
		}
	}
}

func (l *lab) affinity(host, cidr string) {
	l.t.Helper()
	kv := &backend.KVPair{
		Key:   model.BlockAffinityKey{Host: host, CIDR: netip.MustParsePrefix(cidr)},
		Value: []byte(`{"state":"confirmed","deleted":false}`),
	}
	if _, err := l.c.Backend().Create(context.Background(), kv); err != nil {
		l.t.Fatal(err)
	}
}

func ipPool(name, cidr string) *v3.IPPool {
	p := v3.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	return p
}

// waitFor polls f until it returns nil or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var errNotYet = errors.New("not yet")
