package wep

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
)

func newStore(t *testing.T) (*Store, *client.Client) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	c := client.New(memory.New())
	return NewStore(c, logrus.NewEntry(l)), c
}

var mac = net.HardwareAddr{0x0a, 0x58, 0, 0, 0, 1}

func TestIDs(t *testing.T) {
	for _, tc := range []struct {
		ids              IDs
		name, workloadID string
	}{
		{NewIDs("node-1", "abc123", "eth0", "prod", "web-0"), "node--1-k8s-web--0-eth0", "prod.web-0"},
		{NewIDs("node-1", "abc123", "eth0", "", ""), "node--1-cni-abc123-eth0", "abc123"},
		{NewIDs("n", "abc123", "eth0", "prod", ""), "n-cni-abc123-eth0", "abc123"},
	} {
		if got := tc.ids.Name(); got != tc.name {
			t.Errorf("Name() = %q, want %q", got, tc.name)
		}
		if got := tc.ids.WorkloadID(); got != tc.workloadID {
			t.Errorf("WorkloadID() = %q, want %q", got, tc.workloadID)
		}
	}
}

func TestBuildValidates(t *testing.T) {
	for _, ids := range []IDs{NewIDs("node1", "c0ffee", "eth0", "prod", "web"), NewIDs("node1", "c0ffee", "eth0", "", "")} {
		w := Build(ids, Meta{Profiles: []string{"net1"}}, "cali0123456789a", mac, []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")})
		w.Default()
		if err := w.Validate(); err != nil {
			t.Errorf("%s: %v", ids.Orchestrator, err)
		}
		if w.Spec.IPNetworks[0] != "10.0.0.1/32" || w.Spec.IPNetworks[1] != "fd00::1/128" {
			t.Errorf("ipNetworks %v", w.Spec.IPNetworks)
		}
		if w.Labels[v3.LabelOrchestrator] != ids.Orchestrator || w.Labels[v3.LabelNamespace] != ids.Namespace {
			t.Errorf("labels %v", w.Labels)
		}
	}
}

func TestWriteReplacesAnotherSandbox(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t)
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	old := Build(NewIDs("node1", "aaaa", "eth0", "prod", "web"), Meta{Profiles: []string{"k8s"}}, "cali1", mac, addrs)
	if _, err := s.Write(ctx, old); err != nil {
		t.Fatal(err)
	}
	newer := Build(NewIDs("node1", "bbbb", "eth0", "prod", "web"), Meta{Profiles: []string{"k8s"}}, "cali1", mac, addrs)
	if _, err := s.Write(ctx, newer); err != nil {
		t.Fatalf("write by a new sandbox: %v", err)
	}

	// The old sandbox's DEL leaves the new endpoint; the new one's removes it.
	cur, err := s.Get(ctx, "prod", newer.Name)
	if err != nil || cur == nil {
		t.Fatal(cur, err)
	}
	if deleted, err := s.DeleteOwned(ctx, cur, "aaaa"); err != nil || deleted {
		t.Fatalf("DeleteOwned by the old container: %v %v", deleted, err)
	}
	if deleted, err := s.DeleteOwned(ctx, cur, "bbbb"); err != nil || !deleted {
		t.Fatalf("DeleteOwned by the owner: %v %v", deleted, err)
	}
	if deleted, err := s.DeleteOwned(ctx, cur, "bbbb"); err != nil || deleted {
		t.Fatalf("DeleteOwned again: %v %v", deleted, err)
	}
	if all, _, _ := c.WorkloadEndpoints().List(ctx, client.ListOptions{}); len(all) != 0 {
		t.Fatalf("left: %v", all)
	}
}

// issue 23 item 4: an endpoint an earlier ADD of the same container wrote
// (the ADD was killed before it answered) is replaced by the retry's,
// Kubernetes pod or not.
func TestWriteReplacesEarlierAddOfSameContainer(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t)
	for _, ids := range []IDs{NewIDs("node1", "aaaa", "eth0", "prod", "web"), NewIDs("node1", "bbbb", "eth0", "", "")} {
		first := Build(ids, Meta{Profiles: []string{"n"}}, "cali1", mac, []netip.Addr{netip.MustParseAddr("10.0.0.1")})
		if _, err := s.Write(ctx, first); err != nil {
			t.Fatal(err)
		}
		retry := Build(ids, Meta{Profiles: []string{"n"}}, "cali1", net.HardwareAddr{0x0a, 0x58, 0, 0, 0, 2}, []netip.Addr{netip.MustParseAddr("10.0.0.1")})
		got, err := s.Write(ctx, retry)
		if err != nil {
			t.Fatalf("%s: retry's write: %v", ids.Orchestrator, err)
		}
		if got.Spec.MAC != retry.Spec.MAC || got.Spec.ContainerID != ids.ContainerID {
			t.Fatalf("%s: endpoint after the retry %+v", ids.Orchestrator, got.Spec)
		}
	}
	if all, _, _ := c.WorkloadEndpoints().List(ctx, client.ListOptions{}); len(all) != 2 {
		t.Fatalf("%d endpoints, want one per container", len(all))
	}
}

func TestDeleteOwnedAfterReplacementRace(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	w := Build(NewIDs("node1", "aaaa", "eth0", "prod", "web"), Meta{}, "cali1", mac, addrs)
	if _, err := s.Write(ctx, w); err != nil {
		t.Fatal(err)
	}
	stale, _ := s.Get(ctx, "prod", w.Name)
	// Another sandbox replaces it between our read and our delete.
	if _, err := s.Write(ctx, Build(NewIDs("node1", "bbbb", "eth0", "prod", "web"), Meta{}, "cali1", mac, addrs)); err != nil {
		t.Fatal(err)
	}
	if deleted, err := s.DeleteOwned(ctx, stale, "aaaa"); err != nil || deleted {
		t.Fatalf("stale DeleteOwned: %v %v", deleted, err)
	}
	if cur, _ := s.Get(ctx, "prod", w.Name); cur == nil || cur.Spec.ContainerID != "bbbb" {
		t.Fatalf("the new sandbox's endpoint is gone: %+v", cur)
	}
}

func TestEnsureProfile(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t)
	for i := 0; i < 2; i++ {
		if err := s.EnsureProfile(ctx, "net1", false); err != nil {
			t.Fatal(err)
		}
	}
	p, err := c.Profiles().Get(ctx, "", "net1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.Ingress[0].Source.Selector != "has(net1)" || p.Spec.Egress[0].Action != v3.Allow {
		t.Fatalf("profile %+v", p.Spec)
	}
	if _, ok := p.Spec.LabelsToApply["net1"]; !ok {
		t.Fatalf("labelsToApply %v", p.Spec.LabelsToApply)
	}
	if err := s.EnsureProfile(ctx, "k8s-pod-network", true); err != nil {
		t.Fatal(err)
	}
	k, _ := c.Profiles().Get(ctx, "", "k8s-pod-network")
	if k.Spec.Ingress[0].Source.Selector != "" {
		t.Fatalf("k8s profile ingress %+v", k.Spec.Ingress)
	}
}
