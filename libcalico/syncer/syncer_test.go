package syncer

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/model"
)

var twoPrefixes = Config{Prefixes: []model.ListOptions{poolOpts, blockOpts}}

// testSnapshotThenLive: the snapshot of both prefixes, typed, all before
// InSync; then live creates, updates and deletes.
func testSnapshotThenLive(t *testing.T, be backend.Client) {
	revA := put(t, be, poolKey("a"), poolJSON(t, "a", "10.0.0.0/16"))
	put(t, be, poolKey("b"), poolJSON(t, "b", "10.1.0.0/16"))
	put(t, be, blockKey("10.0.0.0/26"), blockJSON(t, "10.0.0.0/26", "node1"))
	put(t, be, model.ResourceKey{Kind: v3.KindTier, Name: "ignored"}, []byte(`{}`))

	r := newRecorder()
	start(t, be, twoPrefixes, r)
	r.waitStatus(t, 0, InSync)
	if got, want := r.statusesSince(0), []Status{WaitForDatastore, ResyncInProgress, InSync}; !slices.Equal(got, want) {
		t.Fatalf("statuses = %v, want %v", got, want)
	}
	r.mu.Lock()
	if _, ok := r.log[len(r.log)-1].(Status); !ok {
		t.Errorf("updates after InSync before any change:\n%s", dump(r.log))
	}
	r.mu.Unlock()
	want := []string{"new Block(10.0.0.0/26)", "new IPPool(a)", "new IPPool(b)"}
	if got := summary(r.updatesSince(0)); !slices.Equal(got, want) {
		t.Fatalf("snapshot = %v, want %v", got, want)
	}
	pool, ok := r.value(poolKey("a")).(*v3.IPPool)
	if !ok || pool.Name != "a" || pool.Spec.CIDR != "10.0.0.0/16" || pool.ResourceVersion != strconv.FormatInt(revA, 10) {
		t.Fatalf("pool a = %#v, want name a, cidr 10.0.0.0/16, resourceVersion %d", r.value(poolKey("a")), revA)
	}
	if b, ok := r.value(blockKey("10.0.0.0/26")).(*model.AllocationBlock); !ok || b.Host() != "node1" {
		t.Fatalf("block = %#v, want *model.AllocationBlock on node1", r.value(blockKey("10.0.0.0/26")))
	}

	m := r.mark()
	put(t, be, poolKey("c"), poolJSON(t, "c", "10.2.0.0/16"))
	revA = put(t, be, poolKey("a"), poolJSON(t, "a", "10.9.0.0/16"))
	del(t, be, poolKey("b"))
	put(t, be, blockKey("10.0.0.64/26"), blockJSON(t, "10.0.0.64/26", "node2"))
	put(t, be, blockKey("10.0.0.0/26"), blockJSON(t, "10.0.0.0/26", "node3"))
	r.waitState(t, contents(t, be, poolOpts, blockOpts))
	want = []string{"deleted IPPool(b)", "new Block(10.0.0.64/26)", "new IPPool(c)", "updated Block(10.0.0.0/26)", "updated IPPool(a)"}
	if got := summary(r.updatesSince(m)); !slices.Equal(got, want) {
		t.Fatalf("live updates = %v, want %v", got, want)
	}
	pool, ok = r.value(poolKey("a")).(*v3.IPPool)
	if !ok || pool.Spec.CIDR != "10.9.0.0/16" || pool.ResourceVersion != strconv.FormatInt(revA, 10) {
		t.Fatalf("updated pool a = %#v", r.value(poolKey("a")))
	}
	if ss := r.statusesSince(m); len(ss) != 0 {
		t.Fatalf("status changed during live updates: %v", ss)
	}
}

// testCompactionRelist: a watch is broken and its resumption held while
// keys change and the store is compacted; on release the resumed watch
// meets the real compaction error, and the relist reports exactly the
// differences.
func testCompactionRelist(t *testing.T, raw backend.Client, compact func(t *testing.T)) {
	f := newFaulty(raw)
	for _, n := range []string{"a", "b", "c", "keep"} {
		put(t, raw, poolKey(n), poolJSON(t, n, "10.0.0.0/16"))
	}
	put(t, raw, blockKey("10.0.0.0/26"), blockJSON(t, "10.0.0.0/26", "node1"))
	r := newRecorder()
	start(t, f, twoPrefixes, r)
	r.waitStatus(t, 0, InSync)

	// One live event first, so the broken watch has made progress and is
	// resumed from its last revision rather than relisted.
	revA := put(t, raw, poolKey("a"), poolJSON(t, "a", "10.5.0.0/16"))
	r.waitState(t, contents(t, raw, poolOpts, blockOpts))

	release := f.holdWatches()
	if n := f.breakWatches(poolOpts, errors.New("forced watch failure")); n == 0 {
		t.Fatal("no pool watch to break")
	}
	select {
	case hw := <-f.held:
		if hw.rev != revA {
			t.Errorf("watch resumed from revision %d, want %d (the last one seen)", hw.rev, revA)
		}
	case <-time.After(waitTimeout):
		t.Fatal("syncer did not try to resume the broken watch")
	}
	m := r.mark()
	put(t, raw, poolKey("d"), poolJSON(t, "d", "10.3.0.0/16"))
	put(t, raw, poolKey("b"), poolJSON(t, "b", "10.4.0.0/16"))
	del(t, raw, poolKey("c"))
	put(t, raw, poolKey("brief"), poolJSON(t, "brief", "10.6.0.0/16"))
	del(t, raw, poolKey("brief"))
	compact(t)
	release()

	r.waitState(t, contents(t, raw, poolOpts, blockOpts))
	r.waitStatus(t, m, InSync)
	want := []string{"deleted IPPool(c)", "new IPPool(d)", "updated IPPool(b)"}
	if got := summary(r.updatesSince(m)); !slices.Equal(got, want) {
		t.Fatalf("updates after compaction = %v, want exactly %v", got, want)
	}
	if got, want := r.statusesSince(m), []Status{ResyncInProgress, InSync}; !slices.Equal(got, want) {
		t.Fatalf("statuses after compaction = %v, want %v", got, want)
	}
}

func TestSnapshotThenLiveMemory(t *testing.T) { testSnapshotThenLive(t, memory.New()) }

func TestCompactionRelistMemory(t *testing.T) {
	mem := memory.New()
	testCompactionRelist(t, mem, func(*testing.T) { mem.Compact() })
}

// Values that do not decode are skipped, and reported deleted if they
// replace a value the consumer has, both live and on a relist.
func TestDecodeFailures(t *testing.T) {
	mem := memory.New()
	f := newFaulty(mem)
	garbage := []byte(`{not json`)
	put(t, mem, poolKey("good"), poolJSON(t, "good", "10.0.0.0/16"))
	put(t, mem, poolKey("bad"), garbage)
	put(t, mem, blockKey("10.0.0.0/26"), []byte(`{"cidr":"nope"}`))
	r := newRecorder()
	start(t, f, twoPrefixes, r)
	r.waitStatus(t, 0, InSync)
	if got, want := summary(r.updatesSince(0)), []string{"new IPPool(good)"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot = %v, want %v", got, want)
	}

	m := r.mark()
	put(t, mem, poolKey("bad"), poolJSON(t, "bad", "10.1.0.0/16"))
	put(t, mem, poolKey("good"), garbage)
	put(t, mem, poolKey("worse"), garbage)
	put(t, mem, blockKey("10.0.0.0/26"), garbage)
	put(t, mem, poolKey("z"), poolJSON(t, "z", "10.2.0.0/16"))
	r.waitFor(t, "pool z", func() bool { return r.value(poolKey("z")) != nil })
	want := []string{"deleted IPPool(good)", "new IPPool(bad)", "new IPPool(z)"}
	if got := summary(r.updatesSince(m)); !slices.Equal(got, want) {
		t.Fatalf("live updates = %v, want %v", got, want)
	}

	// The same on a relist after compaction.
	release := f.holdWatches()
	f.breakWatches(poolOpts, errors.New("forced watch failure"))
	<-f.held
	m = r.mark()
	put(t, mem, poolKey("bad"), garbage)
	put(t, mem, poolKey("good"), poolJSON(t, "good", "10.0.0.0/16"))
	mem.Compact()
	release()
	r.waitStatus(t, m, InSync)
	want = []string{"deleted IPPool(bad)", "new IPPool(good)"}
	if got := summary(r.updatesSince(m)); !slices.Equal(got, want) {
		t.Fatalf("relist updates = %v, want %v", got, want)
	}
}

// A watch that fails, is resumed, and fails again before delivering
// anything makes the syncer relist; with nothing changed it reports no
// updates, only the trip through resync-in-progress.
func TestRepeatedWatchFailureRelists(t *testing.T) {
	mem := memory.New()
	f := newFaulty(mem)
	put(t, mem, poolKey("a"), poolJSON(t, "a", "10.0.0.0/16"))
	r := newRecorder()
	start(t, f, twoPrefixes, r)
	r.waitStatus(t, 0, InSync)
	put(t, mem, poolKey("b"), poolJSON(t, "b", "10.1.0.0/16"))
	r.waitFor(t, "pool b", func() bool { return r.value(poolKey("b")) != nil })

	m, lists := r.mark(), f.lists.Load()
	f.breakWatches(poolOpts, errors.New("first failure"))
	r.waitFor(t, "the resumed watch", func() bool { return f.watches(poolOpts) == 2 })
	if f.lists.Load() != lists {
		t.Fatal("relisted after one failure; want the watch resumed")
	}
	f.breakWatches(poolOpts, errors.New("second failure"))
	r.waitFor(t, "a relist and a new watch", func() bool { return f.watches(poolOpts) == 3 })
	r.waitStatus(t, m, InSync)
	if got, want := r.statusesSince(m), []Status{ResyncInProgress, InSync}; !slices.Equal(got, want) {
		t.Fatalf("statuses = %v, want %v", got, want)
	}
	if us := r.updatesSince(m); len(us) != 0 {
		t.Fatalf("relist with nothing changed reported %v", summary(us))
	}
	if f.lists.Load() != lists+1 {
		t.Fatalf("%d lists after the second failure, want 1", f.lists.Load()-lists)
	}
}

// Snapshots are cut into batches of at most MaxBatchSize.
func TestBatchSize(t *testing.T) {
	mem := memory.New()
	for i := range 5 {
		put(t, mem, poolKey(fmt.Sprint("p", i)), poolJSON(t, fmt.Sprint("p", i), "10.0.0.0/16"))
	}
	r := newRecorder()
	start(t, mem, Config{Prefixes: []model.ListOptions{poolOpts}, MaxBatchSize: 2}, r)
	r.waitStatus(t, 0, InSync)
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0
	for _, e := range r.log {
		if us, ok := e.([]Update); ok {
			if len(us) > 2 {
				t.Errorf("batch of %d updates, max 2", len(us))
			}
			total += len(us)
		}
	}
	if total != 5 {
		t.Errorf("%d updates, want 5:\n%s", total, dump(r.log))
	}
}

// Cancelling ctx makes Run return nil and ends every goroutine it started,
// whatever the syncer was doing.
func TestRunReturnsOnCancel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, mem *memory.Store, f *faultyBackend, r *recorder)
	}{
		{"in sync", func(t *testing.T, _ *memory.Store, _ *faultyBackend, r *recorder) {
			r.waitStatus(t, 0, InSync)
		}},
		{"datastore closed", func(t *testing.T, mem *memory.Store, f *faultyBackend, r *recorder) {
			mem.Close()
			r.waitFor(t, "a failed list", func() bool { return f.listErrs.Load() > 0 })
		}},
		{"watch held", func(t *testing.T, _ *memory.Store, f *faultyBackend, r *recorder) {
			r.waitStatus(t, 0, InSync)
			f.holdWatches()
			f.breakWatches(poolOpts, errors.New("forced watch failure"))
			<-f.held
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			mem := memory.New()
			put(t, mem, poolKey("a"), poolJSON(t, "a", "10.0.0.0/16"))
			f := newFaulty(mem)
			r := newRecorder()
			run := start(t, f, twoPrefixes, r)
			tc.setup(t, mem, f, r)
			if err := run.stop(); err != nil {
				t.Fatal(err)
			}
			r.waitFor(t, fmt.Sprintf("goroutines back to %d", before), func() bool {
				return runtime.NumGoroutine() <= before
			})
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Prefixes: []model.ListOptions{model.PrefixListOptions{Path: "/elsewhere/"}}},
		{Prefixes: []model.ListOptions{poolOpts}, MaxBatchSize: -1},
		{Prefixes: []model.ListOptions{poolOpts}, RetryInterval: 5 * time.Second, MaxRetryInterval: time.Second},
	} {
		r := newRecorder()
		err := New(memory.New(), cfg, r, nil).Run(context.Background())
		if err == nil {
			t.Errorf("Run(%+v) = nil, want an error", cfg)
		}
		if len(r.log) != 0 {
			t.Errorf("Run(%+v) called back: %v", cfg, dump(r.log))
		}
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{first: time.Second, max: 10 * time.Second}
	var got []time.Duration
	for range 7 {
		got = append(got, b.next())
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff = %v, want %v", got, want)
	}
	b.reset()
	if d := b.next(); d != 0 {
		t.Fatalf("after reset = %v, want 0", d)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{WaitForDatastore.String(), "wait-for-datastore"},
		{ResyncInProgress.String(), "resync-in-progress"},
		{InSync.String(), "in-sync"},
		{UpdateNew.String(), "new"},
		{UpdateUpdated.String(), "updated"},
		{UpdateDeleted.String(), "deleted"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// issue 23 item 2
//
// A relist compares values as well as revisions: after a reset the
// restored store may hold another value at a revision the consumer has.
func TestRelistComparesValues(t *testing.T) {
	r := newRecorder()
	s := New(memory.New(), twoPrefixes, r, nil)
	l := &loop{s: s, status: InSync, sh: newShared(), seed: maphash.MakeSeed()}
	p := &prefixState{name: "pools", log: s.log, keys: map[string]cached{}}
	list := func(cidr string) *backend.KVList {
		return &backend.KVList{Revision: 7, KVPairs: []*backend.KVPair{{Key: poolKey("a"), Value: poolJSON(t, "a", cidr), Revision: 7}}}
	}
	l.diff(p, list("10.0.0.0/16"))
	l.flush()
	m := r.mark()
	l.diff(p, list("10.0.0.0/16"))
	l.flush()
	if us := r.updatesSince(m); len(us) != 0 {
		t.Fatalf("the same list again reported %v", summary(us))
	}
	l.diff(p, list("10.9.0.0/16"))
	l.flush()
	if got, want := summary(r.updatesSince(m)), []string{"updated IPPool(a)"}; !slices.Equal(got, want) {
		t.Fatalf("another value at the same revision reported %v, want %v", got, want)
	}
	if pool, ok := r.value(poolKey("a")).(*v3.IPPool); !ok || pool.Spec.CIDR != "10.9.0.0/16" {
		t.Fatalf("pool a = %#v, want the new value", r.value(poolKey("a")))
	}
}
