package fvtest

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// torBirdConfig is BIRD 2 as a ToR (AS 65001, 172.31.255.2) with graceful
// restart, peering with the named hosts ("h1=172.31.255.11"), installing
// what it learns into its kernel and announcing 203.0.113.0/24 and
// 198.51.100.0/24.
func torBirdConfig(neighbors ...string) string {
	var b strings.Builder
	b.WriteString(`log stderr all;
router id 172.31.255.2;
protocol device { scan time 10; }
protocol kernel {
	ipv4 { import none; export where source = RTS_BGP; };
}
protocol static tor_routes {
	ipv4;
	route 203.0.113.0/24 blackhole;
	route 198.51.100.0/24 blackhole;
}
`)
	for _, n := range neighbors {
		name, ip, _ := strings.Cut(n, "=")
		fmt.Fprintf(&b, `protocol bgp %s {
	local 172.31.255.2 as 65001;
	neighbor %s as 64512;
	graceful restart on;
	ipv4 { import all; export where proto = "tor_routes"; };
}
`, name, ip)
	}
	return b.String()
}

// torLab is h1 peering with a BIRD ToR (global BGPPeer), h1 owning the
// block 10.65.1.0/26.
func torLab(t *testing.T) (*lab, *host, *birdPeer) {
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	tor := l.newNS()
	l.plug(tor, "eth0", "br0", "172.31.255.2/24")
	b := l.startBird("tor", tor, torBirdConfig("h1=172.31.255.11"))
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	peer := v3.NewBGPPeer()
	peer.Name = "tor"
	peer.Spec.PeerIP = "172.31.255.2"
	peer.Spec.ASNumber = 65001
	l.create(peer)
	h1.start()
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.2": bgpstatus.PeerTypeGlobal})
	return l, h1, b
}

// TestHostnameCapabilityIsNodeName: the hostname capability in bgpd's
// OPEN carries the Calico node name, not the machine's host name (here
// every host is a namespace of one machine).
func TestHostnameCapabilityIsNodeName(t *testing.T) {
	_, _, tor := torLab(t)
	waitFor(t, 10*time.Second, "hostname capability", func() error {
		caps, err := tor.neighborCaps("h1")
		if err != nil {
			return err
		}
		if !strings.Contains(caps, "Hostname: h1\n") && !strings.HasSuffix(caps, "Hostname: h1") {
			return fmt.Errorf("BIRD does not see hostname h1:\n%s", caps)
		}
		return nil
	})
}

// TestRestartBitsSeenByBird: after a restart that kept its routes in the
// kernel, bgpd sets the Restart State (R) bit and the Forwarding State
// (F) bit for IPv4 in its graceful restart capability, so BIRD keeps the
// routes it holds from bgpd until bgpd's End-of-RIB instead of flushing
// and re-adding them. BIRD's kernel route to h1's block stays throughout.
func TestRestartBitsSeenByBird(t *testing.T) {
	_, h1, tor := torLab(t)
	waitFor(t, 20*time.Second, "h1's block in the ToR's kernel", func() error {
		rs, err := tor.ns.Output("ip", "route", "show", "10.65.1.0/26", "proto", "bird")
		if err != nil || !strings.Contains(rs, "10.65.1.0/26") {
			return fmt.Errorf("no route yet: %q %v", rs, err)
		}
		return nil
	})
	caps, err := tor.neighborCaps("h1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(caps, "Restart recovery") {
		t.Fatalf("a first start must not claim a restart:\n%s", caps)
	}

	mon := watchRoutesIn(t, tor.ns, "tor", []string{"10.65.1.0/26"})
	h1.bgpd.stop(syscall.SIGTERM)
	waitFor(t, 10*time.Second, "BIRD in graceful restart", func() error {
		out, err := tor.birdc("show", "protocols", "all", "h1")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Neighbor graceful restart active") {
			return errNotYet
		}
		return nil
	})
	h1.startBgpd()
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.2": bgpstatus.PeerTypeGlobal})
	caps, err = tor.neighborCaps("h1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BIRD's view of h1's capabilities after the restart:\n%s", caps)
	if !strings.Contains(caps, "Restart recovery") {
		t.Errorf("BIRD did not see the Restart State bit")
	}
	if !strings.Contains(caps, "AF preserved: ipv4") {
		t.Errorf("BIRD did not see the Forwarding State bit for IPv4")
	}
	time.Sleep(time.Second) // let BIRD finish the recovery before the last checks
	checks, misses := mon.finish()
	if len(misses) > 0 {
		t.Errorf("the ToR lost h1's block during the restart (%d of %d checks):\n%v", len(misses), checks, misses[:min(len(misses), 10)])
	}
}

// TestRestartBitsForLateSessions: after a restart every session that comes
// up announces the restart, not only those up before the first End-of-RIB
// (gobgp ends its restart there). h1 restarts with a mesh peer h2 and the
// BIRD ToR; the ToR's BGP port is blocked until the mesh session has
// resynced, and BIRD must still see the Restart and Forwarding State bits.
func TestRestartBitsForLateSessions(t *testing.T) {
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	torNS := l.newNS()
	l.plug(torNS, "eth0", "br0", "172.31.255.2/24")
	tor := l.startBird("tor", torNS, torBirdConfig("h1=172.31.255.11"))
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	peer := v3.NewBGPPeer()
	peer.Name = "tor"
	peer.Spec.Node = "h1"
	peer.Spec.PeerIP = "172.31.255.2"
	peer.Spec.ASNumber = 65001
	l.create(peer)
	h1.start()
	h2.start()
	peers := map[string]string{"172.31.255.2": bgpstatus.PeerTypeNode, "172.31.255.12": bgpstatus.PeerTypeMesh}
	h1.waitEstablished(t, 30*time.Second, peers)
	tor.waitRoute(t, "10.65.1.0/26", true)

	h1.bgpd.stop(syscall.SIGTERM)
	waitFor(t, 10*time.Second, "BIRD in graceful restart", func() error {
		out, err := tor.birdc("show", "protocols", "all", "h1")
		if err != nil || !strings.Contains(out, "Neighbor graceful restart active") {
			return errNotYet
		}
		return nil
	})
	sh(t, torNS, "iptables -A INPUT -p tcp --dport 179 -j DROP")
	sh(t, torNS, "iptables -A INPUT -p tcp --sport 179 -j DROP")
	eors := func() int {
		data, _ := os.ReadFile(h2.bgpd.log)
		return strings.Count(string(data), `msg="Peer sent End-of-RIB" peer=172.31.255.11`)
	}
	before := eors()
	h1.startBgpd()
	waitFor(t, 30*time.Second, "h1 resynced with h2", func() error {
		if eors() == before {
			return errNotYet
		}
		return nil
	})
	sh(t, torNS, "iptables -F INPUT")
	h1.waitEstablished(t, 30*time.Second, peers)
	caps, err := tor.neighborCaps("h1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(caps, "Restart recovery") || !strings.Contains(caps, "AF preserved: ipv4") {
		t.Errorf("the session that came up last did not announce the restart:\n%s", caps)
	}
}
