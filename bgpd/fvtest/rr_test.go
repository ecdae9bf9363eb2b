package fvtest

import (
	"context"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// TestRouteReflector: mesh off, h1 a route reflector, every other node its
// client through one BGPPeer (nodeSelector/peerSelector, reverse peering
// on the reflector's side). Clients learn each other's routes only through
// the reflector, with the original next hops.
func TestRouteReflector(t *testing.T) {
	l, h1, h2, h3 := meshLab(t)
	off := false
	cfg := v3.NewBGPConfiguration()
	cfg.Name = "default"
	cfg.Spec.NodeToNodeMeshEnabled = &off
	peer := v3.NewBGPPeer()
	peer.Name = "peer-with-route-reflectors"
	peer.Spec.NodeSelector = "!has(route-reflector)"
	peer.Spec.PeerSelector = "has(route-reflector)"
	l.create(cfg, peer)
	// h1 registers itself as a reflector: labels and cluster ID on its Node.
	rr := v3.NewNode()
	rr.Name = "h1"
	rr.Labels = map[string]string{"route-reflector": "true"}
	rr.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: h1.ip.String(), RouteReflectorClusterID: "224.0.0.1"}
	l.create(rr)
	for _, h := range l.hosts {
		h.start()
	}
	w1 := h1.addWorkload("10.65.1.5")
	w2 := h2.addWorkload("10.65.2.5")
	w3 := h3.addWorkload("10.65.3.5")
	w2b := h2.addWorkload("10.65.1.40") // borrowed from h1's block

	node := bgpstatus.PeerTypeNode
	h1.waitEstablished(t, 20*time.Second, map[string]string{"172.31.255.12": node, "172.31.254.10": node})
	h2.waitEstablished(t, 20*time.Second, map[string]string{"172.31.255.11": node})
	h3.waitEstablished(t, 20*time.Second, map[string]string{"172.31.255.11": node})

	waitRoutes(t, 30*time.Second, map[*host][]want{
		h1: {{dst: "10.65.2.0/26", gw: "172.31.255.12"}, {dst: "10.65.3.0/26", gw: routerAddrA},
			{dst: "10.65.1.40/32", gw: "172.31.255.12"}},
		// Reflected: h2's view of h3's block keeps h3 as next hop
		// (resolved through the router).
		h2: {{dst: "10.65.1.0/26", gw: "172.31.255.11"}, {dst: "10.65.3.0/26", gw: routerAddrA}},
		h3: {{dst: "10.65.1.0/26", gw: routerAddrB}, {dst: "10.65.2.0/26", gw: routerAddrB},
			{dst: "10.65.1.40/32", gw: routerAddrB}},
	})
	reaches(t, w2, w3)
	reaches(t, w3, w2)
	reaches(t, w1, w3)
	reaches(t, w2, w1)
	reaches(t, w3, w2b) // router -> h1 (block owner) -> h2 (the /32)
	reaches(t, w1, w2b)

	w2b.remove()
	waitFor(t, 10*time.Second, "reflected borrowed route withdrawn", func() error {
		for _, h := range []*host{h1, h3} {
			if err := h.noRoute("10.65.1.40/32"); err != nil {
				return err
			}
		}
		return nil
	})
	reaches(t, w2, w3)
}

// TestRouteReflectorConversionWithoutGap turns a full mesh into a route
// reflector topology the way Calico documents it, one step after the
// other, while pods ping each other every 10 ms: h1 gets a cluster ID and
// the label, a BGPPeer peers every other node with it, and the mesh is
// switched off. At no moment may neither the mesh nor the reflector carry
// the routes: not a ping is lost, between clients (their routes end up
// reflected) nor between a client and the reflector (whose sessions to
// the clients change).
func TestRouteReflectorConversionWithoutGap(t *testing.T) {
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	h3 := l.addHost("h3", "a", "172.31.255.13")
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	l.affinity("h3", "10.65.3.0/26")
	for _, h := range l.hosts {
		h.start()
	}
	w1 := h1.addWorkload("10.65.1.5")
	w2 := h2.addWorkload("10.65.2.5")
	w3 := h3.addWorkload("10.65.3.5")
	mesh, node := bgpstatus.PeerTypeMesh, bgpstatus.PeerTypeNode
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.11": mesh, "172.31.255.13": mesh})
	h3.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.11": mesh, "172.31.255.12": mesh})
	reaches(t, w2, w3)
	reaches(t, w2, w1)
	reaches(t, w3, w1)

	streams := map[string]*pingStream{
		"w2->w3": startPings(t, w2.ns, w2.ip, w3.ip, 10*time.Millisecond),
		"w2->w1": startPings(t, w2.ns, w2.ip, w1.ip, 10*time.Millisecond),
		"w3->w1": startPings(t, w3.ns, w3.ip, w1.ip, 10*time.Millisecond),
	}
	ctx := context.Background()
	n, err := l.c.Nodes().Get(ctx, "", "h1")
	if err != nil {
		t.Fatal(err)
	}
	n.Labels = map[string]string{"route-reflector": "true"}
	n.Spec.BGP.RouteReflectorClusterID = "244.0.0.1"
	if _, err := l.c.Nodes().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	peer := v3.NewBGPPeer()
	peer.Name = "peer-with-route-reflectors"
	peer.Spec.NodeSelector = "all()"
	peer.Spec.PeerSelector = "route-reflector == 'true'"
	l.create(peer)
	off := false
	cfg := v3.NewBGPConfiguration()
	cfg.Name = "default"
	cfg.Spec.NodeToNodeMeshEnabled = &off
	l.create(cfg)

	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.12": node, "172.31.255.13": node})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.11": node})
	h3.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.11": node})
	waitRoutes(t, 20*time.Second, map[*host][]want{
		h2: {{dst: "10.65.3.0/26", gw: "172.31.255.13"}, {dst: "10.65.1.0/26", gw: "172.31.255.11"}},
		h3: {{dst: "10.65.2.0/26", gw: "172.31.255.12"}, {dst: "10.65.1.0/26", gw: "172.31.255.11"}},
	})
	time.Sleep(time.Second) // the streams go on a little in the final topology
	for name, s := range streams {
		sent, lost := s.stop()
		t.Logf("%s: %d pings at 10ms during the conversion, %d lost", name, sent, lost)
		if lost != 0 {
			t.Errorf("%s lost %d of %d pings", name, lost, sent)
		}
	}
}
