package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

func hostName(i int) string   { return fmt.Sprintf("host-%04d", i) }
func wepName(i, j int) string { return fmt.Sprintf("host--%04d-k8s-pod%d-eth0", i, j) }
func nodeKey(i int) model.ResourceKey {
	return model.ResourceKey{Kind: v3.KindNode, Name: hostName(i)}
}

// blockOf is host i's /26.
func blockOf(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/26", 64+i/256, i%256))
}

func node(i, gen int) *v3.Node {
	n := v3.NewNode()
	n.Name = hostName(i)
	n.Labels = map[string]string{"kubernetes.io/hostname": n.Name, "rack": strconv.Itoa(i % 16), "gen": strconv.Itoa(gen)}
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: fmt.Sprintf("172.16.%d.%d/16", i/250, i%250+1)}
	return n
}

func wep(i, j, gen int) *v3.WorkloadEndpoint {
	w := v3.NewWorkloadEndpoint()
	w.Namespace, w.Name = fmt.Sprintf("ns-%d", i%20), wepName(i, j)
	if i == 0 && j == 0 {
		w.Namespace = "ns-0"
	}
	w.Labels = map[string]string{"app": fmt.Sprintf("app%d", (i+j)%50), "projectcalico.org/namespace": w.Namespace,
		"projectcalico.org/orchestrator": "k8s", "gen": strconv.Itoa(gen)}
	w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: hostName(i), Pod: fmt.Sprintf("pod%d", j), Endpoint: "eth0",
		ContainerID: fmt.Sprintf("%016x", i*16+j), InterfaceName: fmt.Sprintf("cali%011x", i*16+j),
		IPNetworks: []string{blockOf(i).Addr().Next().Next().String() + "/32"}, Profiles: []string{"kns." + w.Namespace}}
	return w
}

func mustJSON(b testing.TB, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// populate writes the benchmark's datastore for n hosts and returns how
// many keys it wrote.
func populate(b testing.TB, be *etcd.Client, n int) int {
	var ops []backend.TxnOp
	put := func(k model.Key, v any) {
		ops = append(ops, backend.TxnOp{Action: backend.TxnPut, Key: k, Value: mustJSON(b, v)})
	}
	pool := v3.NewIPPool()
	pool.Name, pool.Spec.CIDR, pool.Spec.BlockSize = "default-ipv4-ippool", "10.64.0.0/10", 26
	put(model.ResourceKey{Kind: v3.KindIPPool, Name: pool.Name}, pool)
	fc := v3.NewFelixConfiguration()
	fc.Name = "default"
	put(model.ResourceKey{Kind: v3.KindFelixConfiguration, Name: "default"}, fc)
	for k := range 20 {
		p := v3.NewProfile()
		p.Name = fmt.Sprintf("kns.ns-%d", k)
		p.Spec.LabelsToApply = map[string]string{"pcns.projectcalico.org/name": fmt.Sprintf("ns-%d", k)}
		put(model.ResourceKey{Kind: v3.KindProfile, Name: p.Name}, p)
	}
	for k := range 50 {
		p := v3.NewGlobalNetworkPolicy()
		p.Name = fmt.Sprintf("default.policy-%d", k)
		order := float64(k)
		p.Spec.Order, p.Spec.Selector = &order, fmt.Sprintf("app == 'app%d'", k)
		p.Spec.Ingress = []v3.Rule{{Action: v3.Allow, Source: v3.EntityRule{Selector: fmt.Sprintf("app == 'app%d'", (k+1)%50)}}}
		put(model.ResourceKey{Kind: v3.KindGlobalNetworkPolicy, Name: p.Name}, p)
	}
	// Hosts n+1..n+5 exist for the writes of the compaction phase.
	for i := range n + 6 {
		put(nodeKey(i), node(i, 0))
		if i >= n {
			continue
		}
		aff := "host:" + hostName(i)
		blk := model.AllocationBlock{CIDR: model.CIDR{Prefix: blockOf(i)}, Affinity: &aff, Allocations: make([]*int, 64)}
		for o := range 64 {
			if o < 2 {
				zero := 0
				blk.Allocations[o] = &zero
			} else {
				blk.Unallocated = append(blk.Unallocated, o)
			}
		}
		h := "k8s-pod-network." + hostName(i)
		blk.Attributes = []model.AllocationAttribute{{HandleID: &h, Secondary: map[string]string{"node": hostName(i)}}}
		put(model.BlockKey{CIDR: blockOf(i)}, blk)
		put(model.BlockAffinityKey{Host: hostName(i), CIDR: blockOf(i)}, map[string]any{"state": "confirmed", "deleted": false})
		for j := range 2 {
			w := wep(i, j, 0)
			put(model.ResourceKey{Kind: v3.KindWorkloadEndpoint, Namespace: w.Namespace, Name: w.Name}, w)
		}
	}
	total := len(ops)
	ctx := context.Background()
	for len(ops) > 0 {
		k := min(len(ops), backend.MaxTxnOps)
		if _, err := be.Txn(ctx, ops[:k]); err != nil {
			b.Fatalf("populating: %v", err)
		}
		ops = ops[k:]
	}
	return total
}

// touch rewrites host i's Node with a new generation label.
func touch(b testing.TB, be *etcd.Client, k model.ResourceKey, gen int) int64 {
	rev, err := tryTouch(be, k, gen)
	if err != nil {
		b.Fatal(err)
	}
	return rev
}

func tryTouch(be *etcd.Client, k model.ResourceKey, gen int) (int64, error) {
	var i int
	if _, err := fmt.Sscanf(k.Name, "host-%d", &i); err != nil {
		return 0, err
	}
	v, err := json.Marshal(node(i, gen))
	if err != nil {
		return 0, err
	}
	kv, err := be.Apply(context.Background(), &backend.KVPair{Key: k, Value: v})
	if err != nil {
		return 0, err
	}
	return kv.Revision, nil
}

// touchWEP rewrites fanoutKey with a new generation label.
func touchWEP(b testing.TB, be *etcd.Client, gen int) int64 {
	kv, err := be.Apply(context.Background(), &backend.KVPair{Key: fanoutKey, Value: mustJSON(b, wep(0, 0, gen))})
	if err != nil {
		b.Fatal(err)
	}
	return kv.Revision
}

func waitReady(b testing.TB, cl *testutil.EtcdCluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
}

// dialGate dials for every benchmark client; cut closes their
// connections and refuses new ones until restore, as a network fault
// between the hosts and etcd would.
type dialGate struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu    sync.Mutex
	shut  bool
	conns map[net.Conn]struct{}
}

var errGateShut = errors.New("connection refused (benchmark network fault)")

func (g *dialGate) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	g.mu.Lock()
	shut := g.shut
	g.mu.Unlock()
	if shut {
		return nil, errGateShut
	}
	c, err := g.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		c.Close()
		return nil, errGateShut
	}
	if g.conns == nil {
		g.conns = map[net.Conn]struct{}{}
	}
	g.conns[c] = struct{}{}
	return &gatedConn{Conn: c, g: g}, nil
}

type gatedConn struct {
	net.Conn
	g *dialGate
}

func (c *gatedConn) Close() error {
	c.g.mu.Lock()
	delete(c.g.conns, c.Conn)
	c.g.mu.Unlock()
	return c.Conn.Close()
}

func (g *dialGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = true
	for c := range g.conns {
		c.Close()
	}
}

func (g *dialGate) restore() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = false
}

// members reads the members' processes and veths.
type members struct{ c *testutil.EtcdCluster }

// usage is what a sampling of the members saw: CPU in cores (all
// members together), RSS in MB (all members together); clientCPU is the
// cores this process (the 2N clients) used meanwhile.
type usage struct {
	meanCPU, peakCPU, peakRSS, clientCPU float64
}

// procTicks is a process's user and system time in clock ticks.
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

func (m *members) cpuTicks() int64 {
	var total int64
	for _, mb := range m.c.Members {
		if pid := mb.Pid(); pid != 0 {
			total += procTicks(pid)
		}
	}
	return total
}

func (m *members) rss(field string) float64 {
	var total float64
	for _, mb := range m.c.Members {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", mb.Pid()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && k == field {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				total += kb / 1024
			}
		}
	}
	return total
}

func (m *members) rssMB(b testing.TB) float64 { return m.rss("VmRSS") }

// sample watches the members for d.
func (m *members) sample(d time.Duration) usage {
	stop := make(chan struct{})
	time.AfterFunc(d, func() { close(stop) })
	return m.sampleUntil(stop)
}

// sampleUntil samples the members every 250 ms until stop is closed.
func (m *members) sampleUntil(stop <-chan struct{}) usage {
	const tick = 250 * time.Millisecond
	const hz = 100 // USER_HZ
	var u usage
	self := os.Getpid()
	start, selfFirst := time.Now(), procTicks(self)
	last, lastAt := m.cpuTicks(), start
	var used int64
	for {
		var done bool
		select {
		case <-stop:
			done = true
		case <-time.After(tick):
		}
		// A member restarting has fewer ticks than before: that interval
		// is skipped.
		now, at := m.cpuTicks(), time.Now()
		if el := at.Sub(lastAt).Seconds(); now >= last && el > 0 {
			u.peakCPU = max(u.peakCPU, float64(now-last)/hz/el)
			used += now - last
		}
		if done {
			if el := time.Since(start).Seconds(); el > 0 {
				u.meanCPU = float64(used) / hz / el
				u.clientCPU = float64(procTicks(self)-selfFirst) / hz / el
			}
			return u
		}
		u.peakRSS = max(u.peakRSS, m.rss("VmRSS"))
		last, lastAt = now, at
	}
}

// txBytes is what the members sent on their veths (the bridge ports'
// received bytes), peers and clients together.
func (m *members) txBytes(b testing.TB) int64 {
	out, err := exec.Command("ip", "-n", m.c.LAN.Name, "-s", "-j", "link", "show").Output()
	if err != nil {
		b.Fatal(err)
	}
	var links []struct {
		Name  string `json:"ifname"`
		Stats struct {
			RX struct {
				Bytes int64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, l := range links {
		for _, mb := range m.c.Members {
			if l.Name == mb.Name { // the member's bridge port is named after it
				total += l.Stats.RX.Bytes
			}
		}
	}
	return total
}
