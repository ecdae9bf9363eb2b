package acceptance

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/libcalico/client"

	"github.com/calico-etcd/calico/cni-plugin/internal/nettest"
	"github.com/calico-etcd/calico/cni-plugin/pkg/dataplane"
)

func ping(t *testing.T, from *pod, to string) {
	t.Helper()
	if err := nettest.Ping(from.ns, netip.MustParseAddr(to), 5*time.Second); err != nil {
		t.Error(err)
	}
}

func TestTwoPodsPingEachOtherAndHost(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	h.addPool("pool6", poolV6, 122)
	l := h.list(netConf{ipv6: true})
	if err := h.status(l); err != nil {
		t.Fatalf("STATUS: %v", err)
	}

	web := h.newPod("aaaa0001", "prod/web-1")
	job := h.newPod("aaaa0002", "")
	h.mustAdd(l, web)
	h.mustAdd(l, job)

	for _, p := range []*pod{web, job} {
		if p.addr(false) == "" || p.addr(true) == "" {
			t.Fatalf("result without both families: %+v", p.res)
		}
	}
	ping(t, web, job.addr(false))
	ping(t, web, job.addr(true))
	ping(t, job, web.addr(false))
	ping(t, job, web.addr(true))
	ping(t, web, nettest.HostIPv4.String())
	ping(t, web, nettest.HostIPv6.String())

	// What felix will read: the endpoint, named and labelled as Calico's.
	ctx := context.Background()
	w, err := h.c.WorkloadEndpoints().Get(ctx, "prod", "node1-k8s-web--1-eth0")
	if err != nil {
		t.Fatal(err)
	}
	if w.Spec.InterfaceName != dataplane.HostVethName("prod.web-1") || w.Spec.ContainerID != "aaaa0001" ||
		w.Spec.MAC != web.res.Interfaces[1].Mac || len(w.Spec.IPNetworks) != 2 || w.Spec.Profiles[0] != netName {
		t.Errorf("k8s endpoint %+v", w.Spec)
	}
	if _, err := h.c.WorkloadEndpoints().Get(ctx, "default", "node1-cni-aaaa0002-eth0"); err != nil {
		t.Errorf("cni endpoint: %v", err)
	}
	out, _ := h.ns.Output("ip", "route")
	if !strings.Contains(out, web.addr(false)+" dev "+w.Spec.InterfaceName+" scope link") {
		t.Errorf("host route missing:\n%s", out)
	}

	for _, p := range []*pod{web, job} {
		if err := h.check(l, p); err != nil {
			t.Errorf("CHECK %s: %v", p.rt.ContainerID, err)
		}
	}
	// CHECK notices a missing host route.
	if err := h.ns.Exec("ip", "route", "del", web.addr(false)); err != nil {
		t.Fatal(err)
	}
	if err := h.check(l, web); err == nil || !strings.Contains(err.Error(), "route to "+web.addr(false)+"/32 missing") {
		t.Errorf("CHECK without the host route: %v", err)
	}

	for _, p := range []*pod{web, job} {
		h.mustDel(l, p)
		h.mustDel(l, p) // DEL is idempotent
	}
	h.assertClean()
	if out, _ := web.ns.Output("ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Errorf("pod interface left:\n%s", out)
	}
}

func TestSpecVersions(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	for i, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		l := h.list(netConf{version: v})
		p := h.newPod(fmt.Sprintf("bbbb%04d", i), "")
		var raw types.Result
		if err := h.in(func() (err error) {
			raw, err = h.cni.AddNetworkList(context.Background(), l, p.rt)
			return err
		}); err != nil {
			t.Fatalf("%s: ADD: %v", v, err)
		}
		if raw.Version() != v {
			t.Errorf("%s: result version %s", v, raw.Version())
		}
		if v != "0.3.1" { // CHECK came with 0.4.0
			if err := h.check(l, p); err != nil {
				t.Errorf("%s: CHECK: %v", v, err)
			}
		}
		h.mustDel(l, p)
	}
	h.assertClean()
}

func TestIPv6Only(t *testing.T) {
	h := newHost(t)
	h.addPool("pool6", poolV6, 122)
	l := h.list(netConf{ipam: map[string]any{"type": "calico-ipam", "assign_ipv4": "false", "assign_ipv6": "true"}})
	a, b := h.newPod("6666aaaa", "prod/a"), h.newPod("6666bbbb", "")
	h.mustAdd(l, a)
	h.mustAdd(l, b)
	if a.addr(false) != "" || len(a.res.Routes) != 1 || a.res.Routes[0].Dst.String() != "::/0" {
		t.Fatalf("result %+v %+v", a.res.IPs, a.res.Routes)
	}
	ping(t, a, b.addr(true))
	ping(t, b, nettest.HostIPv6.String())
	if err := h.check(l, a); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	h.mustDel(l, a)
	h.mustDel(l, b)
	h.assertClean()
}

// serveTCP accepts connections inside p and greets each.
func serveTCP(t *testing.T, p *pod, port int) {
	t.Helper()
	var l net.Listener
	if err := p.ns.RunIn(func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello from %s\n", p.rt.ContainerID)
			c.Close()
		}
	}()
}

// dialFrom connects from inside p and returns the first line it reads.
func dialFrom(p *pod, addr string) (string, error) {
	var c net.Conn
	if err := p.ns.RunIn(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

func TestPortmapChain(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{portmap: true})
	server := h.newPod("cccc0001", "prod/server")
	server.rt.CapabilityArgs = map[string]any{"portMappings": []map[string]any{
		{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"},
	}}
	clientPod := h.newPod("cccc0002", "prod/client")
	h.mustAdd(l, server)
	h.mustAdd(l, clientPod)
	serveTCP(t, server, 80)

	got, err := dialFrom(clientPod, net.JoinHostPort(nettest.HostIPv4.String(), "18080"))
	if err != nil || !strings.Contains(got, "hello from cccc0001") {
		nat, _ := h.ns.Output("iptables-save", "-t", "nat")
		t.Fatalf("host port 18080 → server:80: %q %v\n%s", got, err, nat)
	}
	for _, p := range []*pod{server, clientPod} {
		if err := h.check(l, p); err != nil {
			t.Errorf("CHECK %s: %v", p.rt.ContainerID, err)
		}
	}
	h.mustDel(l, server)
	h.mustDel(l, clientPod)
	if nat, _ := h.ns.Output("iptables-save", "-t", "nat"); strings.Contains(nat, "18080") {
		t.Errorf("portmap rules left:\n%s", nat)
	}
	h.assertClean()
}

func TestDelegatedHostLocalIPAM(t *testing.T) {
	h := newHost(t)
	dataDir := filepath.Join(h.dir, "host-local")
	l := h.list(netConf{ipam: map[string]any{
		"type": "host-local", "dataDir": dataDir,
		"ranges": [][]map[string]string{{{"subnet": "10.66.0.0/24"}}},
	}})
	if err := h.status(l); err != nil { // delegated to host-local
		t.Errorf("STATUS: %v", err)
	}
	a, b := h.newPod("dddd0001", ""), h.newPod("dddd0002", "")
	h.mustAdd(l, a)
	h.mustAdd(l, b)
	if !strings.HasPrefix(a.addr(false), "10.66.0.") || a.res.IPs[0].Address.Mask.String() != "ffffffff" {
		t.Fatalf("result %+v", a.res.IPs[0])
	}
	ping(t, a, b.addr(false))
	ping(t, a, nettest.HostIPv4.String())
	if err := h.check(l, a); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	h.mustDel(l, a)
	h.mustDel(l, b)
	h.mustDel(l, b)
	entries, _ := os.ReadDir(filepath.Join(dataDir, netName))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "10.66.") {
			t.Errorf("host-local reservation left: %s", e.Name())
		}
	}
	h.assertClean()
}

func TestGCReleasesStaleAttachments(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})
	keep, stale := h.newPod("eeee0001", "prod/keep"), h.newPod("eeee0002", "prod/stale")
	h.mustAdd(l, keep)
	// The stale attachment was made through another libcni cache, so
	// libcni's own GC pass (a DEL per cached attachment) never sees it:
	// only the plugin's GC can clean it.
	other := libcni.NewCNIConfigWithCacheDir([]string{binDir}, filepath.Join(h.dir, "other-cache"), nil)
	if err := h.in(func() error { _, err := other.AddNetworkList(context.Background(), l, stale.rt); return err }); err != nil {
		t.Fatal(err)
	}
	// Its namespace is gone, as GC may assume.
	stale.ns.Delete()

	valid := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "eeee0001", IfName: "eth0"}}}
	if err := h.in(func() error { return h.cni.GCNetworkList(context.Background(), l, valid) }); err != nil {
		t.Fatalf("GC: %v", err)
	}
	ctx := context.Background()
	weps, _, _ := h.c.WorkloadEndpoints().List(ctx, client.ListOptions{})
	if len(weps) != 1 || weps[0].Spec.ContainerID != "eeee0001" {
		t.Fatalf("endpoints after GC: %d", len(weps))
	}
	if ips, _ := h.ic.IPsByHandle(ctx, netName+".eeee0002"); len(ips) != 0 {
		t.Errorf("stale attachment still holds %v", ips)
	}
	ping(t, keep, nettest.HostIPv4.String())
	if err := h.check(l, keep); err != nil {
		t.Errorf("CHECK of the kept attachment: %v", err)
	}
	h.mustDel(l, keep)
	h.assertClean()
}

// TestNewSandboxOfSamePod follows kubelet recreating a pod's sandbox
// before the old one's DEL: the new ADD takes over the host veth name and
// the endpoint, and the late DEL of the old sandbox leaves both alone.
func TestNewSandboxOfSamePod(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})
	old, newer := h.newPod("9999aaaa", "prod/web"), h.newPod("9999bbbb", "prod/web")
	h.mustAdd(l, old)
	h.mustAdd(l, newer)
	h.mustDel(l, old)
	ping(t, newer, nettest.HostIPv4.String())
	if err := h.check(l, newer); err != nil {
		t.Errorf("CHECK of the new sandbox: %v", err)
	}
	w, err := h.c.WorkloadEndpoints().Get(context.Background(), "prod", "node1-k8s-web-eth0")
	if err != nil || w.Spec.ContainerID != "9999bbbb" {
		t.Fatalf("endpoint after the old DEL: %+v %v", w, err)
	}
	if ips, _ := h.ic.IPsByHandle(context.Background(), netName+".9999aaaa"); len(ips) != 0 {
		t.Errorf("the old sandbox still holds %v", ips)
	}
	h.mustDel(l, newer)
	h.assertClean()
}

// TestNoLeakUnderChurn runs 200 ADD/DEL cycles, 4 at a time, each in its
// own namespace reused from cycle to cycle.
func TestNoLeakUnderChurn(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})
	const workers, cycles = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := 0; w < workers; w++ {
		p := h.newPod("", "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < cycles; i++ {
				p.rt.ContainerID = fmt.Sprintf("churn%02d%04d", w, i)
				p.rt.Args = nil
				if i%2 == 1 {
					p.rt.Args = [][2]string{{"K8S_POD_NAMESPACE", "churn"}, {"K8S_POD_NAME", fmt.Sprintf("pod-%d", w)}}
				}
				if err := h.add(l, p); err != nil {
					errs <- fmt.Errorf("ADD %s: %w", p.rt.ContainerID, err)
					return
				}
				if err := h.del(l, p); err != nil {
					errs <- fmt.Errorf("DEL %s: %w", p.rt.ContainerID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d ADD/DEL cycles, %d in parallel, in %s", workers*cycles, workers, time.Since(start).Round(time.Millisecond))
	h.assertClean()
}
