package dataplane

import (
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/cni-plugin/internal/nettest"
	"github.com/calico-etcd/calico/testutil"
)

func testLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// kernelEnv is a "host" namespace (nettest.NewHost) standing in for the
// root namespace, which tests never touch.
type kernelEnv struct {
	t    *testing.T
	host *testutil.NetNS
	k    *Kernel
}

func newKernelEnv(t *testing.T) *kernelEnv {
	t.Helper()
	return &kernelEnv{t: t, host: nettest.NewHost(t), k: NewKernel(testLog())}
}

func (e *kernelEnv) pod() (*testutil.NetNS, string) {
	p := testutil.NewNetNS(e.t)
	return p, "/var/run/netns/" + p.Name
}

// in runs f with the env's host namespace as the thread's namespace.
func (e *kernelEnv) in(f func() error) error { return e.host.RunIn(f) }

func (e *kernelEnv) setup(req *Request) *Result {
	e.t.Helper()
	var res *Result
	if err := e.in(func() (err error) { res, err = e.k.Setup(req); return err }); err != nil {
		e.t.Fatalf("Setup(%s): %v", req.IfName, err)
	}
	return res
}

func (e *kernelEnv) create(req *Request) {
	e.t.Helper()
	if err := e.in(func() error { _, err := e.k.Create(req); return err }); err != nil {
		e.t.Fatalf("Create(%s): %v", req.IfName, err)
	}
}

// assertNoPair fails if either end of the pair is left.
func (e *kernelEnv) assertNoPair(pod *testutil.NetNS, host string) {
	e.t.Helper()
	if out, _ := e.host.Output("ip", "link"); strings.Contains(out, host) {
		e.t.Errorf("host veth left behind:\n%s", out)
	}
	if out, _ := pod.Output("ip", "link"); strings.Contains(out, "eth0") {
		e.t.Errorf("pod veth left behind:\n%s", out)
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestHostVethName(t *testing.T) {
	// `echo -n default.nginx | sha1sum` starts c440f455693: Calico names
	// the interface of pod default/nginx "calic440f455693".
	for id, want := range map[string]string{
		"default.nginx": "calic440f455693",
		"":              "calida39a3ee5e6",
	} {
		if got := HostVethName(id); got != want {
			t.Errorf("HostVethName(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestKernelSetupDualStackPing(t *testing.T) {
	e := newKernelEnv(t)
	pod1, ns1 := e.pod()
	pod2, ns2 := e.pod()
	// req1 has its families known ahead (links set up by Create), req2
	// not (all of it in Configure).
	req1 := &Request{NetNS: ns1, IfName: "eth0", HostIfName: "calitest00001", Addrs: addrs("10.65.0.1", "fd00::1"), MTU: 1440,
		Families: Families{V4: true, V6: true}}
	req2 := &Request{NetNS: ns2, IfName: "eth0", HostIfName: "calitest00002", Addrs: addrs("10.65.0.2", "fd00::2")}
	res1 := e.setup(req1)
	e.setup(req2)
	if res1.HostMAC.String() != "ee:ee:ee:ee:ee:ee" || res1.PodMAC == nil {
		t.Fatalf("result %+v", res1)
	}

	out, _ := pod1.Output("ip", "-d", "addr", "show", "eth0")
	mustContain(t, out, "10.65.0.1/32", "fd00::1/128", "mtu 1440", res1.PodMAC.String())
	out, _ = pod1.Output("ip", "route")
	mustContain(t, out, "default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link")
	out, _ = pod1.Output("ip", "-6", "route")
	mustContain(t, out, "default via fe80::ecee:eeff:feee:eeee dev eth0")
	out, _ = e.host.Output("ip", "route")
	mustContain(t, out, "10.65.0.1 dev calitest00001 scope link", "10.65.0.2 dev calitest00002 scope link")
	// Protocol boot (3): felix's, so felix adopts the route unchanged.
	out, _ = e.host.Output("ip", "-d", "route", "show", "10.65.0.1")
	mustContain(t, out, "proto boot scope link")
	out, _ = e.host.Output("ip", "link", "show", "calitest00001")
	mustContain(t, out, "ee:ee:ee:ee:ee:ee", "mtu 1440", "UP")
	for path, want := range map[string]string{
		"net.ipv4.conf.calitest00001.proxy_arp":    "1",
		"net.ipv4.neigh.calitest00001.proxy_delay": "0",
		"net.ipv4.conf.calitest00001.forwarding":   "1",
		"net.ipv6.conf.calitest00001.proxy_ndp":    "1",
		"net.ipv6.conf.calitest00001.accept_ra":    "0",
		"net.ipv6.conf.calitest00001.forwarding":   "1",
	} {
		out, err := e.host.Output("sysctl", "-n", path)
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("%s = %q (%v), want %s", path, out, err, want)
		}
	}

	for _, p := range []struct {
		from *testutil.NetNS
		to   string
	}{{pod1, "10.65.0.2"}, {pod1, nettest.HostIPv4.String()}, {pod1, "fd00::2"}, {pod1, nettest.HostIPv6.String()}, {pod2, "10.65.0.1"}} {
		if err := nettest.Ping(p.from, netip.MustParseAddr(p.to), 3*time.Second); err != nil {
			t.Error(err)
		}
	}

	// Check passes on what Setup made, and fails once a piece is gone.
	creq := *req1
	creq.PodMAC = res1.PodMAC
	if err := e.in(func() error { return e.k.Check(&creq) }); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := e.host.Exec("ip", "route", "del", "10.65.0.1/32"); err != nil {
		t.Fatal(err)
	}
	err := e.in(func() error { return e.k.Check(&creq) })
	if err == nil || !strings.Contains(err.Error(), "route to 10.65.0.1/32 missing") {
		t.Fatalf("Check after route removal: %v", err)
	}
}

func TestKernelInterfaceExistsLeavesItAlone(t *testing.T) {
	e := newKernelEnv(t)
	pod, nsPath := e.pod()
	req := &Request{NetNS: nsPath, IfName: "eth0", HostIfName: "calitest00003", Addrs: addrs("10.65.0.3")}
	e.setup(req)

	again := *req
	again.HostIfName = "calitest00004"
	for name, f := range map[string]func() error{
		"Create": func() error { _, err := e.k.Create(&again); return err },
		"Setup":  func() error { _, err := e.k.Setup(&again); return err },
	} {
		if err := e.in(f); !errors.Is(err, ErrInterfaceExists) {
			t.Errorf("%s of an existing interface: %v, want ErrInterfaceExists", name, err)
		}
	}
	hostDup := *req
	hostDup.IfName = "eth1"
	if err := e.in(func() error { _, err := e.k.Create(&hostDup); return err }); !errors.Is(err, ErrAlreadyAttached) {
		t.Errorf("Create of a second interface of the pod: %v", err)
	}
	otherPod, otherNS := e.pod()
	elsewhere := *req
	elsewhere.NetNS = otherNS
	if err := e.in(func() error { _, err := e.k.Create(&elsewhere); return err }); !errors.Is(err, ErrHostInterfaceExists) {
		t.Errorf("Create in another pod with a taken host name: %v", err)
	}
	if out, _ := otherPod.Output("ip", "link"); strings.Contains(out, "eth0") {
		t.Errorf("refused Create left an interface in the other pod:\n%s", out)
	}
	if err := pod.Exec("ip", "addr", "show", "eth0"); err != nil {
		t.Errorf("the first interface is gone: %v", err)
	}
	if err := e.in(func() error { return e.k.Check(req) }); err != nil {
		t.Errorf("Check after refused ADD: %v", err)
	}
}

func TestKernelSetupFailureLeavesNothing(t *testing.T) {
	e := newKernelEnv(t)
	pod, nsPath := e.pod()
	// A route to the pod's address via another interface makes the host
	// route fail after the pair exists.
	for _, args := range [][]string{
		{"link", "add", "other0", "type", "veth", "peer", "name", "other1"},
		{"link", "set", "other0", "up"},
		{"route", "add", "10.65.0.9/32", "dev", "other0"},
	} {
		if err := e.host.Exec("ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	req := &Request{NetNS: nsPath, IfName: "eth0", HostIfName: "calitest00009", Addrs: addrs("10.65.0.9")}
	err := e.in(func() error { _, err := e.k.Setup(req); return err })
	if err == nil || !strings.Contains(err.Error(), "already exists via other0") {
		t.Fatalf("Setup over a conflicting route: %v", err)
	}
	e.assertNoPair(pod, "calitest00009")
}

// Create with the families known brings both ends up and routes the pod
// before it has an address; addresses of another family then fail
// Configure, which removes the pair.
func TestKernelCreateLinksThenWrongFamily(t *testing.T) {
	e := newKernelEnv(t)
	pod, nsPath := e.pod()
	req := &Request{NetNS: nsPath, IfName: "eth0", HostIfName: "calitest00008", Families: Families{V4: true}}
	e.create(req)
	out, _ := pod.Output("ip", "route")
	mustContain(t, out, "default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link")
	out, _ = e.host.Output("ip", "link", "show", "calitest00008")
	mustContain(t, out, "UP")
	out, _ = e.host.Output("sysctl", "-n", "net.ipv4.conf.calitest00008.proxy_arp")
	mustContain(t, out, "1")

	req.Addrs = addrs("fd00::8")
	err := e.in(func() error { return e.k.Configure(req) })
	if !errors.Is(err, ErrFamilies) {
		t.Fatalf("Configure with an IPv6 address on an IPv4 pair: %v", err)
	}
	e.assertNoPair(pod, "calitest00008")
}

func TestKernelTeardownIdempotent(t *testing.T) {
	e := newKernelEnv(t)
	pod, nsPath := e.pod()
	req := &Request{NetNS: nsPath, IfName: "eth0", HostIfName: "calitest00005", Addrs: addrs("10.65.0.5")}
	e.setup(req)
	for i := 0; i < 2; i++ {
		detached := 0
		if err := e.in(func() error { return e.k.Teardown(nsPath, "eth0", func() { detached++ }) }); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
		if want := 1 - i; detached != want {
			t.Errorf("Teardown #%d called detached %d times, want %d", i+1, detached, want)
		}
	}
	if out, _ := e.host.Output("ip", "route"); strings.Contains(out, "10.65.0.5") {
		t.Errorf("host route left behind:\n%s", out)
	}
	if out, _ := e.host.Output("ip", "link"); strings.Contains(out, "calitest00005") {
		t.Errorf("host veth left behind:\n%s", out)
	}
	pod.Delete()
	if err := e.in(func() error { return e.k.Teardown(nsPath, "eth0", nil) }); err != nil {
		t.Errorf("Teardown with the namespace gone: %v", err)
	}
	if err := e.in(func() error { _, err := e.k.Create(req); return err }); !errors.Is(err, ErrNetNSNotFound) {
		t.Errorf("Create with the namespace gone: %v", err)
	}
	if err := e.in(func() error { return e.k.DeleteHostVeth("calitest00005") }); err != nil {
		t.Errorf("DeleteHostVeth of a missing interface: %v", err)
	}
}

func TestKernelTeardownDetachesBeforeDeleting(t *testing.T) {
	e := newKernelEnv(t)
	_, nsPath := e.pod()
	req := &Request{NetNS: nsPath, IfName: "eth0", HostIfName: "calitest00006", Addrs: addrs("10.65.0.6", "fd00::6")}
	e.setup(req)
	var routesAtDetach, linkAtDetach string
	err := e.in(func() error {
		return e.k.Teardown(nsPath, "eth0", func() {
			routesAtDetach, _ = e.host.Output("ip", "-d", "route", "show", "table", "all")
			linkAtDetach, _ = e.host.Output("ip", "-o", "link")
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(routesAtDetach, "10.65.0.6") || strings.Contains(routesAtDetach, "fd00::6") {
		t.Errorf("host routes still there at detach:\n%s", routesAtDetach)
	}
	if !strings.Contains(linkAtDetach, "calitest00006") {
		t.Errorf("detached called after the link was gone")
	}
}

// issue 23 item 4: DeletePair removes the pair an earlier Create made for
// the same request (both ends, and with the host side its routes), and
// nothing else: not a foreign eth0, not a pair to another host name, not
// a host interface of that name paired elsewhere.
func TestKernelDeletePairOnlyItsOwn(t *testing.T) {
	e := newKernelEnv(t)
	deletePair := func(req *Request) bool {
		t.Helper()
		var gone bool
		if err := e.in(func() (err error) { gone, err = e.k.DeletePair(req); return err }); err != nil {
			t.Fatalf("DeletePair(%s, %s): %v", req.IfName, req.HostIfName, err)
		}
		return gone
	}

	pod, nsPath := e.pod()
	req := &Request{NetNS: nsPath, IfName: "eth0", HostIfName: "calitest00020", Addrs: addrs("10.65.0.20")}
	e.setup(req)
	// Another host name (absent, or a veth paired on the host), and a
	// request for another pod, are not this pair.
	if err := e.host.Exec("ip", "link", "add", "calitest00022", "type", "veth", "peer", "name", "x22"); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"calitest00021", "calitest00022"} {
		if deletePair(&Request{NetNS: nsPath, IfName: "eth0", HostIfName: host}) {
			t.Fatalf("deleted the pod's pair for host name %s", host)
		}
	}
	if err := e.host.Exec("ip", "link", "show", "calitest00022"); err != nil {
		t.Errorf("the host's other veth is gone: %v", err)
	}
	otherPod, otherPath := e.pod()
	if deletePair(&Request{NetNS: otherPath, IfName: "eth0", HostIfName: "calitest00020"}) {
		t.Fatal("deleted the pair for a request in another pod")
	}
	if err := e.in(func() error { return e.k.Check(req) }); err != nil {
		t.Fatalf("the pair after refused deletions: %v", err)
	}
	if !deletePair(req) {
		t.Fatal("the request's own pair was not deleted")
	}
	e.assertNoPair(pod, "calitest00020")
	if out, _ := e.host.Output("ip", "route"); strings.Contains(out, "10.65.0.20") {
		t.Errorf("host route left:\n%s", out)
	}
	if deletePair(req) {
		t.Fatal("a second DeletePair deleted something")
	}
	// Made again, as a retried ADD does.
	e.setup(req)

	// A foreign eth0 (a veth pair inside the pod) is left alone.
	if err := otherPod.Exec("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"); err != nil {
		t.Fatal(err)
	}
	if deletePair(&Request{NetNS: otherPath, IfName: "eth0", HostIfName: "peer0"}) {
		t.Fatal("deleted a pair the plugin did not make")
	}
	if err := otherPod.Exec("ip", "link", "show", "eth0"); err != nil {
		t.Errorf("the foreign eth0 is gone: %v", err)
	}
}
