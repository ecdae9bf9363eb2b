package fvtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

// TestEtcdCluster runs two hosts' confd and bgpd on a 3-member etcd
// cluster (confd's config lists the three endpoints) through the
// cluster's faults. Throughout, the BGP session stays up and no learnt
// route leaves the kernel (confd keeps its rendered config, bgpd its
// sessions); a block affined while a quorum stands is learnt across, and
// so is one affined once the cluster is healed. Both daemons run on.
func TestEtcdCluster(t *testing.T) {
	cl := testutil.StartEtcdCluster(t, 3)
	l := newLabOn(t, false, cl)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	h1.start()
	h2.start()
	mesh := bgpstatus.PeerTypeMesh
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.12": mesh})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.11": mesh})
	waitRoutes(t, 30*time.Second, map[*host][]want{
		h1: {{dst: "10.65.2.0/26", gw: "172.31.255.12"}},
		h2: {{dst: "10.65.1.0/26", gw: "172.31.255.11"}},
	})
	learnt := map[*host][]string{h1: {"10.65.2.0/26"}, h2: {"10.65.1.0/26"}}
	mon := watchRoutes(t, learnt)
	since := func() map[string]string {
		return map[string]string{"h1": peerSince(t, h1, "172.31.255.12"), "h2": peerSince(t, h2, "172.31.255.11")}
	}
	before := since()

	// affine gives h1 another block, retrying while the cluster settles,
	// and waits for h2 to learn it.
	next := 10
	affine := func(t *testing.T, what string) {
		t.Helper()
		next++
		cidr := fmt.Sprintf("10.65.%d.0/26", next)
		waitFor(t, 30*time.Second, "affining "+cidr, func() error { return l.tryAffinity("h1", cidr) })
		waitRoutes(t, 30*time.Second, map[*host][]want{h2: {{dst: cidr, gw: "172.31.255.11"}}})
		learnt[h2] = append(learnt[h2], cidr)
		t.Logf("%s: h2 learnt %s", what, cidr)
	}
	cl.RunFaults(t, func(t *testing.T, f testutil.ClusterFault) {
		if f.Quorum {
			affine(t, "during "+f.Name)
		} else {
			time.Sleep(time.Second)
		}
	}, func(t *testing.T, f testutil.ClusterFault) {
		affine(t, "after "+f.Name)
		for _, h := range l.hosts {
			if !h.confd.running() || !h.bgpd.running() {
				t.Fatalf("%s: a daemon exited during %s", h.name, f.Name)
			}
		}
	})
	checks, misses := mon.finish()
	if len(misses) > 0 {
		t.Errorf("learnt routes left the kernel %d times in %d checks: %v", len(misses), checks, misses[:min(5, len(misses))])
	}
	if after := since(); !maps.Equal(before, after) {
		t.Errorf("the BGP session was reset: since %v, now %v", before, after)
	}
}

// tryAffinity is affinity returning the error (an existing affinity, the
// first attempt's, counts as done).
func (l *lab) tryAffinity(host, cidr string) error {
	kv := &backend.KVPair{
		Key:   model.BlockAffinityKey{Host: host, CIDR: netip.MustParsePrefix(cidr)},
		Value: []byte(`{"state":"confirmed","deleted":false}`),
	}
	_, err := l.c.Backend().Create(context.Background(), kv)
	if errors.Is(err, cerrors.ErrExists) {
		return nil
	}
	return err
}
