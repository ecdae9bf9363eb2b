package acceptance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/testutil"

	"github.com/calico-etcd/calico/cni-plugin/internal/nettest"
)

// binDir holds the plugin binaries TestMain builds.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "calico-cni-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := buildPlugins(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if os.Getenv("CALICO_KEEP_PLUGIN_BINS") == "" { // set to profile them
		os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "plugin binaries kept in", dir)
	}
	os.Exit(code)
}

// buildPlugins builds ours from this module and the reference plugins
// from the module cache (they are in go.mod), without -race: the plugins
// are the system under test, not the test process. All are static, as
// both projects release them (and the Makefile builds ours). They are
// then copied into dir as `make install` and runtimes' installers do: a
// file the linker has just written runs measurably slower (its page
// cache is laid out differently), which would skew the benchmark.
func buildPlugins(dir string) error {
	stage, err := os.MkdirTemp("", "calico-cni-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	cmd := exec.Command("go", "build", "-tags", "grpcnotrace", "-o", stage+string(os.PathSeparator),
		"./cmd/calico", "./cmd/calico-direct", "./cmd/calico-ipam", "./cmd/calico-cni-agent",
		"github.com/containernetworking/plugins/plugins/meta/portmap",
		"github.com/containernetworking/plugins/plugins/main/ptp",
		"github.com/containernetworking/plugins/plugins/ipam/host-local",
	)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building plugins: %w\n%s", err, out)
	}
	ents, err := os.ReadDir(stage)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := installFile(filepath.Join(stage, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// installFile copies an executable, as install(1) does.
func installFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

const (
	nodeName = "node1"
	netName  = "net1"
	poolV4   = "10.65.0.0/16"
	poolV6   = "fd65::/64"
)

// hostEnv is one simulated host: its namespace, its etcd, a libcni with
// its own cache, and datastore clients for assertions.
type hostEnv struct {
	t    testing.TB
	ns   *testutil.NetNS
	etcd *testutil.Etcd
	dir  string
	cni  *libcni.CNIConfig
	be   *etcd.Client
	c    *client.Client
	ic   *ipam.Client
}

func newHost(t testing.TB) *hostEnv {
	t.Helper()
	testutil.RequireRoot(t)
	h := &hostEnv{t: t, ns: nettest.NewHost(t), dir: t.TempDir()}
	if err := h.ns.RunIn(func() (err error) {
		h.etcd, err = testutil.StartEtcdServer(filepath.Join(h.dir, "etcd"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.etcd.Stop() })
	fwd := newProxy(t, net.Listen, h.dialIn, strings.TrimPrefix(h.etcd.Endpoint, "http://"))
	var err error
	h.be, err = etcd.New(etcd.Config{Endpoints: []string{"http://" + fwd.Addr()}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.be.Close() })
	h.c = client.New(h.be)
	l := logrus.New()
	l.SetOutput(io.Discard)
	if h.ic, err = ipam.New(h.be, logrus.NewEntry(l), ipam.Options{}); err != nil {
		t.Fatal(err)
	}
	node := v3.NewNode()
	node.Name = nodeName
	if _, err := h.c.Nodes().Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	h.cni = libcni.NewCNIConfigWithCacheDir([]string{binDir}, filepath.Join(h.dir, "cni-cache"), nil)
	return h
}

// dialIn connects to addr from inside the host namespace.
func (h *hostEnv) dialIn(network, addr string) (c net.Conn, err error) {
	err = h.ns.RunIn(func() error {
		c, err = net.DialTimeout(network, addr, 2*time.Second)
		return err
	})
	return c, err
}

// listenIn listens inside the host namespace.
func (h *hostEnv) listenIn(network, addr string) (l net.Listener, err error) {
	err = h.ns.RunIn(func() error {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

func (h *hostEnv) addPool(name, cidr string, blockSize int) {
	h.t.Helper()
	p := v3.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	p.Spec.BlockSize = blockSize
	if _, err := h.c.IPPools().Create(context.Background(), p); err != nil {
		h.t.Fatal(err)
	}
}

// netConf holds the knobs of the calico plugin's configuration.
type netConf struct {
	version   string
	endpoint  string // etcd_endpoints; the host's etcd when empty
	ipv6      bool
	ipam      map[string]any // replaces the calico-ipam section
	portmap   bool
	extraConf map[string]any
}

// list returns a network configuration list for libcni.
func (h *hostEnv) list(c netConf) *libcni.NetworkConfigList {
	h.t.Helper()
	if c.version == "" {
		c.version = "1.1.0"
	}
	if c.endpoint == "" {
		c.endpoint = h.etcd.Endpoint
	}
	ipamSec := c.ipam
	if ipamSec == nil {
		ipamSec = map[string]any{"type": "calico-ipam", "assign_ipv4": "true"}
		if c.ipv6 {
			ipamSec["assign_ipv6"] = "true"
		}
	}
	calico := map[string]any{
		"type": "calico", "nodename": nodeName, "etcd_endpoints": c.endpoint,
		"log_level": "error", "ipam_lock_file": filepath.Join(h.dir, "ipam.lock"), "ipam": ipamSec,
		// This host's agent (none unless a test starts it), not the
		// machine's.
		"agent_socket": h.agentSocket(),
		// This host's felix MTU file (none unless a test writes it), not
		// the machine's /var/lib/calico/mtu.
		"mtu_file": filepath.Join(h.dir, "mtu"),
	}
	for k, v := range c.extraConf {
		calico[k] = v
	}
	plugins := []any{calico}
	if c.portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	}
	return h.confList(map[string]any{"cniVersion": c.version, "name": netName, "plugins": plugins})
}

func (h *hostEnv) confList(v map[string]any) *libcni.NetworkConfigList {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	l, err := libcni.ConfListFromBytes(b)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

// pod is a container: a namespace and the runtime's view of it.
type pod struct {
	ns  *testutil.NetNS
	rt  *libcni.RuntimeConf
	res *current.Result
}

// newPod makes a namespace; k8sName, when set, is "<namespace>/<pod>".
func (h *hostEnv) newPod(id, k8sName string) *pod {
	h.t.Helper()
	n := testutil.NewNetNS(h.t)
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: "/var/run/netns/" + n.Name, IfName: "eth0"}
	if ns, name, ok := strings.Cut(k8sName, "/"); ok {
		rt.Args = [][2]string{{"K8S_POD_NAMESPACE", ns}, {"K8S_POD_NAME", name}, {"K8S_POD_INFRA_CONTAINER_ID", id}, {"IgnoreUnknown", "1"}}
	}
	return &pod{ns: n, rt: rt}
}

// in runs f on a thread in the host namespace, as the runtime would run
// on the host.
func (h *hostEnv) in(f func() error) error { return h.ns.RunIn(f) }

func (h *hostEnv) add(l *libcni.NetworkConfigList, p *pod) error {
	return h.in(func() error {
		r, err := h.cni.AddNetworkList(context.Background(), l, p.rt)
		if err != nil {
			return err
		}
		p.res, err = current.GetResult(r)
		return err
	})
}

func (h *hostEnv) mustAdd(l *libcni.NetworkConfigList, p *pod) {
	h.t.Helper()
	if err := h.add(l, p); err != nil {
		h.t.Fatalf("ADD %s: %v", p.rt.ContainerID, err)
	}
}

func (h *hostEnv) del(l *libcni.NetworkConfigList, p *pod) error {
	return h.in(func() error { return h.cni.DelNetworkList(context.Background(), l, p.rt) })
}

func (h *hostEnv) mustDel(l *libcni.NetworkConfigList, p *pod) {
	h.t.Helper()
	if err := h.del(l, p); err != nil {
		h.t.Fatalf("DEL %s: %v", p.rt.ContainerID, err)
	}
}

func (h *hostEnv) check(l *libcni.NetworkConfigList, p *pod) error {
	return h.in(func() error { return h.cni.CheckNetworkList(context.Background(), l, p.rt) })
}

func (h *hostEnv) status(l *libcni.NetworkConfigList) error {
	return h.in(func() error { return h.cni.GetStatusNetworkList(context.Background(), l) })
}

// addr returns the pod's address of one family from its result.
func (p *pod) addr(v6 bool) string {
	for _, ip := range p.res.IPs {
		if (ip.Address.IP.To4() == nil) == v6 {
			return ip.Address.IP.String()
		}
	}
	return ""
}

// assertClean fails unless the host holds no workload veth or route and
// the datastore no endpoint, allocation or handle; IPAM check is clean.
func (h *hostEnv) assertClean() {
	h.t.Helper()
	ctx := context.Background()
	if out, _ := h.ns.Output("ip", "-o", "link"); strings.Contains(out, "cali") {
		h.t.Errorf("workload veth left on the host:\n%s", out)
	}
	for _, fam := range []string{"-4", "-6"} {
		if out, _ := h.ns.Output("ip", fam, "route"); strings.Contains(out, "cali") || strings.Contains(out, "10.65.") || strings.Contains(out, "fd65:") {
			h.t.Errorf("workload route left on the host:\n%s", out)
		}
	}
	if weps, _, err := h.c.WorkloadEndpoints().List(ctx, client.ListOptions{}); err != nil || len(weps) != 0 {
		h.t.Errorf("workload endpoints left: %d (%v)", len(weps), err)
	}
	if allocs, err := h.ic.Allocations(ctx); err != nil || len(allocs) != 0 {
		h.t.Errorf("allocations left: %+v (%v)", allocs, err)
	}
	if n := h.countKeys("/calico/ipam/v2/handle/"); n != 0 {
		h.t.Errorf("%d IPAM handles left", n)
	}
	rep, err := ipamcheck.Check(ctx, h.ic, ipamcheck.Options{})
	if err != nil || !rep.OK() {
		h.t.Errorf("ipam check: %+v (%v)", rep, err)
	}
}

func (h *hostEnv) countKeys(prefix string) int64 {
	h.t.Helper()
	r, err := h.be.Raw().Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		h.t.Fatal(err)
	}
	return r.Count
}

// cniCode returns the CNI error code of err, 0 if it carries none.
func cniCode(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// proxy forwards TCP connections accepted by one listener to target,
// dialled with dial; Block cuts every connection and refuses new ones,
// as a dead server would.
type proxy struct {
	l       net.Listener
	target  string
	dial    func(network, addr string) (net.Conn, error)
	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]bool
}

func newProxy(t testing.TB, listen func(network, addr string) (net.Listener, error), dial func(network, addr string) (net.Conn, error), target string) *proxy {
	t.Helper()
	l, err := listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, dial: dial, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.Block(true) })
	return p
}

func (p *proxy) Addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *proxy) forward(c net.Conn) {
	if !p.track(c) {
		c.Close()
		return
	}
	up, err := p.dial("tcp", p.target)
	if err != nil || !p.track(up) {
		c.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) { _, _ = io.Copy(dst, src); done <- struct{}{} }
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Block cuts and refuses connections (on) or lets them through again.
func (p *proxy) Block(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = on
	if on {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}
