package linux

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dataplane/runner"
	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/testutil"
)

// host is a test host: a namespace with an uplink-like interface so
// proxy ARP has somewhere else to route, and the dataplane programming it.
type host struct {
	ns  *testutil.NetNS
	dp  *Dataplane
	rec *runner.Recorder
}

func testLog(t testing.TB) *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	l.SetOutput(testWriter{t})
	return logrus.NewEntry(l).WithField("test", t.Name())
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newHostNS(t testing.TB) *testutil.NetNS {
	t.Helper()
	ns := testutil.NewNetNS(t)
	// No dummy module on every kernel: a veth pair whose peer stays here.
	must(t, ns.Exec("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"))
	must(t, ns.Exec("ip", "link", "set", "eth0peer", "up"))
	must(t, ns.Exec("ip", "addr", "add", "192.168.90.1/24", "dev", "eth0"))
	must(t, ns.Exec("ip", "link", "set", "eth0", "up"))
	must(t, ns.Exec("ip", "route", "add", "default", "via", "192.168.90.254", "dev", "eth0"))
	return ns
}

func newHost(t testing.TB, cfg dpapi.Config, opts ...Option) *host {
	t.Helper()
	ns := newHostNS(t)
	return attach(t, ns, cfg, opts...)
}

func attach(t testing.TB, ns *testutil.NetNS, cfg dpapi.Config, opts ...Option) *host {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "host1"
	}
	if cfg.Log == nil {
		cfg.Log = testLog(t)
	}
	rec := &runner.Recorder{Next: DefaultRunner(ns.Name)}
	dp, err := New(cfg, append([]Option{WithNetNS(ns.Name), WithRunner(rec)}, opts...)...)
	must(t, err)
	t.Cleanup(func() { _ = dp.Close() })
	return &host{ns: ns, dp: dp, rec: rec}
}

// workload is a workload namespace joined to the host by a veth pair.
type workload struct {
	ns    *testutil.NetNS
	iface string
	mac   string
	ip4   netip.Addr
	ip6   netip.Addr
}

func addWorkload(t testing.TB, h *testutil.NetNS, iface, ip4, ip6 string) *workload {
	t.Helper()
	wl := testutil.NewNetNS(t)
	must(t, h.Exec("ip", "link", "add", iface, "type", "veth", "peer", "name", "eth0", "netns", wl.Name))
	must(t, h.Exec("ip", "link", "set", iface, "up"))
	must(t, wl.Exec("ip", "link", "set", "eth0", "up"))
	w := &workload{ns: wl, iface: iface, ip4: netip.MustParseAddr(ip4)}
	must(t, wl.Exec("ip", "addr", "add", ip4+"/32", "dev", "eth0"))
	must(t, wl.Exec("ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"))
	must(t, wl.Exec("ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"))
	if ip6 != "" {
		w.ip6 = netip.MustParseAddr(ip6)
		must(t, wl.Exec("ip", "-6", "addr", "add", ip6+"/128", "dev", "eth0", "nodad"))
	}
	out, err := wl.Output("cat", "/sys/class/net/eth0/address")
	must(t, err)
	w.mac = strings.TrimSpace(out)
	return w
}

func (w *workload) endpoint(profiles ...string) *dpapi.Workload {
	ep := &dpapi.Workload{
		ID:       dpapi.WorkloadID("ns/" + w.iface),
		Iface:    w.iface,
		MAC:      w.mac,
		IPv4:     []netip.Prefix{netip.PrefixFrom(w.ip4, 32)},
		Profiles: profiles,
	}
	if w.ip6.IsValid() {
		ep.IPv6 = []netip.Prefix{netip.PrefixFrom(w.ip6, 128)}
	}
	return ep
}

// listen serves TCP on port in the workload's namespace until the test ends.
func (w *workload) listen(t testing.TB, port int) {
	t.Helper()
	var ln net.Listener
	must(t, w.ns.RunIn(func() error {
		var err error
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		return err
	}))
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
}

// canConnect dials dst:port from the workload's namespace.
func (w *workload) canConnect(t testing.TB, dst netip.Addr, port int) bool {
	t.Helper()
	err := w.ns.RunIn(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(dst, uint16(port)).String(), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return err == nil
}

func allowAllProfile() *dpapi.Profile {
	return &dpapi.Profile{Inbound: []dpapi.Rule{{Action: dpapi.Allow}}, Outbound: []dpapi.Rule{{Action: dpapi.Allow}}}
}

func baseState(wls ...*dpapi.Workload) *dpapi.State {
	s := &dpapi.State{
		Workloads:     map[dpapi.WorkloadID]*dpapi.Workload{},
		HostEndpoints: map[string]*dpapi.HostEndpoint{},
		Policies:      map[dpapi.PolicyID]*dpapi.Policy{},
		Profiles:      map[string]*dpapi.Profile{"allow-all": allowAllProfile()},
		IPSets:        map[string]*dpapi.IPSet{},
		Pools: map[string]*dpapi.Pool{
			"pool1": {Name: "pool1", CIDR: netip.MustParsePrefix("10.65.0.0/16")},
		},
		Hosts: map[string]*dpapi.Host{
			"host1": {Name: "host1", IPv4: netip.MustParsePrefix("192.168.90.1/24")},
		},
		InSync: true,
	}
	for _, w := range wls {
		s.Workloads[w.ID] = w
	}
	return s
}

// save returns iptables-save (or ip6tables-save) output of the host with
// counters and comments about generation dropped.
func (h *host) save(t testing.TB, ipv int) string {
	t.Helper()
	bin := "iptables-" + h.dp.Backend() + "-save"
	if ipv == 6 {
		bin = "ip6tables-" + h.dp.Backend() + "-save"
	}
	out, err := h.ns.Output(bin)
	must(t, err)
	var b bytes.Buffer
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// restoreInputs returns what the recorder saw written with iptables-restore.
func restoreInputs(rec *runner.Recorder) []string {
	var out []string
	for _, c := range rec.Calls() {
		if strings.Contains(c.Name, "tables") && strings.HasSuffix(c.Name, "restore") {
			out = append(out, string(c.Stdin))
		}
	}
	return out
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !eventuallyOK(timeout, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func eventuallyOK(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// diag returns routes, neighbours, sysctls and rule counters of the host,
// for failure messages.
func (h *host) diag(t testing.TB) string {
	var b strings.Builder
	for _, c := range [][]string{
		{"ip", "-d", "link"}, {"ip", "route"}, {"ip", "neigh"}, {"ip", "-6", "route"},
		{"sh", "-c", "grep -H . /proc/sys/net/ipv4/conf/cali*/proxy_arp /proc/sys/net/ipv4/conf/cali*/forwarding /proc/sys/net/ipv4/neigh/cali*/proxy_delay"},
		{"iptables-" + h.dp.Backend() + "-save", "-c"},
	} {
		out, err := h.ns.Output(c[0], c[1:]...)
		b.WriteString("$ " + strings.Join(c, " ") + "\n" + out)
		if err != nil {
			b.WriteString(err.Error() + "\n")
		}
	}
	return b.String()
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
