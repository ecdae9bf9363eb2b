package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/calico-etcd/calico/deploy/lab/internal/kube"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/testutil"
)

// Lab is a running (or recorded) lab.
type Lab struct {
	State  *State
	BinDir string
	Out    io.Writer

	// mu guards State's pods while pods are added and removed
	// concurrently.
	mu sync.Mutex
	// kube is the Kubernetes control plane (up --kubernetes).
	kube *kube.Control

	etcd     *testutil.Etcd
	cluster  *testutil.EtcdCluster // up --etcd-members > 1
	forwards []*forward
	// procs are the daemons this process supervises (guarded by mu);
	// closing stops their restarts.
	procs   map[string]*proc
	closing bool
}

// Options configure Up.
type Options struct {
	Name   string // namespace prefix; default "clab"
	Dir    string // state directory
	BinDir string // where the binaries are
	Hosts  int
	Out    io.Writer
	// Kubernetes adds a control plane, and kubelet and containerd on
	// every host; KubeBin holds the Kubernetes programs.
	Kubernetes bool
	KubeBin    string
	// Subnets spreads the hosts over this many subnets (default 1),
	// routed by the bridge namespace: hosts in different subnets reach
	// each other through it, as racks do through their routers.
	Subnets int
	// IPv6 gives hosts and pods IPv6 addresses too, and the hosts an IPv6
	// default pool.
	IPv6 bool
	// NoBGP runs no calico-bgpd (Calico's CALICO_NETWORKING_BACKEND=vxlan):
	// pods on different hosts then reach each other only by VXLAN.
	NoBGP bool
	// PoolCIDR is the default IPv4 pool the hosts' confd create at start
	// (CALICO_IPV4POOL_CIDR): "" for the lab's (DemoPool, or KubePool with
	// Kubernetes), "none" for no pool. Pool6CIDR likewise with IPv6
	// (DemoPool6).
	PoolCIDR, Pool6CIDR string
	// VXLAN is the default pools' vxlanMode (CALICO_IPV4POOL_VXLAN and
	// CALICO_IPV6POOL_VXLAN): Never (default), Always or CrossSubnet.
	VXLAN string
	// Env adds NAME=value variables to every host's daemons.
	Env []string
	// EtcdMembers > 1 runs etcd as a cluster of that many members (see
	// etcdcluster.go); 0 or 1: one embedded member. EtcdCommand runs a
	// member (etcd's flags appended); calico-lab itself when empty.
	EtcdMembers int
	EtcdCommand []string
}

// DemoPool6 is the lab's default IPv6 pool (Options.IPv6).
const DemoPool6 = "fd00:65::/64"

// poolEnv is what the hosts' confd read to create the default pools, as
// Calico's manifests set it for calico-node.
func poolEnv(o Options) []string {
	v4, v6 := o.PoolCIDR, "none"
	if v4 == "" {
		v4 = DemoPool
		if o.Kubernetes {
			v4 = KubePool
		}
	}
	if o.IPv6 {
		v6 = o.Pool6CIDR
		if v6 == "" {
			v6 = DemoPool6
		}
	}
	env := []string{"CALICO_IPV4POOL_CIDR=" + v4, "CALICO_IPV6POOL_CIDR=" + v6}
	if o.VXLAN != "" {
		env = append(env, "CALICO_IPV4POOL_VXLAN="+o.VXLAN, "CALICO_IPV6POOL_VXLAN="+o.VXLAN)
	}
	return append(env, o.Env...)
}

// Open loads the lab recorded in dir, for commands run beside `up`.
func Open(dir, binDir string, out io.Writer) (*Lab, error) {
	s, err := LoadState(dir)
	if notExist(err) {
		return nil, fmt.Errorf("no lab in %s: start one with calico-lab up", dir)
	}
	if err != nil {
		return nil, err
	}
	return &Lab{State: s, BinDir: binDir, Out: out}, nil
}

// Up builds the lab and starts every host's daemons. The lab lives as
// long as the calling process (it holds etcd); call Shutdown to end it.
func Up(ctx context.Context, o Options) (*Lab, error) {
	if o.Hosts < 1 || o.Hosts > 50 {
		return nil, fmt.Errorf("--hosts must be between 1 and 50, not %d", o.Hosts)
	}
	if o.Name == "" {
		o.Name = "clab"
	}
	if old, err := LoadState(o.Dir); err == nil {
		if old.Running() {
			return nil, fmt.Errorf("a lab is already running from %s (pid %d): run calico-lab down first", o.Dir, old.PID)
		}
		fmt.Fprintln(o.Out, "Cleaning up a lab that did not shut down cleanly")
		Down(o.Dir, o.Out)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if o.Subnets < 1 || o.Subnets > o.Hosts {
		o.Subnets = min(max(o.Subnets, 1), o.Hosts)
	}
	l := &Lab{BinDir: o.BinDir, Out: o.Out, State: &State{Name: o.Name, Dir: o.Dir, PID: os.Getpid(), BridgeNS: o.Name + "-br",
		IPv6: o.IPv6, NoBGP: o.NoBGP, Env: poolEnv(o)}}
	if err := l.State.Save(); err != nil {
		return nil, err
	}
	if err := l.build(ctx, o); err != nil {
		l.Shutdown()
		return nil, err
	}
	return l, nil
}

func (l *Lab) build(ctx context.Context, o Options) error {
	// hostEtcd makes etcd reachable inside a host namespace.
	var hostEtcd func(ns *testutil.NetNS) error
	if o.EtcdMembers > 1 {
		if err := l.startEtcdCluster(o); err != nil {
			return err
		}
		hostEtcd = l.clusterInHost
	} else {
		srv, err := testutil.StartEtcdServer(filepath.Join(l.State.Dir, "etcd"))
		if err != nil {
			return err
		}
		l.etcd = srv
		l.State.EtcdEndpoint = srv.Endpoint
		u, err := url.Parse(srv.Endpoint)
		if err != nil {
			return err
		}
		hostEtcd = func(ns *testutil.NetNS) error {
			fw, err := newForward(ns, "127.0.0.1:2379", u.Host)
			if err == nil {
				l.forwards = append(l.forwards, fw)
			}
			return err
		}
	}
	if err := l.State.Save(); err != nil {
		return err
	}
	if o.Kubernetes {
		if err := l.startKubernetes(o.KubeBin); err != nil {
			return err
		}
	}
	if _, err := makeBridge(l.State.BridgeNS, o.Subnets, o.IPv6); err != nil {
		return err
	}
	for i := 1; i <= o.Hosts; i++ {
		sub := subnetOf(i, o.Hosts, o.Subnets)
		h := HostState{Name: fmt.Sprintf("host%d", i), NetNS: fmt.Sprintf("%s-h%d", l.State.Name, i), Addr: hostAddr(i, sub),
			Subnet: sub, KubeNode: o.Kubernetes}
		if o.IPv6 {
			h.Addr6 = hostAddr6(i, sub)
		}
		l.mu.Lock()
		l.State.Hosts = append(l.State.Hosts, h)
		err := l.State.Save()
		l.mu.Unlock()
		if err != nil {
			return err
		}
		ns, err := makeHost(l.State.BridgeNS, h, i)
		if err == nil {
			err = neighbours(h.NetNS, i, o.Hosts, o.Subnets, o.IPv6)
		}
		if err != nil {
			return err
		}
		err = hostEtcd(ns)
		ns.NetNS.Close()
		if err != nil {
			return fmt.Errorf("etcd forwarder in %s: %w", h.NetNS, err)
		}
		hs := &l.State.Hosts[len(l.State.Hosts)-1]
		if err := l.startDaemons(hs); err != nil {
			return err
		}
		if err := l.savePIDs(hs); err != nil {
			return err
		}
		if o.Kubernetes {
			if err := l.startNode(ctx, hs, o.KubeBin); err != nil {
				return err
			}
		}
		l.mu.Lock()
		summary := daemonSummary(l.State, hs)
		l.mu.Unlock()
		fmt.Fprintf(l.Out, "%s: namespace %s, eth0 %s, %s\n", h.Name, h.NetNS, addrs(h), summary)
	}
	if err := l.waitForNodes(ctx, 60*time.Second); err != nil {
		return err
	}
	if o.Kubernetes {
		return l.waitKubeNodes(ctx, 120*time.Second)
	}
	return nil
}

// addrs is a host's eth0 addresses, for people.
func addrs(h HostState) string {
	if h.Addr6 != "" {
		return h.Addr + " " + h.Addr6
	}
	return h.Addr
}

// Client returns a datastore client for the lab's etcd.
func (l *Lab) Client() (*client.Client, error) {
	be, err := etcd.New(etcd.Config{Endpoints: strings.Split(l.State.EtcdEndpoint, ","), Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	return client.New(be), nil
}

// waitForNodes waits until every host has registered its Node.
func (l *Lab) waitForNodes(ctx context.Context, limit time.Duration) error {
	c, err := l.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(limit)
	for {
		nodes, _, err := c.Nodes().List(ctx, client.ListOptions{})
		if err == nil && len(nodes) >= len(l.State.Hosts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hosts did not register their Nodes within %v (see the logs in %s/<host>/): %d of %d, last error %v",
				limit, l.State.Dir, len(nodes), len(l.State.Hosts), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Shutdown stops daemons, removes pods and namespaces and etcd, and deletes
// the state directory. It is what Ctrl-C on `up` runs.
func (l *Lab) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.mu.Lock()
	l.closing = true // no daemon is restarted from now on
	// Other calico-lab processes (pod add) record into the state file;
	// the daemons' pids are this process's own.
	if s, err := LoadState(l.State.Dir); err == nil {
		for i := range s.Hosts {
			if h, err := l.State.Host(s.Hosts[i].Name); err == nil {
				if s.Hosts[i].PIDs == nil {
					s.Hosts[i].PIDs = map[string]int{}
				}
				for name, pid := range h.PIDs {
					s.Hosts[i].PIDs[name] = pid
				}
			}
		}
		l.State.Hosts = s.Hosts
	}
	l.mu.Unlock()
	for i := range l.State.Hosts {
		h := &l.State.Hosts[i]
		for _, p := range append([]PodState(nil), h.Pods...) {
			_ = l.removePod(ctx, h, p)
		}
	}
	stopKubernetes(l.State)
	for i := range l.State.Hosts {
		stopDaemons(&l.State.Hosts[i], 10*time.Second)
	}
	for _, f := range l.forwards {
		f.Close()
	}
	if l.etcd != nil {
		l.etcd.Stop()
	}
	if l.cluster != nil {
		l.cluster.Close()
	}
	deleteNamespaces(l.State.Name + "-")
	_ = os.RemoveAll(l.State.Dir)
}

// Down ends the lab recorded in dir, whether its `up` process is alive
// (asked to shut down) or died (everything it recorded is removed here).
func Down(dir string, out io.Writer) error {
	s, err := LoadState(dir)
	if notExist(err) {
		fmt.Fprintln(out, "No lab is running")
		return nil
	}
	if err != nil {
		return err
	}
	if s.Running() && s.PID != os.Getpid() {
		_ = syscall.Kill(s.PID, syscall.SIGTERM)
		for i := 0; i < 600 && s.Running(); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if s.Running() {
			return errors.New("the lab's up process did not stop within 60s")
		}
	}
	stopKubernetes(s)
	for i := range s.Hosts {
		stopDaemons(&s.Hosts[i], 10*time.Second)
	}
	deleteNamespaces(s.Name + "-")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	fmt.Fprintln(out, "Lab removed")
	return nil
}

// RestartEtcd stops the lab's etcd and starts it again on the same port
// and data, as an etcd outage would.
func (l *Lab) RestartEtcd(down time.Duration) error {
	if l.etcd == nil {
		return errors.New("etcd is held by another calico-lab process")
	}
	l.etcd.Stop()
	time.Sleep(down)
	return l.etcd.Start()
}
