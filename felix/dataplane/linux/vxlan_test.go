package linux

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
	"github.com/calico-etcd/calico/testutil"
)

// twoHosts are two host namespaces whose eth0s are the two ends of one
// veth pair (one subnet per family), each with its own dataplane.
type twoHosts struct {
	a, b *host
}

func newTwoHosts(t *testing.T) *twoHosts {
	t.Helper()
	nsA, nsB := testutil.NewNetNS(t), testutil.NewNetNS(t)
	must(t, nsA.Exec("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0b", "netns", nsB.Name))
	must(t, nsB.Exec("ip", "link", "set", "eth0b", "name", "eth0"))
	for i, ns := range []*testutil.NetNS{nsA, nsB} {
		must(t, ns.Exec("ip", "addr", "add", fmt.Sprintf("192.168.91.%d/24", i+1), "dev", "eth0"))
		must(t, ns.Exec("ip", "addr", "add", fmt.Sprintf("fd00:91::%d/64", i+1), "dev", "eth0", "nodad"))
		must(t, ns.Exec("ip", "link", "set", "eth0", "up"))
		// As real hosts have: proxy ARP for the workloads' 169.254.1.1
		// gateway answers only with a route to it.
		must(t, ns.Exec("ip", "route", "add", "default", "via", "192.168.91.254"))
	}
	return &twoHosts{
		a: attach(t, nsA, dpapi.Config{Hostname: "hosta", IPv6Support: true}),
		b: attach(t, nsB, dpapi.Config{Hostname: "hostb", IPv6Support: true}),
	}
}

// vxlanState is the cluster as both hosts see it, with the local
// workloads of one of them.
func vxlanState(mode dpapi.EncapMode, local ...*dpapi.Workload) *dpapi.State {
	s := baseState(local...)
	s.Pools = map[string]*dpapi.Pool{
		"v4": {Name: "v4", CIDR: mustPrefix("10.65.0.0/16"), VXLAN: mode},
		"v6": {Name: "v6", CIDR: mustPrefix("fd00:65::/64"), VXLAN: mode},
	}
	s.Hosts = map[string]*dpapi.Host{}
	for i, name := range []string{"hosta", "hostb"} {
		s.Hosts[name] = &dpapi.Host{Name: name,
			IPv4: mustPrefix(fmt.Sprintf("192.168.91.%d/24", i+1)), IPv6: mustPrefix(fmt.Sprintf("fd00:91::%d/64", i+1)),
			VXLANTunnelAddr: netip.MustParseAddr(fmt.Sprintf("10.65.%d.1", i)), VXLANTunnelMAC: nodeinfo.VXLANTunnelMAC(name, false),
			VXLANTunnelAddrV6: netip.MustParseAddr(fmt.Sprintf("fd00:65::%d:1", i)), VXLANTunnelMACV6: nodeinfo.VXLANTunnelMAC(name, true),
		}
	}
	s.RemoteBlocks = []dpapi.RemoteBlock{
		{CIDR: mustPrefix("10.65.0.0/26"), Host: "hosta"}, {CIDR: mustPrefix("10.65.1.0/26"), Host: "hostb"},
		{CIDR: mustPrefix("fd00:65::/122"), Host: "hosta"}, {CIDR: mustPrefix("fd00:65::1:0/122"), Host: "hostb"},
	}
	return s
}

// capture runs tcpdump on the namespace's eth0 until stop is called and
// returns the lines it printed.
func capture(t *testing.T, ns *testutil.NetNS, filter string) (stop func() []string) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed (apt-get install tcpdump)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "tcpdump", "-l", "-n", "-i", "eth0", filter)
	out, err := cmd.StdoutPipe()
	must(t, err)
	errOut, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	// tcpdump says "listening on" once it captures.
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errOut)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
				for sc.Scan() {
				}
				return
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
		time.Sleep(200 * time.Millisecond) // let the last packets be printed
		cancel()
		_ = cmd.Wait()
		return <-lines
	}
}

func ping(w *workload, dst netip.Addr) error {
	return w.ns.Exec("ping", "-c", "1", "-W", "1", dst.String())
}

// TestKernelVXLANTrafficBetweenHosts: two hosts, IPv4 and IPv6 pools with
// VXLAN Always; workloads on different hosts ping each other, and what
// crosses the wire between the hosts is VXLAN (UDP 4789) only.
func TestKernelVXLANTrafficBetweenHosts(t *testing.T) {
	hs := newTwoHosts(t)
	wa := addWorkload(t, hs.a.ns, "calia1", "10.65.0.2", "fd00:65::2")
	wb := addWorkload(t, hs.b.ns, "calib1", "10.65.1.2", "fd00:65::1:2")
	must(t, hs.a.dp.Apply(t.Context(), vxlanState(dpapi.EncapAlways, wa.endpoint("allow-all"))))
	must(t, hs.b.dp.Apply(t.Context(), vxlanState(dpapi.EncapAlways, wb.endpoint("allow-all"))))
	for _, p := range []struct {
		h *host
		w *workload
	}{{hs.a, wa}, {hs.b, wb}} {
		must(t, p.w.ns.Exec("ip", "-6", "route", "add", "default", "via", linkLocal(t, p.h, p.w.iface), "dev", "eth0"))
	}

	link, err := hs.a.ns.Output("ip", "-d", "addr", "show", "vxlan-v6.calico")
	must(t, err)
	for _, want := range []string{"vxlan id 4096", "local fd00:91::1", "dstport 4789", "nolearning",
		nodeinfo.VXLANTunnelMAC("hosta", true), "inet6 fd00:65::1/128", "mtu 1430"} {
		if !strings.Contains(link, want) {
			t.Errorf("vxlan-v6.calico lacks %q:\n%s", want, link)
		}
	}
	rt, _ := hs.a.ns.Output("ip", "-6", "route", "show", "proto", "80")
	fdb, _ := hs.a.ns.Output("bridge", "fdb", "show", "dev", "vxlan-v6.calico")
	if !strings.Contains(rt, "fd00:65::1:0/122 via fd00:65::1:1 dev vxlan-v6.calico") ||
		!strings.Contains(fdb, nodeinfo.VXLANTunnelMAC("hostb", true)+" dst fd00:91::2") {
		t.Errorf("IPv6 VXLAN routes/FDB:\n%s\n%s", rt, fdb)
	}
	if sv := hs.a.save(t, 6); !strings.Contains(sv, "Allow VXLAN packets from Calico hosts") {
		t.Errorf("no IPv6 VXLAN input rule:\n%s", sv)
	}

	stop := capture(t, hs.a.ns, "")
	for _, dst := range []netip.Addr{wb.ip4, wb.ip6} {
		if !eventuallyOK(10*time.Second, func() bool { return ping(wa, dst) == nil }) {
			stop()
			t.Fatalf("ping %s from host A's workload failed\n%s\n%s", dst, hs.a.diag(t), hs.b.diag(t))
		}
	}
	if err := ping(wb, wa.ip6); err != nil {
		t.Errorf("ping back over IPv6: %v", err)
	}
	lines := stop()
	var vx4, vx6 int
	for _, l := range lines {
		f := strings.Fields(l) // time, IP|IP6, src, >, dst, ...
		if len(f) < 5 {
			continue
		}
		switch {
		case strings.HasPrefix(f[2], "10.65.") || strings.HasPrefix(f[2], "fd00:65:"):
			// A pod address in the outer header: not encapsulated.
			t.Errorf("pod traffic on the wire without encapsulation: %s", l)
		case f[1] == "IP" && strings.Contains(l, "VXLAN"):
			vx4++
		case f[1] == "IP6" && strings.Contains(l, "VXLAN"):
			vx6++
		}
	}
	if vx4 == 0 || vx6 == 0 {
		t.Fatalf("VXLAN packets on eth0: IPv4 %d, IPv6 %d; capture:\n%s", vx4, vx6, strings.Join(lines, "\n"))
	}
	t.Logf("VXLAN packets seen on host A's eth0: %d over IPv4, %d over IPv6", vx4, vx6)

	// VXLAN off: the devices go, so does the traffic.
	off := vxlanState(dpapi.EncapNever, wa.endpoint("allow-all"))
	must(t, hs.a.dp.Apply(t.Context(), off))
	for _, dev := range []string{"vxlan.calico", "vxlan-v6.calico"} {
		if out, err := hs.a.ns.Output("ip", "link", "show", dev); err == nil {
			t.Errorf("%s still exists:\n%s", dev, out)
		}
	}
}
