package syncer

import (
	"context"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/testutil"
)

// etcdBackend returns a backend client for srv, closed at cleanup.
func etcdBackend(t *testing.T, srv *testutil.Etcd) backend.Client {
	t.Helper()
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually retries fn (a write just after a restart) until it succeeds.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSnapshotThenLiveEtcd(t *testing.T) {
	testSnapshotThenLive(t, etcdBackend(t, testutil.StartEtcd(t)))
}

func TestCompactionRelistEtcd(t *testing.T) {
	srv := testutil.StartEtcd(t)
	testCompactionRelist(t, etcdBackend(t, srv), func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if _, err := srv.Compact(ctx); err != nil {
			t.Fatalf("compacting etcd: %v", err)
		}
	})
}

// After etcd restarts the syncer delivers the changes made since, and ends
// InSync with exactly etcd's contents, whether or not it saw the outage.
func TestEtcdRestart(t *testing.T) {
	srv := testutil.StartEtcd(t)
	be := etcdBackend(t, srv)
	put(t, be, poolKey("a"), poolJSON(t, "a", "10.0.0.0/16"))
	put(t, be, poolKey("b"), poolJSON(t, "b", "10.1.0.0/16"))
	put(t, be, blockKey("10.0.0.0/26"), blockJSON(t, "10.0.0.0/26", "node1"))
	r := newRecorder()
	start(t, be, twoPrefixes, r)
	r.waitStatus(t, 0, InSync)

	m := r.mark()
	srv.Stop()
	time.Sleep(500 * time.Millisecond)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eventually(t, "creating pool c right after the restart", func() error {
		_, err := be.Apply(ctx, &backend.KVPair{Key: poolKey("c"), Value: poolJSON(t, "c", "10.2.0.0/16")})
		return err
	})
	r.waitFor(t, "pool c", func() bool { return r.value(poolKey("c")) != nil })
	put(t, be, poolKey("a"), poolJSON(t, "a", "10.9.0.0/16"))
	del(t, be, poolKey("b"))
	put(t, be, blockKey("10.0.0.64/26"), blockJSON(t, "10.0.0.64/26", "node2"))

	r.waitState(t, contents(t, be, poolOpts, blockOpts))
	r.waitStatus(t, 0, InSync)
	ss := r.statusesSince(m)
	t.Logf("statuses across the restart: %v", ss)
	if len(ss) > 0 && ss[len(ss)-1] != InSync {
		t.Fatalf("final status %v, want in-sync", ss[len(ss)-1])
	}
}

// A syncer started while etcd is down waits for it, then syncs.
func TestStartWhileEtcdDown(t *testing.T) {
	srv := testutil.StartEtcd(t)
	seed := etcdBackend(t, srv)
	put(t, seed, poolKey("a"), poolJSON(t, "a", "10.0.0.0/16"))
	put(t, seed, blockKey("10.0.0.0/26"), blockJSON(t, "10.0.0.0/26", "node1"))
	srv.Stop()

	f := newFaulty(etcdBackend(t, srv))
	r := newRecorder()
	start(t, f, twoPrefixes, r)
	r.waitFor(t, "a failed list", func() bool { return f.listErrs.Load() > 0 })
	if ss := r.statusesSince(0); len(ss) == 0 || ss[0] != WaitForDatastore {
		t.Fatalf("statuses while etcd is down = %v, want to start with wait-for-datastore", ss)
	}
	if us := r.updatesSince(0); len(us) != 0 {
		t.Fatalf("updates while etcd is down: %v", summary(us))
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(t, 0, InSync)
	r.waitState(t, contents(t, seed, poolOpts, blockOpts))
	ss := r.statusesSince(0)
	if ss[0] != WaitForDatastore || ss[len(ss)-1] != InSync {
		t.Fatalf("statuses = %v, want wait-for-datastore first and in-sync last", ss)
	}
	for _, s := range ss[:len(ss)-1] {
		if s == InSync {
			t.Fatalf("in-sync reported before the end: %v", ss)
		}
	}
}
