package syncer

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/etcdrestore"
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

// issue 23 item 9
//
// An etcd outage takes the syncer out of InSync (the consumer's view may
// be stale; felix ties /readiness to it) until etcd answers again.
func TestEtcdOutageLeavesInSync(t *testing.T) {
	srv := testutil.StartEtcd(t)
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: time.Second, WatchProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	put(t, be, poolKey("a"), poolJSON(t, "a", "10.0.0.0/16"))
	r := newRecorder()
	cfg := twoPrefixes
	cfg.RetryInterval, cfg.MaxRetryInterval = 100*time.Millisecond, 500*time.Millisecond
	start(t, be, cfg, r)
	r.waitStatus(t, 0, InSync)
	// Let the watches outlive MaxRetryInterval, as in a long-running
	// daemon: a watch failure is then not counted as a repeated one.
	time.Sleep(time.Second)

	m := r.mark()
	srv.Stop()
	r.waitFor(t, "the status to leave in-sync during the outage", func() bool {
		ss := r.statusesSince(m)
		return len(ss) > 0 && ss[len(ss)-1] != InSync
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(t, m, InSync)
	if us := r.updatesSince(m); len(us) != 0 {
		t.Errorf("an outage with nothing changed reported %v", summary(us))
	}
}

// issue 23 item 2
//
// etcd restored from a snapshot (its revision back in time): the syncer
// warns, goes through ResyncInProgress, reports what the restore undid (a
// created after the snapshot deleted, b deleted after it back), ends
// InSync with exactly the restored contents, and then follows changes
// made after the restore.
func TestEtcdRestoreFromSnapshotResyncs(t *testing.T) {
	srv := testutil.StartEtcd(t)
	// The timeout outlasts the restore, so that the syncer's watches ride
	// through it and only the reset tells it anything happened.
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: 20 * time.Second, WatchProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	put(t, be, poolKey("b"), poolJSON(t, "b", "10.1.0.0/16"))
	put(t, be, poolKey("keep"), poolJSON(t, "keep", "10.2.0.0/16"))
	put(t, be, blockKey("10.0.0.0/26"), blockJSON(t, "10.0.0.0/26", "node1"))
	logger, hook := logtest.NewNullLogger()
	r := newRecorder()
	startWithLog(t, be, twoPrefixes, r, logrus.NewEntry(logger))
	r.waitStatus(t, 0, InSync)

	ctx := context.Background()
	snap := filepath.Join(t.TempDir(), "snap.db")
	if err := etcdrestore.Save(ctx, srv, snap); err != nil {
		t.Fatal(err)
	}
	put(t, be, poolKey("a"), poolJSON(t, "a", "10.3.0.0/16"))
	del(t, be, poolKey("b"))
	r.waitFor(t, "a created and b deleted", func() bool {
		return r.value(poolKey("a")) != nil && r.value(poolKey("b")) == nil
	})

	m := r.mark()
	if err := etcdrestore.Restore(srv, snap, etcdrestore.DefaultClusterToken); err != nil {
		t.Fatal(err)
	}
	var restored map[string]int64
	eventually(t, "listing the restored etcd", func() error {
		var err error
		restored, err = contentsErr(be, poolOpts, blockOpts)
		return err
	})
	r.waitState(t, restored)
	r.waitStatus(t, m, InSync)
	if got, want := summary(r.updatesSince(m)), []string{"deleted IPPool(a)", "new IPPool(b)"}; !slices.Equal(got, want) {
		t.Errorf("updates after the restore = %v, want %v", got, want)
	}
	ss := r.statusesSince(m)
	if ss[0] == InSync || !slices.Contains(ss, ResyncInProgress) {
		t.Errorf("statuses after the restore = %v, want resync-in-progress before in-sync", ss)
	}
	warned := false
	for _, e := range hook.AllEntries() {
		if err, ok := e.Data[logrus.ErrorKey].(error); ok && e.Level == logrus.WarnLevel &&
			strings.Contains(e.Message, "Datastore reset") && errors.Is(err, cerrors.ErrDatastoreReset) &&
			strings.Contains(err.Error(), "revision") {
			warned = true
			t.Logf("warning: %s: %v", e.Message, err)
		}
	}
	if !warned {
		t.Error("no warning naming the reset")
	}

	m = r.mark()
	eventually(t, "creating pool c after the restore", func() error {
		_, err := be.Apply(ctx, &backend.KVPair{Key: poolKey("c"), Value: poolJSON(t, "c", "10.4.0.0/16")})
		return err
	})
	r.waitState(t, contents(t, be, poolOpts, blockOpts))
	if got, want := summary(r.updatesSince(m)), []string{"new IPPool(c)"}; !slices.Equal(got, want) {
		t.Errorf("updates after the restore = %v, want %v", got, want)
	}
}

// contentsErr is contents returning the error.
func contentsErr(be backend.Client, prefixes ...model.ListOptions) (map[string]int64, error) {
	out := map[string]int64{}
	for _, p := range prefixes {
		l, err := be.List(context.Background(), p)
		if err != nil {
			return nil, err
		}
		for _, kv := range l.KVPairs {
			out[mustPath(kv.Key)] = kv.Revision
		}
	}
	return out, nil
}

// A syncer whose watch met compaction relists by what changed since the
// revision it had followed to (ListSince); when keys were deleted in the
// compacted span, it lists keys and revisions (ListChanged) to find them.
func TestCompactionRelistSinceEtcd(t *testing.T) {
	srv := testutil.StartEtcd(t)
	raw := etcdBackend(t, srv)
	f := &relisting{faultyBackend: newFaulty(raw), cl: raw.(backend.ChangeLister)}
	for _, n := range []string{"a", "b", "c", "keep", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"} {
		put(t, raw, poolKey(n), poolJSON(t, n, "10.0.0.0/16"))
	}
	put(t, raw, blockKey("10.0.0.0/26"), blockJSON(t, "10.0.0.0/26", "node1"))
	r := newRecorder()
	start(t, f, twoPrefixes, r)
	r.waitStatus(t, 0, InSync)

	// compacted breaks the pool watch, holds its resumption while change
	// runs and etcd is compacted, then lets it meet the compaction; it
	// returns the updates delivered until the syncer is InSync again with
	// etcd's contents.
	compacted := func(change func()) []string {
		t.Helper()
		m := r.mark()
		release := f.holdWatches()
		if n := f.breakWatches(poolOpts, errors.New("forced watch failure")); n == 0 {
			t.Fatal("no pool watch to break")
		}
		select {
		case <-f.held:
		case <-time.After(waitTimeout):
			t.Fatal("syncer did not try to resume the broken watch")
		}
		change()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if _, err := srv.Compact(ctx); err != nil {
			t.Fatalf("compacting etcd: %v", err)
		}
		release()
		r.waitState(t, contents(t, raw, poolOpts, blockOpts))
		r.waitStatus(t, m, InSync)
		return summary(r.updatesSince(m))
	}

	// A live event first: the syncer follows it, and stays exact.
	put(t, raw, poolKey("a"), poolJSON(t, "a", "10.5.0.0/16"))
	r.waitState(t, contents(t, raw, poolOpts, blockOpts))

	got := compacted(func() {
		put(t, raw, poolKey("d"), poolJSON(t, "d", "10.3.0.0/16"))
		put(t, raw, poolKey("b"), poolJSON(t, "b", "10.4.0.0/16"))
	})
	if want := []string{"new IPPool(d)", "updated IPPool(b)"}; !slices.Equal(got, want) {
		t.Fatalf("updates after compaction = %v, want exactly %v", got, want)
	}
	f.want(t, 1, 0, 0)

	got = compacted(func() {
		del(t, raw, poolKey("c"))
		put(t, raw, poolKey("e"), poolJSON(t, "e", "10.7.0.0/16"))
	})
	if want := []string{"deleted IPPool(c)", "new IPPool(e)"}; !slices.Equal(got, want) {
		t.Fatalf("updates after compaction = %v, want exactly %v", got, want)
	}
	f.want(t, 1, 1, 1)

	// More than an eighth of the pools changed since the list: reading
	// them again would cost more than keys and revisions.
	for _, n := range []string{"p1", "p2"} {
		put(t, raw, poolKey(n), poolJSON(t, n, "10.8.0.0/16"))
	}
	r.waitState(t, contents(t, raw, poolOpts, blockOpts))
	compacted(func() {
		put(t, raw, poolKey("p3"), poolJSON(t, "p3", "10.9.0.0/16"))
		put(t, raw, poolKey("p4"), poolJSON(t, "p4", "10.9.0.0/16"))
	})
	f.want(t, 1, 1, 2)
}
