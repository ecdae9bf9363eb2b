package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// EtcdCluster is a real etcd cluster: each member a separate etcd process
// in a network namespace of its own, whose eth0 is plugged into a bridge in
// a "LAN" namespace.
//
//	┌──────────────── LAN netns ────────────────┐
//	│ br0 10.99.0.1/24: DialContext, Proxy       │
//	└──┬──────────┬──────────┬──────────┬────────┘
//	   m0 .11     m1 .12     m2 .13     a0 .100 ...
//	   etcd :2379 (clients), :2380 (peers)   namespaces Attach-ed for clients
//
// Members are stopped, killed and started again on their data; Partition
// takes a member's bridge port down, so that it reaches neither its peers
// nor any client, and connections to it stall as across a real network
// fault. Processes reach the cluster from namespaces given to Attach (at
// ClientURLs), the test process through DialContext or a Proxy. Nothing
// is configured outside the namespaces the cluster makes, but for the
// loopback listeners of proxies asked for in the caller's namespace.
type EtcdCluster struct {
	Members []*EtcdMember
	// LAN is the namespace holding the bridge.
	LAN *NetNS

	dir      string
	command  []string
	args     []string
	nsPrefix string
	mu       sync.Mutex
	attached int
	proxies  []*Proxy
	closed   bool
}

// EtcdMember is one member of an EtcdCluster.
type EtcdMember struct {
	// Name is m0, m1, ...
	Name  string
	Index int
	// NS is the member's namespace; IP its address on the LAN.
	NS        *NetNS
	IP        string
	ClientURL string
	PeerURL   string
	// Log is the file the member's output goes to.
	Log string

	c       *EtcdCluster
	port    string // its veth's end on the bridge
	dataDir string
	args    []string

	mu          sync.Mutex
	id          uint64
	cmd         *exec.Cmd
	done        chan struct{}
	partitioned bool
}

// lanPrefix is the LAN's /24; the bridge is .1, member i .11+i, the k-th
// attached namespace .100+k.
const lanPrefix = "10.99.0."

// ClusterOption adjusts an EtcdCluster before it starts.
type ClusterOption func(*EtcdCluster)

// WithEtcdCommand runs members with argv (the etcd flags appended) instead
// of EtcdBinary: the lab runs its own executable this way.
func WithEtcdCommand(argv ...string) ClusterOption {
	return func(c *EtcdCluster) { c.command = argv }
}

// WithNetNSPrefix names the cluster's namespaces <prefix>etcd (the LAN)
// and <prefix>etcd<i> (members) rather than uniquely under NetNSPrefix:
// the lab's prefix, so that its cleanup finds them.
func WithNetNSPrefix(prefix string) ClusterOption {
	return func(c *EtcdCluster) { c.nsPrefix = prefix }
}

// WithEtcdArgs adds etcd flags to every member's command line.
func WithEtcdArgs(args ...string) ClusterOption {
	return func(c *EtcdCluster) { c.args = append(c.args, args...) }
}

// NewEtcdCluster starts an n-member cluster with its data and logs under
// dir and waits until it has a leader. Close removes it.
func NewEtcdCluster(dir string, n int, opts ...ClusterOption) (_ *EtcdCluster, err error) {
	if n < 1 || n > 9 {
		return nil, fmt.Errorf("%d members: want 1 to 9", n)
	}
	c := &EtcdCluster{dir: dir}
	for _, o := range opts {
		o(c)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if c.command == nil {
		bin, err := EtcdBinary()
		if err != nil {
			return nil, err
		}
		c.command = []string{bin}
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	id := UniqueName("")
	lan, member := NetNSPrefix+"etcd"+id, NetNSPrefix+"etcd"+id+"-"
	if c.nsPrefix != "" {
		lan, member = c.nsPrefix+"etcd", c.nsPrefix+"etcd"
	}
	if c.LAN, err = NewNetNSNamed(lan); err != nil {
		return nil, err
	}
	for _, cmd := range []string{"link add br0 type bridge", "link set br0 up", "addr add " + lanPrefix + "1/24 dev br0"} {
		if err := c.LAN.IP(strings.Fields(cmd)...); err != nil {
			return nil, err
		}
	}
	var initial []string
	for i := range n {
		ip := fmt.Sprintf("%s%d", lanPrefix, 11+i)
		m := &EtcdMember{
			Name: fmt.Sprintf("m%d", i), Index: i, IP: ip, c: c,
			ClientURL: "http://" + ip + ":2379", PeerURL: "http://" + ip + ":2380",
			port: fmt.Sprintf("m%d", i), dataDir: filepath.Join(dir, fmt.Sprintf("m%d", i)),
			Log: filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		if m.NS, err = NewNetNSNamed(fmt.Sprintf("%s%d", member, i)); err != nil {
			return nil, err
		}
		c.Members = append(c.Members, m)
		if err := c.plug(m.NS, m.port, "eth0", ip); err != nil {
			return nil, err
		}
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	if os.Getenv("ETCD_CLUSTER_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "etcd cluster namespaces ready\n")
	}
	token := "calico-test-" + id
	for _, m := range c.Members {
		m.args = []string{
			"--name", m.Name, "--data-dir", m.dataDir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", token, "--log-level", "warn",
		}
		if err := m.Start(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// StartEtcdCluster starts an n-member cluster for a test, removed at
// cleanup; members' logs are shown if the test failed.
func StartEtcdCluster(t testing.TB, n int, opts ...ClusterOption) *EtcdCluster {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	c, err := NewEtcdCluster(dir, n, opts...)
	if err != nil {
		t.Fatalf("etcd cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range c.Members {
				t.Logf("---- last lines of etcd member %s ----\n%s", m.Name, tailFile(m.Log, 30))
			}
		}
		c.Close()
	})
	return c
}

// plug joins ns to the bridge: a veth named outer on the bridge and inner
// in ns with ip/24.
func (c *EtcdCluster) plug(ns *NetNS, outer, inner, ip string) error {
	for _, step := range []struct {
		ns  *NetNS
		cmd string
	}{
		{c.LAN, fmt.Sprintf("link add %s type veth peer name %s netns %s", outer, inner, ns.Name)},
		{c.LAN, fmt.Sprintf("link set %s master br0 up", outer)},
		{ns, fmt.Sprintf("addr add %s/24 dev %s", ip, inner)},
		{ns, fmt.Sprintf("link set %s up", inner)},
	} {
		if err := step.ns.IP(strings.Fields(step.cmd)...); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every member and proxy and deletes the namespaces it made
// (and with them the veths of attached namespaces). Safe to call twice.
func (c *EtcdCluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	proxies := c.proxies
	c.mu.Unlock()
	for _, p := range proxies {
		p.Close()
	}
	for _, m := range c.Members {
		_ = m.Kill() // the data goes too
	}
	for _, m := range c.Members {
		if m.NS != nil {
			m.NS.Delete()
		}
	}
	if c.LAN != nil {
		c.LAN.Delete()
	}
}

// ClientURLs are the members' client URLs, reachable from the LAN and from
// attached namespaces.
func (c *EtcdCluster) ClientURLs() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Endpoints is ClientURLs joined by commas, as ETCD_ENDPOINTS takes them.
func (c *EtcdCluster) Endpoints() string { return strings.Join(c.ClientURLs(), ",") }

// DialContext connects from the LAN namespace, so that the test process
// reaches ClientURLs (for clientv3: grpc.WithContextDialer).
func (c *EtcdCluster) DialContext(ctx context.Context, network, addr string) (conn net.Conn, err error) {
	err = c.LAN.RunIn(func() error {
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Attach joins ns to the LAN with a veth named dev inside it and returns
// its address there; processes in ns then reach ClientURLs directly.
func (c *EtcdCluster) Attach(ns *NetNS, dev string) (string, error) {
	c.mu.Lock()
	k := c.attached
	c.attached++
	c.mu.Unlock()
	if k >= 150 {
		return "", errors.New("no LAN address left to attach")
	}
	ip := fmt.Sprintf("%s%d", lanPrefix, 100+k)
	if err := c.plug(ns, fmt.Sprintf("a%d", k), dev, ip); err != nil {
		return "", fmt.Errorf("attaching %s to the etcd LAN: %w", ns.Name, err)
	}
	return ip, nil
}

// NewClient returns a raw client of the given endpoints (every member's
// when none), dialling through the LAN.
func (c *EtcdCluster) NewClient(endpoints ...string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		endpoints = c.ClientURLs()
	}
	return clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 3 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return c.DialContext(ctx, "tcp", addr)
		})},
	})
}

// RawClient is NewClient for a test, closed at cleanup.
func (c *EtcdCluster) RawClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.NewClient()
	if err != nil {
		t.Fatalf("etcd cluster client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Reachable are the members running and not partitioned.
func (c *EtcdCluster) Reachable() []*EtcdMember {
	var out []*EtcdMember
	for _, m := range c.Members {
		if m.Running() && !m.Partitioned() {
			out = append(out, m)
		}
	}
	return out
}

// Leader asks the reachable members which of them leads; it fails when
// they do not agree on one that is reachable.
func (c *EtcdCluster) Leader(ctx context.Context) (*EtcdMember, error) {
	var leader uint64
	for _, m := range c.Reachable() {
		st, err := m.status(ctx)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", m.Name, err)
		}
		if st.Leader == 0 || (leader != 0 && st.Leader != leader) {
			return nil, fmt.Errorf("member %s sees leader %x, others %x", m.Name, st.Leader, leader)
		}
		leader = st.Leader
	}
	for _, m := range c.Members {
		if m.memberID() == leader && leader != 0 {
			if !m.Running() || m.Partitioned() {
				return nil, fmt.Errorf("leader %s is not reachable yet", m.Name)
			}
			return m, nil
		}
	}
	return nil, errors.New("no reachable member leads")
}

// Follower returns a reachable member that does not lead.
func (c *EtcdCluster) Follower(ctx context.Context) (*EtcdMember, error) {
	l, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range c.Reachable() {
		if m != l {
			return m, nil
		}
	}
	return nil, errors.New("no reachable follower")
}

// WaitReady waits until the reachable members agree on a leader among
// them and a quorum write through each of them succeeds.
func (c *EtcdCluster) WaitReady(ctx context.Context) error {
	var last error
	for {
		if last = c.ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd cluster not ready: %w", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *EtcdCluster) ready(ctx context.Context) error {
	if _, err := c.Leader(ctx); err != nil {
		return err
	}
	for _, m := range c.Reachable() {
		if err := m.withClient(ctx, func(ctx context.Context, cli *clientv3.Client) error {
			_, err := cli.Put(ctx, "/testutil/ready", m.Name)
			return err
		}); err != nil {
			return fmt.Errorf("member %s: %w", m.Name, err)
		}
	}
	return nil
}

// Compact compacts the store up to its current revision and returns it.
func (c *EtcdCluster) Compact(ctx context.Context) (int64, error) {
	cli, err := c.NewClient()
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Start starts the member's process on its data (a no-op if running). It
// does not wait: see WaitReady.
func (m *EtcdMember) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(m.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	argv := append(append(append([]string{"netns", "exec", m.NS.Name}, m.c.command...), m.args...), m.c.args...)
	cmd := exec.Command("ip", argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The member dies with the test process, even a killed one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	m.cmd, m.done = cmd, done
	return nil
}

// Stop stops the member with SIGTERM and waits; it kills it (SIGKILL) if
// it has not exited within grace. etcd's graceful stop waits for its
// clients' streams to end, which watching clients never do by themselves.
func (m *EtcdMember) Stop(grace time.Duration) error { return m.signal(syscall.SIGTERM, grace) }

// Kill kills the member with SIGKILL and waits.
func (m *EtcdMember) Kill() error { return m.signal(syscall.SIGKILL, 10*time.Second) }

func (m *EtcdMember) signal(sig syscall.Signal, grace time.Duration) error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd, m.done = nil, nil
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		if sig == syscall.SIGKILL {
			return fmt.Errorf("etcd member %s did not exit within %v of SIGKILL", m.Name, grace)
		}
	}
	return nil
}

// Running reports whether the member's process is started (and has not
// exited).
func (m *EtcdMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Pid is the member's process id, 0 when not running.
func (m *EtcdMember) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Partition takes the member's bridge port down: it reaches neither its
// peers nor any client until Heal.
func (m *EtcdMember) Partition() error { return m.setLink("down", true) }

// Heal brings the member's bridge port back up.
func (m *EtcdMember) Heal() error { return m.setLink("up", false) }

func (m *EtcdMember) setLink(state string, partitioned bool) error {
	if err := m.c.LAN.IP("link", "set", m.port, state); err != nil {
		return err
	}
	m.mu.Lock()
	m.partitioned = partitioned
	m.mu.Unlock()
	return nil
}

// Partitioned reports whether the member is cut off by Partition.
func (m *EtcdMember) Partitioned() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.partitioned
}

func (m *EtcdMember) memberID() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// status asks the member alone for its status (and learns its id).
func (m *EtcdMember) status(ctx context.Context) (*clientv3.StatusResponse, error) {
	var st *clientv3.StatusResponse
	err := m.withClient(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		st, err = cli.Status(ctx, m.ClientURL)
		return err
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.id = st.Header.MemberId
	m.mu.Unlock()
	return st, nil
}

// withClient runs f with a client of this member alone, bounded by 3 s.
func (m *EtcdMember) withClient(ctx context.Context, f func(context.Context, *clientv3.Client) error) error {
	cli, err := m.c.NewClient(m.ClientURL)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return f(ctx, cli)
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
