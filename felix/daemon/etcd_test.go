package daemon

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/etcdrestore"
)

// gatedEtcd is the etcd backend with lists that can be held, so that a
// test sees felix in the middle of a resync.
type gatedEtcd struct {
	*etcd.Client
	mu   sync.Mutex
	gate chan struct{} // non-nil: List waits for it to close
}

func (g *gatedEtcd) List(ctx context.Context, opts model.ListOptions) (*backend.KVList, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Client.List(ctx, opts)
}

// hold makes lists wait until the returned function is called.
func (g *gatedEtcd) hold() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan struct{})
	g.gate = ch
	return func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(ch)
	}
}

func newEtcdBackend(t *testing.T, srv *testutil.Etcd, timeout time.Duration) *etcd.Client {
	t.Helper()
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: timeout, WatchProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

func gnp(name string) *v3.GlobalNetworkPolicy {
	p := v3.NewGlobalNetworkPolicy()
	p.Name = name
	p.Spec.Selector = "all()"
	p.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	return p
}

func hasPolicy(s *dpapi.State, name string) bool {
	for id := range s.Policies {
		if id.Name == name {
			return true
		}
	}
	return false
}

// ready polls /readiness until it answers 200 (want) or not (!want).
func ready(t *testing.T, addr net.Addr, want bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := get(t, addr, "/readiness")
		if (code == 200) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: /readiness answers %d", what, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// issue 23 item 9
//
// /readiness reflects being in sync: it goes false during an etcd outage
// in the middle of a run, and true again once felix is back in sync.
func TestReadinessFollowsEtcdOutage(t *testing.T) {
	srv := testutil.StartEtcd(t)
	// felix's own datastore timeout: a watch waits that long for its
	// probe, longer than the syncer's MaxRetryInterval.
	h := start(t, newEtcdBackend(t, srv, datastoreTimeout))
	h.create(wep("a", "h1", "10.0.0.1/32"))
	addrs := <-h.addrs
	h.waitState("the workload", func(s *dpapi.State) bool { return len(s.Workloads) == 1 })
	ready(t, addrs[0], true, "readiness")

	srv.Stop()
	ready(t, addrs[0], false, "readiness to go false during the outage")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ready(t, addrs[0], true, "readiness after the outage")
}

// issue 23 item 2
//
// etcd restored from a snapshot taken before a policy was deleted and
// another created: felix leaves readiness while it resyncs, then programs
// the restored policies (the deleted one back, the created one gone), and
// then a policy created after the restore.
func TestRestoredEtcdResyncsPolicies(t *testing.T) {
	srv := testutil.StartEtcd(t)
	// The timeout outlasts the restore: felix sees no outage, only the
	// reset.
	be := &gatedEtcd{Client: newEtcdBackend(t, srv, 20*time.Second)}
	h := start(t, be)
	h.create(wep("a", "h1", "10.0.0.1/32"))
	h.create(gnp("old"))
	addrs := <-h.addrs
	h.waitState("policy old", func(s *dpapi.State) bool { return hasPolicy(s, "old") })
	ready(t, addrs[0], true, "readiness")

	ctx := context.Background()
	snap := filepath.Join(t.TempDir(), "snap.db")
	if err := etcdrestore.Save(ctx, srv, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cli.Delete(ctx, v3.KindGlobalNetworkPolicy, "", "old", ""); err != nil {
		t.Fatal(err)
	}
	h.create(gnp("new"))
	h.waitState("policy new instead of old", func(s *dpapi.State) bool { return hasPolicy(s, "new") && !hasPolicy(s, "old") })

	release := be.hold()
	if err := etcdrestore.Restore(srv, snap, etcdrestore.DefaultClusterToken); err != nil {
		release()
		t.Fatal(err)
	}
	ready(t, addrs[0], false, "readiness to go false while felix resyncs")
	release()
	h.waitState("the restored policies", func(s *dpapi.State) bool { return hasPolicy(s, "old") && !hasPolicy(s, "new") })
	ready(t, addrs[0], true, "readiness after the resync")

	h.create(gnp("later"))
	h.waitState("a policy created after the restore", func(s *dpapi.State) bool { return hasPolicy(s, "later") && hasPolicy(s, "old") })
}
