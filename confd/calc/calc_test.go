package calc

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// updatesFor turns a State into the syncer updates that would build it.
func updatesFor(s *State) []syncer.Update {
	var out []syncer.Update
	add := func(r v3.Resource) {
		out = append(out, syncer.Update{Key: client.KeyFor(r), Value: r, Type: syncer.UpdateNew})
	}
	for _, n := range s.Nodes {
		add(n)
	}
	for _, c := range s.BGPConfigs {
		add(c)
	}
	for _, p := range s.Peers {
		add(p)
	}
	for _, f := range s.Filters {
		add(f)
	}
	for _, p := range s.Pools {
		add(p)
	}
	for cidr, a := range s.Affinities {
		out = append(out, syncer.Update{Key: model.BlockAffinityKey{Host: "node-a", CIDR: cidr}, Value: a, Type: syncer.UpdateNew})
	}
	return out
}

// TestUpdateOrderDoesNotMatter replays the updates of each golden case in
// order, reversed and shuffled, with deletes of unrelated resources mixed
// in, and expects the same output every time.
func TestUpdateOrderDoesNotMatter(t *testing.T) {
	secrets := fakeSecrets{"bgp-secrets/tor-r1": "s3cret"}
	for _, tc := range goldenCases {
		want, err := Compute(loadState(t, tc.files, tc.affinities), tc.node, secrets)
		if err != nil {
			t.Fatal(err)
		}
		ups := updatesFor(loadState(t, tc.files, tc.affinities))
		extra := v3.NewBGPPeer()
		extra.Name = "transient"
		extra.Spec.PeerIP = "192.0.2.99"
		extra.Spec.ASNumber = 65099
		ups = append(ups,
			syncer.Update{Key: client.KeyFor(extra), Value: extra, Type: syncer.UpdateNew},
			syncer.Update{Key: client.KeyFor(extra), Type: syncer.UpdateDeleted})
		orders := map[string][]syncer.Update{"forward": ups}
		rev := slices.Clone(ups)
		slices.Reverse(rev)
		orders["reverse"] = rev
		for i := 0; i < 5; i++ {
			sh := slices.Clone(ups)
			r := rand.New(rand.NewPCG(uint64(i), 7))
			r.Shuffle(len(sh), func(a, b int) { sh[a], sh[b] = sh[b], sh[a] })
			orders["shuffled"+string(rune('0'+i))] = sh
		}
		for name, order := range orders {
			s := NewState()
			for _, u := range order {
				s.Apply(u)
			}
			// Where the delete came before the add the transient peer
			// survives: that is the datastore the order describes, and a
			// different one, so take it out before comparing.
			delete(s.Peers, "transient")
			got, err := Compute(s, tc.node, secrets)
			if err != nil {
				t.Fatalf("%s/%s: %v", tc.golden, name, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s/%s: output differs from the direct computation", tc.golden, name)
			}
		}
	}
}

func TestNodeNotReady(t *testing.T) {
	s := loadState(t, []string{"nodes-common"}, nil)
	if _, err := Compute(s, "node-x", nil); !errors.Is(err, ErrNodeNotReady) {
		t.Fatalf("missing node: %v", err)
	}
	s.Nodes["node-a"].Spec.BGP = nil
	if _, err := Compute(s, "node-a", nil); !errors.Is(err, ErrNodeNotReady) {
		t.Fatalf("node without BGP: %v", err)
	}
}

func TestApplyDeletes(t *testing.T) {
	s := loadState(t, []string{"nodes-common", "mesh"}, []string{"10.65.1.0/26"})
	key := model.ResourceKey{Kind: v3.KindNode, Name: "node-b"}
	if !s.Apply(syncer.Update{Key: key, Type: syncer.UpdateDeleted}) {
		t.Fatal("delete of a known node reported no change")
	}
	if s.Apply(syncer.Update{Key: key, Type: syncer.UpdateDeleted}) {
		t.Fatal("second delete reported a change")
	}
	ak := model.BlockAffinityKey{Host: "node-a", CIDR: netip.MustParsePrefix("10.65.1.0/26")}
	if !s.Apply(syncer.Update{Key: ak, Type: syncer.UpdateDeleted}) {
		t.Fatal("affinity delete reported no change")
	}
	res, err := Compute(s, "node-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Config.Peers) != 1 || res.Config.Peers[0].Address != "172.31.254.10" || len(res.Config.Blocks) != 0 {
		t.Fatalf("after deletes: peers %+v blocks %+v", res.Config.Peers, res.Config.Blocks)
	}
}

func TestReversePeeringManual(t *testing.T) {
	s := loadState(t, []string{"nodes-common", "route-reflector"}, nil)
	manual := v3.ReversePeeringManual
	s.Peers["peer-with-route-reflectors"].Spec.ReversePeering = &manual
	res, err := Compute(s, "node-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Config.Peers {
		if p.RouteReflectorClient {
			t.Errorf("manual reverse peering still gave client %s", p.Address)
		}
	}
}

func TestOptionalSecretAndNoSecrets(t *testing.T) {
	s := loadState(t, []string{"nodes-common", "tor"}, nil)
	opt := true
	s.Peers["missing-secret"].Spec.Password.SecretKeyRef.Optional = &opt
	res, err := Compute(s, "node-a", fakeSecrets{"bgp-secrets/tor-r1": "x"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range res.Config.Peers {
		if p.Address == "192.0.2.2" {
			found = p.Password == ""
		}
	}
	if !found {
		t.Error("optional missing secret did not give a password-less session")
	}
	res, _ = Compute(s, "node-a", nil)
	for _, p := range res.Config.Peers {
		if p.Address == "172.31.255.1" {
			t.Error("session needing an unreadable password was kept")
		}
	}
	if len(res.Warnings) == 0 {
		t.Error("no warning without a secrets source")
	}
}

func TestMeshDisabledPoolNeverExported(t *testing.T) {
	s := loadState(t, []string{"nodes-common"}, []string{"10.66.1.0/26"})
	res, err := Compute(s, "node-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range res.Config.Blocks {
		if b.Export {
			t.Errorf("block %s of a disabled pool is exported", b.CIDR)
		}
	}
	for _, p := range res.Config.Pools {
		if p.CIDR == "10.66.0.0/16" && p.Export {
			t.Error("disabled pool is exportable")
		}
	}
}

// TestSessionDirectionMatchesCalicoTemplate: of two Calico nodes the one
// whose address is higher *as a string* connects, the other is passive,
// as Calico's BIRD template decides (`gt $onode_ip $node_ip`): a mixed
// mesh with calico/node's BIRD depends on both agreeing. "…255.9" sorts
// above "…255.10". The rule holds for the mesh and for BGPPeers whose
// far end is a Calico node (peerSelector, or a peerIP naming a node, which
// peers back); a peerIP that is no node's address is left active.
func TestSessionDirectionMatchesCalicoTemplate(t *testing.T) {
	node := func(name, ip string) *v3.Node {
		n := v3.NewNode()
		n.Name = name
		n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: ip + "/24"}
		return n
	}
	s := NewState()
	for _, n := range []*v3.Node{node("n9", "10.0.0.9"), node("n10", "10.0.0.10"), node("n12", "10.0.0.12")} {
		s.Add(n)
	}
	passive := func(t *testing.T, s *State, of string) map[string]bool {
		t.Helper()
		res, err := Compute(s, of, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, p := range res.Config.Peers {
			out[p.Address] = p.Passive
		}
		return out
	}
	mesh := map[string]map[string]bool{
		"n9":  {"10.0.0.10": false, "10.0.0.12": false},
		"n10": {"10.0.0.9": true, "10.0.0.12": true},
		"n12": {"10.0.0.9": true, "10.0.0.10": false},
	}
	for n, want := range mesh {
		if got := passive(t, s, n); !reflect.DeepEqual(got, want) {
			t.Errorf("mesh of %s: passive %v, want %v", n, got, want)
		}
	}

	off := false
	cfg := v3.NewBGPConfiguration()
	cfg.Name = "default"
	cfg.Spec.NodeToNodeMeshEnabled = &off
	s.Add(cfg)
	byIP := v3.NewBGPPeer()
	byIP.Name = "to-n9"
	byIP.Spec.PeerIP = "10.0.0.9"
	byIP.Spec.ASNumber = 64512
	tor := v3.NewBGPPeer()
	tor.Name = "tor"
	tor.Spec.PeerIP = "10.0.0.99"
	tor.Spec.ASNumber = 65000
	s.Add(byIP)
	s.Add(tor)
	if got, want := passive(t, s, "n10"), map[string]bool{"10.0.0.9": true, "10.0.0.99": false}; !reflect.DeepEqual(got, want) {
		t.Errorf("peerIP sessions of n10: passive %v, want %v", got, want)
	}
	// n9 is the peerIP: it peers back with every node the BGPPeer applies
	// to (all), and connects to both, being the higher address.
	if got, want := passive(t, s, "n9"), map[string]bool{"10.0.0.10": false, "10.0.0.12": false, "10.0.0.99": false}; !reflect.DeepEqual(got, want) {
		t.Errorf("reverse sessions of n9: passive %v, want %v", got, want)
	}
	delete(s.Peers, "to-n9")
	bySel := v3.NewBGPPeer()
	bySel.Name = "to-all"
	bySel.Spec.PeerSelector = "all()"
	s.Add(bySel)
	if got, want := passive(t, s, "n12"), map[string]bool{"10.0.0.9": true, "10.0.0.10": false, "10.0.0.99": false}; !reflect.DeepEqual(got, want) {
		t.Errorf("peerSelector sessions of n12: passive %v, want %v", got, want)
	}
}
