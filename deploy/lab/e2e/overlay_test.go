package e2e

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/defaultpools"
	"github.com/calico-etcd/calico/testutil"
)

// startLabWith starts a lab with o (name, directory, binaries and output
// filled in) and removes it when the test ends.
func startLabWith(t *testing.T, o lab.Options) *labT {
	t.Helper()
	o.Name, o.Dir, o.BinDir, o.Out = testutil.UniqueName("ov"), filepath.Join(t.TempDir(), "lab"), binDir, testWriter{t}
	l, err := lab.Up(context.Background(), o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, l)
		}
		l.Shutdown()
	})
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &labT{Lab: l, t: t, c: c}
}

func (l *labT) allowAll() {
	allow := v3.NewGlobalNetworkPolicy()
	allow.Name = "allow-all"
	o := 1000.0
	allow.Spec.Order = &o
	allow.Spec.Selector = "all()"
	allow.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	allow.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	l.apply(allow)
}

// pods adds one pod per host and returns them by host.
func (l *labT) pods() map[string]*lab.PodState {
	l.t.Helper()
	out := map[string]*lab.PodState{}
	for _, h := range l.State.Hosts {
		p, err := l.AddPod(context.Background(), h.Name, "ov", "pod-"+h.Name)
		if err != nil {
			l.t.Fatal(err)
		}
		out[h.Name] = p
	}
	return out
}

// pingOK pings dst from the pod, retrying while routes converge.
func pingOK(t *testing.T, from *lab.PodState, dst string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := exec.Command("ip", "netns", "exec", from.NetNS, "ping", "-c", "1", "-W", "1", dst).CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping %s from %s: %v\n%s", dst, from.Name, err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// tcpdump captures on an interface of a namespace until stop is called,
// which returns the packets printed (one line each, numeric).
func tcpdump(t *testing.T, netns, iface, filter string) (stop func() []string) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump is not installed (apt-get install tcpdump; .ci/install-deps does)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"netns", "exec", netns, "tcpdump", "-l", "-n", "-i", iface}
	if filter != "" {
		args = append(args, filter)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	out, _ := cmd.StdoutPipe()
	errOut, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errOut)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("tcpdump did not start")
	}
	lines := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			got = append(got, sc.Text())
		}
		lines <- got
	}()
	return func() []string {
		time.Sleep(300 * time.Millisecond)
		cancel()
		_ = cmd.Wait()
		return <-lines
	}
}

// packet is one tcpdump line: outer family, source and destination
// (address.port for UDP), and whether it is VXLAN.
type packet struct {
	family, src, dst string
	vxlan            bool
	line             string
}

func parsePackets(lines []string) []packet {
	var out []packet
	for _, l := range lines {
		f := strings.Fields(l) // time IP|IP6 src > dst: ...
		if len(f) < 5 || (f[1] != "IP" && f[1] != "IP6") {
			continue
		}
		out = append(out, packet{family: f[1], src: f[2], dst: strings.TrimSuffix(f[4], ":"),
			vxlan: strings.Contains(l, "VXLAN"), line: l})
	}
	return out
}

func hostIP(h lab.HostState) string { return netip.MustParsePrefix(h.Addr).Addr().String() }

// hostIP6 is canonical, as tcpdump prints it.
func hostIP6(h lab.HostState) string { return netip.MustParsePrefix(h.Addr6).Addr().String() }

// TestLabVXLANWithoutBGP: three hosts without BGP (no calico-bgpd), the
// default pools from the environment with VXLAN Always, IPv4 and IPv6.
// Pods on different hosts ping each other over both families, and on the
// wire between the hosts there is only VXLAN; a pod reaches an address
// outside the pools through NAT outgoing (its host's address on the
// wire); felix wrote the pod MTU (1500 less IPv6 VXLAN's 70) and the CNI
// plugin used it.
func TestLabVXLANWithoutBGP(t *testing.T) {
	l := startLabWith(t, lab.Options{Hosts: 3, NoBGP: true, IPv6: true, VXLAN: "Always"})
	l.allowAll()
	pods := l.pods()
	h1, h2, h3 := l.State.Hosts[0], l.State.Hosts[1], l.State.Hosts[2]
	for _, p := range pods {
		if p.IP == "" || p.IP6 == "" {
			t.Fatalf("pod %s without both families: %+v", p.Name, p)
		}
	}
	for _, h := range l.State.Hosts {
		if pid := l.PID(h.Name, "calico-bgpd"); pid != 0 {
			t.Fatalf("bgpd runs on %s (pid %d)", h.Name, pid)
		}
	}

	stop := tcpdump(t, l.State.BridgeNS, "br0", "")
	pingOK(t, pods["host1"], pods["host2"].IP, 60*time.Second)
	pingOK(t, pods["host1"], pods["host3"].IP, 30*time.Second)
	pingOK(t, pods["host3"], pods["host2"].IP, 30*time.Second)
	pingOK(t, pods["host1"], pods["host2"].IP6, 30*time.Second)
	pingOK(t, pods["host2"], pods["host3"].IP6, 30*time.Second)
	// NAT outgoing: the bridge's address is outside every pool and has no
	// route back to pods.
	pingOK(t, pods["host2"], lab.Gateway, 10*time.Second)
	packets := parsePackets(stop())

	var vx4, vx6, natted int
	for _, p := range packets {
		switch {
		case strings.HasPrefix(p.src, "10.65.") || strings.HasPrefix(p.src, "fd00:65:"):
			t.Errorf("a pod address on the wire between hosts: %s", p.line)
		case p.vxlan && p.family == "IP" && strings.HasPrefix(p.src, hostIP(h1)+".") && strings.HasPrefix(p.dst, hostIP(h2)+".4789"):
			vx4++
		case p.vxlan && p.family == "IP6" && strings.HasPrefix(p.src, hostIP6(h1)+".") && strings.HasPrefix(p.dst, hostIP6(h2)+".4789"):
			vx6++
		case p.src == hostIP(h2) && p.dst == lab.Gateway && strings.Contains(p.line, "ICMP echo request"):
			natted++
		}
	}
	if vx4 == 0 || vx6 == 0 || natted == 0 {
		var b strings.Builder
		for _, p := range packets {
			b.WriteString(p.line + "\n")
		}
		t.Fatalf("on the wire: %d VXLAN/IPv4 and %d VXLAN/IPv6 packets host1->host2, %d NAT-outgoing pings from host2's address; capture:\n%s",
			vx4, vx6, natted, b.String())
	}
	t.Logf("on br0: %d VXLAN packets over IPv4 and %d over IPv6 from host1 to host2, %d NAT-outgoing pings from host2", vx4, vx6, natted)

	// What made it work: felix's routes through vxlan.calico, from the
	// tunnel addresses confd allocated.
	n3, err := l.c.Nodes().Get(context.Background(), "", h3.Name)
	if err != nil || n3.Spec.IPv4VXLANTunnelAddr == "" || n3.Spec.IPv6VXLANTunnelAddr == "" || n3.Spec.VXLANTunnelMACAddr == "" {
		t.Fatalf("host3's Node: %+v, %v", n3.Spec, err)
	}
	rt, _ := exec.Command("ip", "-n", h1.NetNS, "route").CombinedOutput()
	if !regexp.MustCompile(`via ` + regexp.QuoteMeta(n3.Spec.IPv4VXLANTunnelAddr) + ` dev vxlan\.calico( proto \S+)? onlink`).MatchString(string(rt)) {
		t.Errorf("host1 routes lack host3's block via its tunnel address:\n%s", rt)
	}

	// MTU: eth0 is 1500; the smallest encapsulation is IPv6 VXLAN's 70.
	for _, h := range l.State.Hosts {
		b, err := os.ReadFile(filepath.Join(l.State.Dir, h.Name, "mtu"))
		if err != nil || strings.TrimSpace(string(b)) != "1430" {
			t.Errorf("%s MTU file: %q %v; want 1430", h.Name, b, err)
		}
	}
	out, _ := exec.Command("ip", "netns", "exec", pods["host1"].NetNS, "cat", "/sys/class/net/eth0/mtu").CombinedOutput()
	if strings.TrimSpace(string(out)) != "1430" {
		t.Errorf("pod MTU %q, want 1430", out)
	}
}

// TestLabVXLANCrossSubnet: hosts in two subnets with BGP, the default pool
// VXLAN CrossSubnet. host1 and host2 share a subnet and their pods'
// packets cross the wire unencapsulated; host3 is in the other subnet and
// packets to its pods are VXLAN.
func TestLabVXLANCrossSubnet(t *testing.T) {
	l := startLabWith(t, lab.Options{Hosts: 3, Subnets: 2, VXLAN: "CrossSubnet"})
	l.allowAll()
	pods := l.pods()
	h1, h2, h3 := l.State.Hosts[0], l.State.Hosts[1], l.State.Hosts[2]
	if h1.Subnet != 0 || h2.Subnet != 0 || h3.Subnet != 1 {
		t.Fatalf("subnets %d %d %d", h1.Subnet, h2.Subnet, h3.Subnet)
	}
	stop := tcpdump(t, l.State.BridgeNS, "br0", "")
	pingOK(t, pods["host1"], pods["host2"].IP, 60*time.Second)
	pingOK(t, pods["host1"], pods["host3"].IP, 30*time.Second)
	packets := parsePackets(stop())
	var direct, encapsulated int
	for _, p := range packets {
		switch {
		case p.src == pods["host1"].IP && p.dst == pods["host2"].IP && !p.vxlan:
			direct++
		case p.src == pods["host1"].IP && p.dst == pods["host3"].IP:
			t.Errorf("packet to host3's pod not encapsulated: %s", p.line)
		case p.vxlan && strings.HasPrefix(p.src, hostIP(h1)+".") && strings.HasPrefix(p.dst, hostIP(h3)+".4789"):
			encapsulated++
		case p.vxlan && strings.HasPrefix(p.dst, hostIP(h2)+"."):
			t.Errorf("VXLAN within the subnet: %s", p.line)
		}
	}
	if direct == 0 || encapsulated == 0 {
		var b strings.Builder
		for _, p := range packets {
			b.WriteString(p.line + "\n")
		}
		t.Fatalf("host1's pod to host2's: %d unencapsulated packets; to host3's: %d VXLAN packets; capture:\n%s", direct, encapsulated, b.String())
	}
	t.Logf("on br0: %d direct packets within the subnet, %d VXLAN packets across subnets", direct, encapsulated)
	rt, _ := exec.Command("ip", "-n", h1.NetNS, "route").CombinedOutput()
	if !strings.Contains(string(rt), "via "+hostIP(h2)+" dev eth0") || !regexp.MustCompile(`dev vxlan\.calico( proto \S+)? onlink`).MatchString(string(rt)) {
		t.Errorf("host1 routes:\n%s", rt)
	}
}

// TestLabDefaultPoolFromEnv: a fresh lab (its hosts' confd get
// CALICO_IPV4POOL_CIDR as Calico's manifest sets it) adds a pod with no
// pool made by hand.
func TestLabDefaultPoolFromEnv(t *testing.T) {
	l := startLabWith(t, lab.Options{Hosts: 1})
	p, err := l.AddPod(context.Background(), "host1", "default", "first")
	if err != nil {
		t.Fatalf("first pod add on a fresh lab: %v", err)
	}
	if !strings.HasPrefix(p.IP, "10.65.") {
		t.Errorf("pod address %s not in %s", p.IP, lab.DemoPool)
	}
	pool, err := l.c.IPPools().Get(context.Background(), "", defaultpools.IPv4Name)
	if err != nil || pool.Spec.CIDR != lab.DemoPool || !pool.Spec.NATOutgoing || pool.Spec.VXLANMode != v3.VXLANModeNever {
		t.Fatalf("default pool %+v, %v", pool, err)
	}
	pools, _, err := l.c.IPPools().List(context.Background(), client.ListOptions{})
	if err != nil || len(pools) != 1 {
		t.Fatalf("pools: %d, %v", len(pools), err)
	}
}

// TestLabTunnelAddressesFollowEncapsulation turns VXLAN, then IPIP, on and
// off on the default pool of a running two-host lab: the hosts' confd
// allocate and release their tunnel addresses, felix builds and removes
// vxlan.calico, and `calicoctl ipam check` is clean at the end.
func TestLabTunnelAddressesFollowEncapsulation(t *testing.T) {
	l := startLabWith(t, lab.Options{Hosts: 2})
	ctx := context.Background()
	setPool := func(vxlan v3.VXLANMode, ipip v3.IPIPMode) {
		t.Helper()
		for {
			p, err := l.c.IPPools().Get(ctx, "", defaultpools.IPv4Name)
			if err != nil {
				t.Fatal(err)
			}
			p.Spec.VXLANMode, p.Spec.IPIPMode = vxlan, ipip
			if _, err = l.c.IPPools().Update(ctx, p); err == nil {
				return
			}
		}
	}
	nodes := func(what string, ok func(n *v3.Node) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ns, _, err := l.c.Nodes().List(ctx, client.ListOptions{})
			good := err == nil && len(ns) == 2
			for _, n := range ns {
				good = good && ok(n)
			}
			if good {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: nodes %+v, %v", what, ns, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	device := func(host lab.HostState, dev string, want bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := exec.Command("ip", "-n", host.NetNS, "addr", "show", dev).CombinedOutput()
			if (err == nil) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s on %s: want present=%v; %s", dev, host.Name, want, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	ipamCheck := func() {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "calicoctl"), "ipam", "check")
		cmd.Env = append(os.Environ(), "ETCD_ENDPOINTS="+l.State.EtcdEndpoint, "DATASTORE_TYPE=etcdv3")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "found 0 problems") {
			t.Fatalf("calicoctl ipam check: %v\n%s", err, out)
		}
	}

	nodes("no tunnel addresses", func(n *v3.Node) bool { return n.Spec.IPv4VXLANTunnelAddr == "" })
	setPool(v3.VXLANModeAlways, v3.IPIPModeNever)
	nodes("VXLAN addresses", func(n *v3.Node) bool {
		return strings.HasPrefix(n.Spec.IPv4VXLANTunnelAddr, "10.65.") && n.Spec.VXLANTunnelMACAddr != ""
	})
	n1, _ := l.c.Nodes().Get(ctx, "", "host1")
	device(l.State.Hosts[0], "vxlan.calico", true)
	out, _ := exec.Command("ip", "-n", l.State.Hosts[0].NetNS, "addr", "show", "vxlan.calico").CombinedOutput()
	if !strings.Contains(string(out), "inet "+n1.Spec.IPv4VXLANTunnelAddr+"/32") || !strings.Contains(string(out), n1.Spec.VXLANTunnelMACAddr) {
		t.Errorf("vxlan.calico of host1 (node %s %s):\n%s", n1.Spec.IPv4VXLANTunnelAddr, n1.Spec.VXLANTunnelMACAddr, out)
	}
	ipamCheck()

	// VXLAN to IPIP: the VXLAN addresses go, IPIP ones come. This kernel
	// may lack the ipip module: the Node and IPAM are what is checked.
	setPool(v3.VXLANModeNever, v3.IPIPModeAlways)
	nodes("IPIP addresses", func(n *v3.Node) bool {
		return n.Spec.IPv4VXLANTunnelAddr == "" && n.Spec.VXLANTunnelMACAddr == "" && n.Spec.BGP != nil && strings.HasPrefix(n.Spec.BGP.IPv4IPIPTunnelAddr, "10.65.")
	})
	device(l.State.Hosts[0], "vxlan.calico", false)
	ipamCheck()

	setPool(v3.VXLANModeNever, v3.IPIPModeNever)
	nodes("no tunnel addresses again", func(n *v3.Node) bool {
		return n.Spec.IPv4VXLANTunnelAddr == "" && n.Spec.BGP != nil && n.Spec.BGP.IPv4IPIPTunnelAddr == ""
	})
	ipamCheck()
	out, _ = exec.Command(filepath.Join(binDir, "calicoctl"), "ipam", "show").CombinedOutput()
	t.Logf("calicoctl ipam show:\n%s", out)
}

// TestLabRestartsFelixAfterConfigChange: a FelixConfiguration change that
// felix cannot apply live makes it exit (status 129, as under systemd);
// the lab starts it again, as systemd's Restart=on-failure would, and
// status shows it running.
func TestLabRestartsFelixAfterConfigChange(t *testing.T) {
	l := startLabWith(t, lab.Options{Hosts: 1})
	ctx := context.Background()
	old := l.PID("host1", "calico-felix")
	fc := v3.NewFelixConfiguration()
	fc.Name = "default"
	refresh := v3.Duration{Duration: 45 * time.Second}
	fc.Spec.RouteRefreshInterval = &refresh
	if _, err := l.c.Apply(ctx, fc); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := lab.LoadState(l.State.Dir)
		if err == nil {
			if pid := s.Hosts[0].PIDs["calico-felix"]; pid != old && pid != 0 && processAlive(pid) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("felix (pid %d) was not restarted after the configuration change", old)
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(l.State.Dir, "host1", "calico-felix.log"))
	if !strings.Contains(string(log), "calico-felix on host1 exited (status 129); restarting it") {
		t.Errorf("felix log does not tell of the restart:\n%s", tail(string(log), 20))
	}
	var b strings.Builder
	status, err := lab.Open(l.State.Dir, binDir, &b)
	if err != nil {
		t.Fatal(err)
	}
	status.Status(ctx)
	if !strings.Contains(b.String(), "calico-felix running") {
		t.Errorf("calico-lab status:\n%s", b.String())
	}
	// The restarted felix took the new value and stays up.
	time.Sleep(3 * time.Second)
	s, _ := lab.LoadState(l.State.Dir)
	if pid := s.Hosts[0].PIDs["calico-felix"]; !processAlive(pid) {
		t.Fatalf("restarted felix (pid %d) is not running", pid)
	}
}

func processAlive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
