package tunneladdr

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/libcalico/nodedelete"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
	"github.com/calico-etcd/calico/testutil"
)

var ctx = context.Background()

type host struct {
	t    *testing.T
	name string
	c    *client.Client
	ic   *ipam.Client
	a    Allocator
}

// newHost is one host's view: its own etcd connection, IPAM client and
// allocator, and its Node (with a BGP address, as registration leaves it).
func newHost(t *testing.T, srv *testutil.Etcd, name string, labels map[string]string) *host {
	t.Helper()
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(be)
	t.Cleanup(func() { c.Close() })
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	ic, err := ipam.New(be, logrus.NewEntry(l), ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := v3.NewNode()
	n.Name, n.Labels = name, labels
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "192.168.0.1/24"}
	if _, err := c.Nodes().Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	return &host{t: t, name: name, c: c, ic: ic, a: Allocator{Client: c, IPAM: ic, Log: logrus.NewEntry(l)}}
}

func (h *host) reconcile() []Change {
	h.t.Helper()
	ch, err := h.a.Reconcile(ctx, h.name)
	if err != nil {
		h.t.Fatalf("reconcile %s: %v", h.name, err)
	}
	return ch
}

func (h *host) node() *v3.Node {
	h.t.Helper()
	n, err := h.c.Nodes().Get(ctx, "", h.name)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *host) applyPool(name, cidr string, mutate func(*v3.IPPool)) {
	h.t.Helper()
	p := v3.NewIPPool()
	p.Name, p.Spec.CIDR = name, cidr
	if mutate != nil {
		mutate(p)
	}
	if _, err := h.c.Apply(ctx, p); err != nil {
		h.t.Fatal(err)
	}
}

// checkClean runs IPAM's consistency check: every allocation is used (a
// Node names each tunnel address), handles agree with blocks.
func (h *host) checkClean(what string) {
	h.t.Helper()
	rep, err := ipamcheck.Check(ctx, h.ic, ipamcheck.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	if !rep.OK() {
		h.t.Fatalf("%s: ipam check: leaked %v, bad handles %v, missing %v", what, rep.Leaked, rep.BadHandles, rep.MissingHandles)
	}
}

// allocation asserts addr is assigned with k's handle and attributes.
func (h *host) allocation(addr string, k Kind, cidr string) {
	h.t.Helper()
	a, ok := ipam.ParseAddr(addr)
	if !ok || !netip.MustParsePrefix(cidr).Contains(a) {
		h.t.Fatalf("%s address %q not in %s", k.Attr, addr, cidr)
	}
	handle, attrs, err := h.ic.GetAssignmentAttributes(ctx, a)
	if err != nil || handle != k.Handle(h.name) || attrs[ipam.AttributeNode] != h.name || attrs[ipam.AttributeType] != k.Attr {
		h.t.Fatalf("allocation of %s: handle %q attrs %v, %v", addr, handle, attrs, err)
	}
}

func (h *host) unallocated(addr string) {
	h.t.Helper()
	a, _ := ipam.ParseAddr(addr)
	if _, _, err := h.ic.GetAssignmentAttributes(ctx, a); err == nil {
		h.t.Fatalf("%s is still allocated", addr)
	}
}

// TestReconcileFollowsPools turns encapsulations on and off and checks
// the Node, IPAM and `ipam check` after each step.
func TestReconcileFollowsPools(t *testing.T) {
	srv := testutil.StartEtcd(t)
	h := newHost(t, srv, "node-a", map[string]string{"zone": "a"})

	h.applyPool("pool4", "10.65.0.0/16", nil)
	if ch := h.reconcile(); len(ch) != 0 {
		t.Fatalf("no encapsulation, changes %+v", ch)
	}

	// VXLAN on (IPv4 and IPv6): addresses and derived MACs.
	h.applyPool("pool4", "10.65.0.0/16", func(p *v3.IPPool) { p.Spec.VXLANMode = v3.VXLANModeAlways })
	h.applyPool("pool6", "fd00:65::/64", func(p *v3.IPPool) { p.Spec.VXLANMode = v3.VXLANModeCrossSubnet })
	if ch := h.reconcile(); len(ch) != 2 {
		t.Fatalf("VXLAN on: changes %+v", ch)
	}
	n := h.node()
	h.allocation(n.Spec.IPv4VXLANTunnelAddr, VXLAN, "10.65.0.0/16")
	h.allocation(n.Spec.IPv6VXLANTunnelAddr, VXLANV6, "fd00:65::/64")
	if n.Spec.VXLANTunnelMACAddr != nodeinfo.VXLANTunnelMAC("node-a", false) || n.Spec.VXLANTunnelMACAddrV6 != nodeinfo.VXLANTunnelMAC("node-a", true) ||
		n.Spec.VXLANTunnelMACAddr == n.Spec.VXLANTunnelMACAddrV6 {
		t.Fatalf("MACs %q %q", n.Spec.VXLANTunnelMACAddr, n.Spec.VXLANTunnelMACAddrV6)
	}
	h.checkClean("VXLAN on")
	vx4, rv := n.Spec.IPv4VXLANTunnelAddr, n.ResourceVersion

	// Again: nothing changes, nothing is written.
	if ch := h.reconcile(); len(ch) != 0 || h.node().ResourceVersion != rv {
		t.Fatalf("repeat: changes %+v, rv %s -> %s", ch, rv, h.node().ResourceVersion)
	}

	// The IPv4 pool moves from VXLAN to IPIP: the VXLAN address and its MAC
	// go, an IPIP address comes.
	h.applyPool("pool4", "10.65.0.0/16", func(p *v3.IPPool) { p.Spec.IPIPMode = v3.IPIPModeAlways })
	h.reconcile()
	n = h.node()
	if n.Spec.IPv4VXLANTunnelAddr != "" || n.Spec.VXLANTunnelMACAddr != "" {
		t.Fatalf("VXLAN address kept: %q %q", n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr)
	}
	h.unallocated(vx4)
	h.allocation(n.Spec.BGP.IPv4IPIPTunnelAddr, IPIP, "10.65.0.0/16")
	if n.Spec.BGP.IPv4Address != "192.168.0.1/24" {
		t.Fatalf("BGP address lost: %+v", n.Spec.BGP)
	}
	h.checkClean("IPIP on")

	// A pool that does not allow tunnel addresses, or does not select the
	// node, gives none; everything is released.
	ipip := n.Spec.BGP.IPv4IPIPTunnelAddr
	h.applyPool("pool4", "10.65.0.0/16", func(p *v3.IPPool) {
		p.Spec.IPIPMode = v3.IPIPModeAlways
		p.Spec.AllowedUses = []v3.IPPoolAllowedUse{v3.IPPoolAllowedUseWorkload}
	})
	h.applyPool("pool6", "fd00:65::/64", func(p *v3.IPPool) {
		p.Spec.VXLANMode = v3.VXLANModeAlways
		p.Spec.NodeSelector = "zone == 'b'"
	})
	h.reconcile()
	n = h.node()
	if n.Spec.BGP.IPv4IPIPTunnelAddr != "" || n.Spec.IPv6VXLANTunnelAddr != "" || n.Spec.VXLANTunnelMACAddrV6 != "" {
		t.Fatalf("addresses kept: %+v %q %q", n.Spec.BGP, n.Spec.IPv6VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddrV6)
	}
	h.unallocated(ipip)
	h.checkClean("all off")
	allocs, err := h.ic.Allocations(ctx)
	if err != nil || len(allocs) != 0 {
		t.Fatalf("allocations left: %+v, %v", allocs, err)
	}

	// A disabled pool gives none either; an operator's own MAC is kept
	// when the address goes.
	h.applyPool("pool4", "10.65.0.0/16", func(p *v3.IPPool) { p.Spec.VXLANMode = v3.VXLANModeAlways })
	h.reconcile()
	n = h.node()
	n.Spec.VXLANTunnelMACAddr = "02:00:00:00:00:01"
	if _, err := h.c.Nodes().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	h.applyPool("pool4", "10.65.0.0/16", func(p *v3.IPPool) { p.Spec.VXLANMode = v3.VXLANModeAlways; p.Spec.Disabled = true })
	h.reconcile()
	if n = h.node(); n.Spec.IPv4VXLANTunnelAddr != "" || n.Spec.VXLANTunnelMACAddr != "02:00:00:00:00:01" {
		t.Fatalf("disabled pool: %q %q", n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr)
	}
	h.checkClean("disabled")
}

// TestReconcileRepairs covers Nodes whose address IPAM disagrees with.
func TestReconcileRepairs(t *testing.T) {
	srv := testutil.StartEtcd(t)
	h := newHost(t, srv, "node-r", nil)
	h.applyPool("pool4", "10.66.0.0/16", func(p *v3.IPPool) { p.Spec.VXLANMode = v3.VXLANModeAlways })

	// The Node names a workload's address: it is left to the workload.
	wl := netip.MustParseAddr("10.66.9.9")
	if err := h.ic.AssignIP(ctx, ipam.AssignIPArgs{IP: wl, HandleID: "k8s-pod-network.abc", Hostname: "node-r",
		Attrs: map[string]string{ipam.AttributeNode: "node-r", ipam.AttributePod: "p"}}); err != nil {
		t.Fatal(err)
	}
	n := h.node()
	n.Spec.IPv4VXLANTunnelAddr = wl.String()
	if _, err := h.c.Nodes().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	h.reconcile()
	n = h.node()
	if n.Spec.IPv4VXLANTunnelAddr == wl.String() {
		t.Fatal("kept a workload's address")
	}
	h.allocation(n.Spec.IPv4VXLANTunnelAddr, VXLAN, "10.66.0.0/16")
	if handle, _, err := h.ic.GetAssignmentAttributes(ctx, wl); err != nil || handle != "k8s-pod-network.abc" {
		t.Fatalf("workload address: %q, %v", handle, err)
	}
	if err := h.ic.ReleaseByHandle(ctx, "k8s-pod-network.abc"); err != nil {
		t.Fatal(err)
	}

	// The Node names an address IPAM never assigned (edited by hand): a new
	// one replaces it, and whatever the handle held is released.
	n.Spec.IPv4VXLANTunnelAddr = "10.66.200.1"
	old := h.node().Spec.IPv4VXLANTunnelAddr
	if _, err := h.c.Nodes().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	h.reconcile()
	n = h.node()
	h.allocation(n.Spec.IPv4VXLANTunnelAddr, VXLAN, "10.66.0.0/16")
	if n.Spec.IPv4VXLANTunnelAddr != old {
		h.unallocated(old)
	}
	h.checkClean("after repair")

	// The pool is replaced by another: the address moves into it.
	h.applyPool("pool4b", "10.67.0.0/16", func(p *v3.IPPool) { p.Spec.VXLANMode = v3.VXLANModeAlways })
	h.applyPool("pool4", "10.66.0.0/16", func(p *v3.IPPool) { p.Spec.Disabled = true })
	h.reconcile()
	h.allocation(h.node().Spec.IPv4VXLANTunnelAddr, VXLAN, "10.67.0.0/16")
	h.checkClean("after pool change")

	// An address assigned before handles existed is taken over.
	if err := h.ic.ReleaseByHandle(ctx, VXLAN.Handle("node-r")); err != nil {
		t.Fatal(err)
	}
	bare := netip.MustParseAddr("10.67.77.7")
	if err := h.ic.AssignIP(ctx, ipam.AssignIPArgs{IP: bare, Hostname: "node-r"}); err != nil {
		t.Fatal(err)
	}
	n = h.node()
	n.Spec.IPv4VXLANTunnelAddr = bare.String()
	if _, err := h.c.Nodes().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	h.reconcile()
	if got := h.node().Spec.IPv4VXLANTunnelAddr; got != bare.String() {
		t.Fatalf("legacy address replaced by %s", got)
	}
	h.allocation(bare.String(), VXLAN, "10.67.0.0/16")
	h.checkClean("after legacy takeover")
}

// TestReconcileManyHostsAtOnce: hosts starting together each get their own
// addresses; then deleting a node (the cascade) releases its addresses
// and the check stays clean.
func TestReconcileManyHostsAtOnce(t *testing.T) {
	srv := testutil.StartEtcd(t)
	const n = 8
	hosts := make([]*host, n)
	for i := range hosts {
		hosts[i] = newHost(t, srv, fmt.Sprintf("node-%d", i), nil)
	}
	hosts[0].applyPool("pool4", "10.68.0.0/16", func(p *v3.IPPool) { p.Spec.VXLANMode = v3.VXLANModeAlways; p.Spec.BlockSize = 30 })
	hosts[0].applyPool("pool6", "fd00:68::/64", func(p *v3.IPPool) { p.Spec.VXLANMode = v3.VXLANModeAlways })
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Twice: a second run must keep what the first got.
			for range 2 {
				if _, err := h.a.Reconcile(ctx, h.name); err != nil {
					errs[i] = err
				}
			}
		}()
	}
	wg.Wait()
	seen := map[string]string{}
	for i, h := range hosts {
		if errs[i] != nil {
			t.Fatalf("%s: %v", h.name, errs[i])
		}
		nd := h.node()
		for _, a := range []string{nd.Spec.IPv4VXLANTunnelAddr, nd.Spec.IPv6VXLANTunnelAddr} {
			if a == "" || seen[a] != "" {
				t.Fatalf("%s address %q (also %s)", h.name, a, seen[a])
			}
			seen[a] = h.name
		}
		h.allocation(nd.Spec.IPv4VXLANTunnelAddr, VXLAN, "10.68.0.0/16")
	}
	hosts[0].checkClean("hosts at once")

	gone := hosts[3].node()
	if _, err := nodedelete.Delete(ctx, hosts[0].c, hosts[0].ic, gone.Name, nil); err != nil {
		t.Fatal(err)
	}
	hosts[0].unallocated(gone.Spec.IPv4VXLANTunnelAddr)
	hosts[0].unallocated(gone.Spec.IPv6VXLANTunnelAddr)
	hosts[0].checkClean("after deleting a node")
}
