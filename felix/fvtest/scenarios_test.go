package fvtest

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// step applies change (for steps after the first) and waits for probes.
type step struct {
	change []v3.Resource
	probes []probe
	verify func(t *testing.T)
}

// scenario is one row of the policy matrix. Resources it created are
// deleted afterwards; restore is re-applied (for endpoints it modified).
type scenario struct {
	name    string
	setup   []v3.Resource
	steps   []step
	restore []v3.Resource
}

func (s scenario) cleanup() []v3.Resource {
	seen := map[string]bool{}
	var out []v3.Resource
	add := func(rs []v3.Resource) {
		for _, r := range rs {
			m := r.GetObjectMeta()
			k := r.GetTypeMeta().Kind + "/" + m.Namespace + "/" + m.Name
			if r.GetTypeMeta().Kind == v3.KindWorkloadEndpoint || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, r)
		}
	}
	add(s.setup)
	for _, st := range s.steps {
		add(st.change)
	}
	// Tiers last: a tier cannot be deleted while it holds policies.
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].GetTypeMeta().Kind != v3.KindTier && out[j].GetTypeMeta().Kind == v3.KindTier
	})
	return out
}

func allow(src v3.EntityRule) v3.Rule { return v3.Rule{Action: v3.Allow, Source: src} }

func sel(s string) v3.EntityRule { return v3.EntityRule{Selector: s} }

func ip32(w *wl) string { return w.ip.String() + "/32" }

func scenarios(c *cluster) []scenario {
	db := "app == 'db'"
	icmp := func(typ int) v3.Rule {
		return v3.Rule{Action: v3.Allow, Protocol: proto("ICMP"), ICMP: &v3.ICMPFields{Type: &typ}}
	}
	tcpTo := func(ports ...v3.Port) v3.Rule {
		return v3.Rule{Action: v3.Allow, Protocol: proto("TCP"), Destination: v3.EntityRule{Ports: ports}}
	}
	portRange, _ := v3.PortFromRange(8080, 8081)

	orderPol := func(order float64) *v3.GlobalNetworkPolicy {
		return gnp("deny-frontend", order, db, []v3.Rule{{Action: v3.Deny, Source: sel("role == 'frontend'")}}, nil)
	}
	tier := v3.NewTier()
	tier.Name = "sec"
	tierOrder := 100.0
	tier.Spec.Order = &tierOrder
	inTier := func(p *v3.GlobalNetworkPolicy) *v3.GlobalNetworkPolicy { p.Spec.Tier = "sec"; return p }

	trusted := v3.NewGlobalNetworkSet()
	trusted.Name = "trusted"
	trusted.Labels = lbl("role", "trusted")
	trusted.Spec.Nets = []string{ip32(c.w3)}

	nsEgress := v3.NewNetworkPolicy()
	nsEgress.Namespace, nsEgress.Name = "ns-a", "egress-web"
	nsEgress.Spec = v3.NetworkPolicySpec{Selector: db, Egress: []v3.Rule{{Action: v3.Allow, Destination: sel("app == 'web'")}},
		Types: []v3.PolicyType{v3.PolicyTypeEgress}}

	custom := v3.NewProfile()
	custom.Name = "custom"
	custom.Spec.Ingress = []v3.Rule{{Action: v3.Deny, Source: sel("role == 'frontend'")}, {Action: v3.Allow}}
	custom.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	w2Custom := workloadEndpoint(c.w2, "ns-a", lbl("app", "db"), "kns.ns-a", "custom")
	w2Orig := workloadEndpoint(c.w2, "ns-a", lbl("app", "db"), "kns.ns-a", "projectcalico-default-allow")
	w2Orig.Spec.Ports = []v3.WorkloadEndpointPort{{Name: "http-alt", Protocol: v3.ProtocolFromString("TCP"), Port: 8080}}

	return []scenario{
		{name: "ingress allow by selector and port", setup: []v3.Resource{
			gnp("ingress", 10, db, []v3.Rule{{Action: v3.Allow, Protocol: proto("TCP"), Source: sel("app == 'web'"),
				Destination: v3.EntityRule{Ports: []v3.Port{v3.SinglePort(80)}}}}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, true), tcpP(c.w1, c.w2, 8080, false),
				icmpP(c.w1, c.w2, false), tcpP(c.w2, c.w1, 80, true)}}}},
		{name: "egress allow only to db", setup: []v3.Resource{
			gnp("egress", 10, "app == 'web'", nil, []v3.Rule{{Action: v3.Allow, Destination: sel(db)}})},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 80, true), tcpP(c.w1, c.w3, 80, false), tcpP(c.w3, c.w1, 80, false),
				tcpP(c.w2, c.w1, 80, true), icmpP(c.w3, c.w2, true)}}}},
		{name: "namespaceSelector", setup: []v3.Resource{
			gnp("from-team-b", 10, db, []v3.Rule{allow(v3.EntityRule{NamespaceSelector: "team == 'b'"})}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w3, c.w2, 80, true), tcpP(c.w1, c.w2, 80, false)}}}},
		{name: "selector with in and !has", setup: []v3.Resource{
			gnp("in-not", 10, db, []v3.Rule{allow(sel("app in {'web', 'cache'} && !has(tier)"))}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, false)}}}},
		{name: "selector with has", setup: []v3.Resource{
			gnp("has", 10, db, []v3.Rule{allow(sel("has(tier)"))}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w3, c.w2, 80, true), tcpP(c.w1, c.w2, 80, false)}}}},
		{name: "port range", setup: []v3.Resource{gnp("range", 10, db, []v3.Rule{tcpTo(portRange)}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 8080, true), tcpP(c.w1, c.w2, 8081, true),
				tcpP(c.w1, c.w2, 80, false), tcpP(c.w1, c.w2, 9000, false)}}}},
		{name: "named port", setup: []v3.Resource{gnp("named", 10, db, []v3.Rule{tcpTo(v3.NamedPort("http-alt"))}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 8080, true), tcpP(c.w3, c.w2, 8080, true),
				tcpP(c.w1, c.w2, 80, false), tcpP(c.w1, c.w2, 8081, false)}}}},
		{name: "ICMP type", setup: []v3.Resource{gnp("icmp", 10, db, []v3.Rule{icmp(8)}, nil)},
			steps: []step{
				{probes: []probe{icmpP(c.w1, c.w2, true), tcpP(c.w1, c.w2, 80, false)}},
				{change: []v3.Resource{gnp("icmp", 10, db, []v3.Rule{icmp(13)}, nil)}, probes: []probe{icmpP(c.w1, c.w2, false)}},
			}},
		{name: "nets", setup: []v3.Resource{gnp("nets", 10, db, []v3.Rule{allow(v3.EntityRule{Nets: []string{ip32(c.w1)}})}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, false)}}}},
		{name: "notNets", setup: []v3.Resource{gnp("notnets", 10, db, []v3.Rule{allow(v3.EntityRule{NotNets: []string{ip32(c.w1)}})}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 80, false), tcpP(c.w3, c.w2, 80, true)}}}},
		{name: "GlobalNetworkSet", setup: []v3.Resource{trusted, gnp("gns", 10, db, []v3.Rule{allow(sel("role == 'trusted'"))}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w3, c.w2, 80, true), tcpP(c.w1, c.w2, 80, false)}}}},
		{name: "Deny vs Allow by order", setup: []v3.Resource{orderPol(10), gnp("allow-all", 20, db, []v3.Rule{{Action: v3.Allow}}, nil)},
			steps: []step{
				{probes: []probe{tcpP(c.w1, c.w2, 80, false), tcpP(c.w3, c.w2, 80, true)}},
				{change: []v3.Resource{orderPol(30)}, probes: []probe{tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, true)}},
			}},
		{name: "Pass to the next tier", setup: []v3.Resource{tier,
			inTier(gnp("sec.pass-frontend", 1, db, []v3.Rule{{Action: v3.Pass, Source: sel("role == 'frontend'")}, {Action: v3.Deny}}, nil)),
			gnp("allow-db", 10, db, []v3.Rule{{Action: v3.Allow}}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, false)}}}},
		{name: "profile fall-through after Pass", setup: []v3.Resource{tier,
			inTier(gnp("sec.pass-only", 1, db, []v3.Rule{{Action: v3.Pass, Source: sel("role == 'frontend'")}}, nil))},
			steps: []step{{probes: []probe{tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, false)}}}},
		{name: "Log then Allow", setup: []v3.Resource{gnp("log", 10, db, []v3.Rule{{Action: v3.Log, Source: sel("app == 'web'")}, {Action: v3.Allow, Source: sel("tier == 'x'")}}, nil)},
			steps: []step{{probes: []probe{tcpP(c.w3, c.w2, 80, true), tcpP(c.w1, c.w2, 80, false)},
				verify: func(t *testing.T) {
					if s := iptablesSave(); !strings.Contains(s, "-j LOG") || !strings.Contains(s, "calico-packet") {
						t.Errorf("no LOG rule with prefix calico-packet in iptables:\n%s", s)
					}
				}}}},
		{name: "profile rules", setup: []v3.Resource{custom}, restore: []v3.Resource{w2Orig},
			steps: []step{
				{probes: []probe{tcpP(c.w1, c.w2, 80, true)}},
				{change: []v3.Resource{w2Custom}, probes: []probe{tcpP(c.w1, c.w2, 80, false), tcpP(c.w3, c.w2, 80, true), tcpP(c.w2, c.w1, 80, true)}},
			}},
		{name: "NetworkPolicy egress is namespace scoped", setup: []v3.Resource{nsEgress},
			steps: []step{{probes: []probe{tcpP(c.w2, c.w1, 80, true), tcpP(c.w2, c.w3, 80, false), tcpP(c.w3, c.w1, 80, true)}}}},
	}
}

func runScenario(t *testing.T, f *felix, sc scenario) {
	apply(t, sc.setup...)
	for i, st := range sc.steps {
		if i > 0 {
			apply(t, st.change...)
		}
		expect(t, f, st.probes...)
		if st.verify != nil {
			st.verify(t)
		}
	}
	apply(t, sc.restore...)
	remove(t, sc.cleanup()...)
}

func testHostEndpoint(t *testing.T, f *felix) {
	ext, err := newNS("fvx")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"ip", "link", "add", "hep0", "type", "veth", "peer", "name", "eth0", "netns", ext.Name},
		{"ip", "addr", "add", "192.168.91.1/24", "dev", "hep0"},
		{"ip", "link", "set", "hep0", "up"},
	} {
		if err := run(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{
		{"ip", "addr", "add", "192.168.91.2/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
	} {
		if err := ext.Exec(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	hostIP := netip.MustParseAddr("192.168.91.1")
	hostListen(t, hostIP.String(), 22, 8080)
	from := func(port int, want bool) probe {
		return probe{fromN: ext, to: hostIP, toN: "host", port: port, want: want}
	}
	expect(t, f, from(22, true), from(8080, true))

	hep := v3.NewHostEndpoint()
	hep.Name = nodeName + "-hep0"
	hep.Labels = lbl("role", "host")
	hep.Spec = v3.HostEndpointSpec{Node: nodeName, InterfaceName: "hep0", ExpectedIPs: []string{hostIP.String()}}
	apply(t, hep)
	expect(t, f, from(22, true), from(8080, false))

	// A policy opens 8080 again.
	p := gnp("host-8080", 10, "role == 'host'", []v3.Rule{{Action: v3.Allow, Protocol: proto("TCP"),
		Destination: v3.EntityRule{Ports: []v3.Port{v3.SinglePort(8080)}}}}, []v3.Rule{{Action: v3.Allow}})
	apply(t, p)
	expect(t, f, from(22, true), from(8080, true))
	remove(t, p, hep)
	expect(t, f, from(22, true), from(8080, true))
}

func testRestart(t *testing.T, c *cluster, f *felix) *felix {
	// A deny that must survive the restart, and an open connection.
	deny := gnp("deny-w3", 10, "app == 'db'", []v3.Rule{{Action: v3.Deny, Source: sel("tier == 'x'")}, {Action: v3.Allow}}, nil)
	apply(t, deny)
	defer remove(t, deny)
	expect(t, f, tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, false))

	s, err := openStream(c.w1, c.w2.ip, 80)
	if err != nil {
		t.Fatal(err)
	}
	f.stop(t)
	steady(t, 2*time.Second, tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, false), tcpP(c.w4, c.w1, 80, false))
	f2 := startFelix(t)
	steady(t, time.Second, tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, false))
	if err := s.close(); err != nil {
		t.Errorf("the established connection broke across the restart: %v", err)
	}
	if !strings.Contains(f2.tail(400), "Dataplane in sync") {
		t.Errorf("restarted felix did not report in sync:\n%s", f2.tail(20))
	}
	return f2
}

func testEtcdOutage(t *testing.T, c *cluster, f *felix) {
	base := []probe{tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, true), tcpP(c.w4, c.w1, 80, false)}
	expect(t, f, base...)
	etcdSrv.Stop()
	steady(t, 4*time.Second, base...)
	if !f.running() || f.get("/liveness") != 200 {
		t.Fatalf("felix not live during the etcd outage:\n%s", f.tail(20))
	}
	if err := etcdSrv.Start(); err != nil {
		t.Fatal(err)
	}
	deny := gnp("deny-after-outage", 10, "app == 'db'", []v3.Rule{{Action: v3.Deny, Source: sel("role == 'frontend'")}, {Action: v3.Allow}}, nil)
	eventually(t, 20*time.Second, "writing to etcd after restart", func() error {
		_, err := cli.Apply(ctx(t), v3.Clone(deny))
		return err
	})
	expect(t, f, tcpP(c.w1, c.w2, 80, false), tcpP(c.w3, c.w2, 80, true))
	remove(t, deny)
	expect(t, f, base...)
}

// stream is a TCP connection that echoes a byte every 100ms in the
// background; close reports the first failure.
type stream struct {
	stop chan struct{}
	wg   sync.WaitGroup
	err  error
}

func openStream(from *wl, to netip.Addr, port int) (*stream, error) {
	var conn interface {
		Write([]byte) (int, error)
		Read([]byte) (int, error)
		SetDeadline(time.Time) error
		Close() error
	}
	if err := from.ns.RunIn(func() error {
		c, err := dialTCP(to, port)
		conn = c
		return err
	}); err != nil {
		return nil, err
	}
	s := &stream{stop: make(chan struct{})}
	s.wg.Go(func() {
		defer conn.Close()
		buf := make([]byte, 1)
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := conn.Write([]byte{byte(i)}); err != nil {
				s.err = fmt.Errorf("write %d: %w", i, err)
				return
			}
			if _, err := conn.Read(buf); err != nil || buf[0] != byte(i) {
				s.err = fmt.Errorf("echo %d: %v", i, err)
				return
			}
		}
	})
	return s, nil
}

func (s *stream) close() error {
	close(s.stop)
	s.wg.Wait()
	return s.err
}

func testConfigRestart(t *testing.T, c *cluster, f *felix) {
	fc := v3.NewFelixConfiguration()
	fc.Name = "node." + nodeName
	fc.Spec.IptablesRefreshInterval = &v3.Duration{Duration: 45 * time.Second}
	apply(t, fc)
	defer remove(t, fc)
	select {
	case err := <-f.done:
		f.done <- err
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 129 {
			t.Fatalf("felix exited with %v, want exit status 129\n%s", err, f.tail(10))
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("felix did not exit after a restart-needing change\n%s", f.tail(10))
	}
	if !strings.Contains(f.tail(10), "IptablesRefreshInterval") {
		t.Errorf("the exit log does not name the parameter:\n%s", f.tail(10))
	}
	steady(t, time.Second, tcpP(c.w1, c.w2, 80, true), tcpP(c.w4, c.w1, 80, false))
}
