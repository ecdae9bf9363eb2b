package fvtest

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// calicoNode is what testdata/calico-node-bird2.conf.tmpl needs to render
// one Calico node's BIRD configuration.
type calicoNode struct {
	NodeIP string
	AS     uint32
	Blocks []string
	Pools  []string
	// Mesh lists the other nodes, as the template's range over
	// /bgp/v1/host does.
	Mesh []meshPeer
}

type meshPeer struct {
	IP string
	AS uint32
}

// renderCalicoBird renders the fixture with the template functions
// Calico's confd offers under the same names.
func renderCalicoBird(t testing.TB, n calicoNode) string {
	t.Helper()
	funcs := template.FuncMap{
		"split": strings.Split,
		"join":  func(a []string, sep string) string { return strings.Join(a, sep) },
	}
	tmpl, err := template.New("calico-node-bird2.conf.tmpl").Funcs(funcs).ParseFiles("testdata/calico-node-bird2.conf.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, n); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// birdEstablished waits until every named BGP protocol of b is up.
func (b *birdPeer) waitEstablished(t testing.TB, timeout time.Duration, protocols ...string) {
	t.Helper()
	waitFor(t, timeout, "BIRD sessions established", func() error {
		out, err := b.birdc("show", "protocols")
		if err != nil {
			return err
		}
		for _, p := range protocols {
			ok := false
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) > 0 && f[0] == p {
					ok = strings.Contains(line, "Established")
				}
			}
			if !ok {
				return fmt.Errorf("BIRD protocol %s is not Established:\n%s", p, out)
			}
		}
		return nil
	})
}

// TestMixedMeshWithCalicoBirdNode: a node-to-node mesh of two of our
// nodes and one node running BIRD configured as Calico's own template
// configures a node. Exactly one side of each session connects, and both
// implementations must agree which: the node whose address is higher as a
// string (the template's `gt $onode_ip $node_ip`). The addresses make a
// numeric comparison (.9 < .10) and the string comparison ("…9" >
// "…10") disagree, and put our node h2 above the BIRD node both ways.
// Pods on both kinds of node reach each other.
func TestMixedMeshWithCalicoBirdNode(t *testing.T) {
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.9")
	b1 := l.addHost("b1", "a", "172.31.255.10") // calico/node with BIRD
	h2 := l.addHost("h2", "a", "172.31.255.12")
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	l.affinity("b1", "10.65.3.0/26")
	node := v3.NewNode()
	node.Name = "b1"
	node.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "172.31.255.10/24"}
	l.create(node)
	bird := l.startBird("b1-bird", b1.ns, renderCalicoBird(t, calicoNode{
		NodeIP: "172.31.255.10", AS: 64512,
		Blocks: []string{"10.65.3.0/26"}, Pools: []string{"10.65.0.0/16"},
		Mesh: []meshPeer{{IP: "172.31.255.9", AS: 64512}, {IP: "172.31.255.12", AS: 64512}},
	}))
	h1.start()
	h2.start()
	w1 := h1.addWorkload("10.65.1.5")
	w2 := h2.addWorkload("10.65.2.5")
	wb := b1.addWorkload("10.65.3.5")

	mesh := bgpstatus.PeerTypeMesh
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.10": mesh, "172.31.255.12": mesh})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.9": mesh, "172.31.255.10": mesh})
	bird.waitEstablished(t, 30*time.Second, "Mesh_172_31_255_9", "Mesh_172_31_255_12")
	waitRoutes(t, 20*time.Second, map[*host][]want{
		h1: {{dst: "10.65.3.0/26", gw: "172.31.255.10"}, {dst: "10.65.2.0/26", gw: "172.31.255.12"}},
		h2: {{dst: "10.65.3.0/26", gw: "172.31.255.10"}, {dst: "10.65.1.0/26", gw: "172.31.255.9"}},
		b1: {{dst: "10.65.1.0/26", gw: "172.31.255.9"}, {dst: "10.65.2.0/26", gw: "172.31.255.12"}},
	})
	for _, pair := range [][2]*workload{{w1, wb}, {wb, w1}, {w2, wb}, {wb, w2}, {w1, w2}, {w2, w1}} {
		reaches(t, pair[0], pair[1])
	}
}

// TestMigrateCalicoNodeWithoutLoss follows docs/migration.md: a Calico
// node (BIRD, as Calico's template configures it) in a mesh with two of
// our nodes is switched to confd and bgpd while pods ping across it every
// 10 ms. BIRD is killed, so its peers treat it as a graceful restart, and
// bgpd starts on the same host, takes over BIRD's kernel routes and
// announces its restart; no ping is lost.
func TestMigrateCalicoNodeWithoutLoss(t *testing.T) {
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.9")
	b1 := l.addHost("b1", "a", "172.31.255.10")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	l.affinity("b1", "10.65.3.0/26")
	node := v3.NewNode()
	node.Name = "b1"
	node.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "172.31.255.10/24"}
	l.create(node)
	bird := l.startBird("b1-bird", b1.ns, renderCalicoBird(t, calicoNode{
		NodeIP: "172.31.255.10", AS: 64512,
		Blocks: []string{"10.65.3.0/26"}, Pools: []string{"10.65.0.0/16"},
		Mesh: []meshPeer{{IP: "172.31.255.9", AS: 64512}, {IP: "172.31.255.12", AS: 64512}},
	}))
	h1.start()
	h2.start()
	w1 := h1.addWorkload("10.65.1.5")
	w2 := h2.addWorkload("10.65.2.5")
	wb := b1.addWorkload("10.65.3.5")
	mesh := bgpstatus.PeerTypeMesh
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.10": mesh, "172.31.255.12": mesh})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.9": mesh, "172.31.255.10": mesh})
	bird.waitEstablished(t, 30*time.Second, "Mesh_172_31_255_9", "Mesh_172_31_255_12")
	for _, pair := range [][2]*workload{{w1, wb}, {wb, w1}, {w2, wb}, {wb, w2}} {
		reaches(t, pair[0], pair[1])
	}

	streams := map[string]*pingStream{
		"w1->wb": startPings(t, w1.ns, w1.ip, wb.ip, 10*time.Millisecond),
		"w2->wb": startPings(t, w2.ns, w2.ip, wb.ip, 10*time.Millisecond),
		"wb->w1": startPings(t, wb.ns, wb.ip, w1.ip, 10*time.Millisecond),
	}
	bird.proc.stop(syscall.SIGKILL)
	b1.start()
	b1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.9": mesh, "172.31.255.12": mesh})
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.10": mesh, "172.31.255.12": mesh})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.9": mesh, "172.31.255.10": mesh})
	waitRoutes(t, 20*time.Second, map[*host][]want{
		b1: {{dst: "10.65.1.0/26", gw: "172.31.255.9"}, {dst: "10.65.2.0/26", gw: "172.31.255.12"}, {dst: "10.65.3.0/26", blackhole: true}},
		h1: {{dst: "10.65.3.0/26", gw: "172.31.255.10"}},
	})
	time.Sleep(time.Second) // the streams go on a little after the switch
	for name, s := range streams {
		sent, lost := s.stop()
		t.Logf("%s: %d pings at 10ms during the switch, %d lost", name, sent, lost)
		if lost != 0 {
			t.Errorf("%s lost %d of %d pings", name, lost, sent)
		}
	}
}
