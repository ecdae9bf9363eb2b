package fvtest

import (
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
