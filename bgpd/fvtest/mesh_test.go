package fvtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// meshLab is the common three-host world: h1 and h2 on segment A, h3
// behind the router on segment B, one pool with a block per host. The
// router is plain Linux with static routes to the blocks, as a fabric
// that knows the pod CIDRs would be (this kernel has no IPIP, so
// cross-subnet traffic is routed, not encapsulated).
func meshLab(t *testing.T) (*lab, *host, *host, *host) {
	l := newLab(t, true)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	h3 := l.addHost("h3", "b", "172.31.254.10")
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	l.affinity("h3", "10.65.3.0/26")
	sh(t, l.router, "ip route add 10.65.1.0/26 via 172.31.255.11")
	sh(t, l.router, "ip route add 10.65.2.0/26 via 172.31.255.12")
	sh(t, l.router, "ip route add 10.65.3.0/26 via 172.31.254.10")
	return l, h1, h2, h3
}

// TestFullMesh: three hosts in a node-to-node mesh (one across a router)
// learn each other's blocks and a borrowed workload address, workloads
// talk across hosts, and removing the borrowed workload withdraws its
// route everywhere. h1 and h2 also peer over IPv6. The hosts register
// their addresses three ways: given, autodetected, and can-reach.
func TestFullMesh(t *testing.T) {
	l, h1, h2, h3 := meshLab(t)
	h1.addIPv6("fd00:255::11")
	h2.addIPv6("fd00:255::12")
	l.create(ipPool("pool6", "fd00:65::/48"))
	l.affinity("h1", "fd00:65::100/122")
	l.affinity("h2", "fd00:65::200/122")
	h1.start()
	h2.start("--ip", "autodetect")
	h3.start("--ip", "can-reach="+proxyAddr)
	w1 := h1.addWorkload("10.65.1.5")
	w2 := h2.addWorkload("10.65.2.5")
	w3 := h3.addWorkload("10.65.3.5")
	// w2b lives on h2 with an address of h1's block: a borrowed address.
	w2b := h2.addWorkload("10.65.1.50")

	waitRoutes(t, 30*time.Second, map[*host][]want{
		h1: {{dst: "10.65.1.0/26", blackhole: true}, {dst: "10.65.2.0/26", gw: "172.31.255.12"},
			{dst: "10.65.3.0/26", gw: routerAddrA}, {dst: "10.65.1.50/32", gw: "172.31.255.12"}},
		h2: {{dst: "10.65.2.0/26", blackhole: true}, {dst: "10.65.1.0/26", gw: "172.31.255.11"},
			{dst: "10.65.3.0/26", gw: routerAddrA}},
		h3: {{dst: "10.65.3.0/26", blackhole: true}, {dst: "10.65.1.0/26", gw: routerAddrB},
			{dst: "10.65.2.0/26", gw: routerAddrB}, {dst: "10.65.1.50/32", gw: routerAddrB}},
	})
	// IPv6: blocks and a borrowed /128.
	sh(t, h2.ns, "ip -6 route add fd00:65::105/128 dev %s proto 3", w2.iface)
	waitRoutes(t, 20*time.Second, map[*host][]want{
		h1: {{dst: "fd00:65::100/122", blackhole: true}, {dst: "fd00:65::200/122", gw: "fd00:255::12"},
			{dst: "fd00:65::105/128", gw: "fd00:255::12"}},
		h2: {{dst: "fd00:65::100/122", gw: "fd00:255::11"}},
	})
	// h2 does not program a route for its own borrowed workload.
	if err := h2.noRoute("10.65.1.50/32"); err != nil {
		t.Error(err)
	}
	reaches(t, w1, w2)
	reaches(t, w2, w1)
	reaches(t, w1, w3)
	reaches(t, w3, w2)
	reaches(t, w1, w2b)
	reaches(t, w3, w2b) // via the router to h1, which has the /32 to h2

	mesh := bgpstatus.PeerTypeMesh
	h1.waitEstablished(t, 10*time.Second, map[string]string{"172.31.255.12": mesh, "172.31.254.10": mesh, "fd00:255::12": mesh})
	h3.waitEstablished(t, 10*time.Second, map[string]string{"172.31.255.11": mesh, "172.31.255.12": mesh})
	checkCalicoctlNodeStatus(t, h1, []string{"172.31.255.12", "172.31.254.10"})

	// A new node joins the mesh: one session is added, the others stay.
	since := peerSince(t, h1, "172.31.255.12")
	time.Sleep(1100 * time.Millisecond) // since has a one-second resolution
	h4 := v3.NewNode()
	h4.Name = "h4"
	h4.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "172.31.255.14/24"}
	l.create(h4)
	waitFor(t, 10*time.Second, "h4 added to h1's mesh", func() error {
		st, err := h1.status()
		if err != nil || len(st.Peers4) != 3 || len(st.Peers6) != 1 {
			return fmt.Errorf("h1 peers %+v %v", st.Peers4, err)
		}
		return nil
	})
	if after := peerSince(t, h1, "172.31.255.12"); after != since {
		t.Errorf("unchanged session was reset when a node joined: since %s -> %s", since, after)
	}
	if _, err := l.c.Nodes().Delete(context.Background(), "", "h4", ""); err != nil {
		t.Fatal(err)
	}
	h1.waitEstablished(t, 10*time.Second, map[string]string{"172.31.255.12": mesh, "172.31.254.10": mesh, "fd00:255::12": mesh})

	w2b.remove()
	waitFor(t, 10*time.Second, "borrowed route withdrawn", func() error {
		for _, h := range []*host{h1, h3} {
			if err := h.noRoute("10.65.1.50/32"); err != nil {
				return err
			}
		}
		return nil
	})
	// The rest is untouched.
	reaches(t, w1, w2)
	reaches(t, w3, w1)
}

// checkCalicoctlNodeStatus runs the real `calicoctl node status` against
// h's control socket.
func checkCalicoctlNodeStatus(t *testing.T, h *host, peers []string) {
	t.Helper()
	bin := bins.calicoctl
	var out []byte
	var last error
	for range 50 {
		cmd := exec.Command(bin, "node", "status")
		cmd.Env = append(os.Environ(), "CALICO_RUN_DIR="+h.runDir, "NODENAME="+h.name)
		out, last = cmd.CombinedOutput()
		ok := last == nil
		for _, p := range peers {
			ok = ok && strings.Contains(string(out), p)
		}
		if ok && strings.Count(string(out), "Established") >= len(peers) {
			t.Logf("calicoctl node status:\n%s", out)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("calicoctl node status does not show %v Established: %v\n%s", peers, last, out)
}
