package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

// lossyDialer's connections lose the answer to the first request that
// carries marker: the request reaches etcd, and the connection breaks
// before the answer is read, as when a member dies right after committing.
// With down set, it also refuses every connection for that long after
// the break, so that no later attempt is answered within the call's time.
type lossyDialer struct {
	marker    []byte
	down      time.Duration
	mu        sync.Mutex
	fired     bool
	downUntil time.Time
}

func (d *lossyDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	refuse := time.Now().Before(d.downUntil)
	d.mu.Unlock()
	if refuse {
		return nil, errors.New("lossyDialer: refusing connections")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &lossyConn{Conn: c, d: d}, nil
}

func (d *lossyDialer) arm(marker string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.marker, d.fired = []byte(marker), false
}

type lossyConn struct {
	net.Conn
	d    *lossyDialer
	mu   sync.Mutex
	lost bool // the marker was sent: nothing read from now on is delivered
}

func (c *lossyConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		c.mu.Lock()
		lost := c.lost
		c.mu.Unlock()
		if !lost || err != nil {
			return n, err
		}
	}
}

func (c *lossyConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.d.mu.Lock()
	hit := !c.d.fired && c.d.marker != nil && bytes.Contains(b, c.d.marker)
	if hit {
		c.d.fired = true
	}
	c.d.mu.Unlock()
	if hit {
		c.mu.Lock()
		c.lost = true
		c.mu.Unlock()
		// Give etcd time to commit, then break the connection without
		// reading the answer.
		go func() {
			time.Sleep(300 * time.Millisecond)
			c.d.mu.Lock()
			c.d.downUntil = time.Now().Add(c.d.down)
			c.d.mu.Unlock()
			c.Conn.Close()
		}()
	}
	return n, err
}

// TestLostAnswerIsNotAFailure: a write committed whose answer is lost is
// sent again, and the second attempt reports the first one's success
// rather than a conflict (Create, Update, Delete, Txn).
func TestLostAnswerIsNotAFailure(t *testing.T) {
	srv := testutil.StartEtcd(t)
	d := &lossyDialer{}
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Dialer: d.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	key := func(n string) model.Key { return model.ResourceKey{Kind: "IPPool", Name: n} }

	d.arm("lost-create")
	created, err := c.Create(ctx, &backend.KVPair{Key: key("a"), Value: []byte(`{"v":"lost-create"}`)})
	if err != nil {
		t.Fatalf("create whose answer was lost: %v", err)
	}
	got, err := c.Get(ctx, key("a"))
	if err != nil || got.Revision != created.Revision {
		t.Fatalf("get after create = %v, %v; want revision %d", got, err, created.Revision)
	}
	if !d.fired {
		t.Fatal("the answer was not lost: the test proves nothing")
	}

	d.arm("lost-update")
	updated, err := c.Update(ctx, &backend.KVPair{Key: key("a"), Value: []byte(`{"v":"lost-update"}`), Revision: created.Revision})
	if err != nil {
		t.Fatalf("update whose answer was lost: %v", err)
	}
	if got, err := c.Get(ctx, key("a")); err != nil || got.Revision != updated.Revision || string(got.Value) != `{"v":"lost-update"}` {
		t.Fatalf("get after update = %v, %v; want revision %d", got, err, updated.Revision)
	}

	// Someone else's write is still a conflict.
	if _, err := c.Update(ctx, &backend.KVPair{Key: key("a"), Value: []byte(`{"v":"stale"}`), Revision: created.Revision}); !errors.Is(err, cerrors.ErrConflict) {
		t.Fatalf("stale update: %v, want a conflict", err)
	}

	d.arm(`"lost-txn"`)
	res, err := c.Txn(ctx, []backend.TxnOp{
		{Action: backend.TxnPut, Key: key("a"), Revision: updated.Revision, Value: []byte(`{"v":"lost-txn"}`)},
		{Action: backend.TxnPut, Key: key("b"), Value: []byte(`{"v":"lost-txn"}`)},
	})
	if err != nil {
		t.Fatalf("txn whose answer was lost: %v", err)
	}
	got, err = c.Get(ctx, key("b"))
	if err != nil || got.Revision != res.Revision {
		t.Fatalf("get after txn = %v, %v; want revision %d", got, err, res.Revision)
	}

	d.arm("calico/resources/v3/projectcalico.org/ippools/b")
	prev, err := c.Delete(ctx, key("b"), res.Revision)
	if err != nil {
		t.Fatalf("delete whose answer was lost: %v", err)
	}
	if string(prev.Value) != `{"v":"lost-txn"}` || prev.Revision != res.Revision {
		t.Fatalf("delete returned %+v", prev)
	}
	if _, err := c.Get(ctx, key("b")); !errors.Is(err, cerrors.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

// outageClient is a client (2 s timeout) whose armed write loses its
// answer, after which no connection is made for 1.9 s: past the call's
// time. It has talked to etcd once, so its connection is up.
func outageClient(t *testing.T) (*etcd.Client, *lossyDialer) {
	srv := testutil.StartEtcd(t)
	d := &lossyDialer{down: 1900 * time.Millisecond}
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Dialer: d.dial, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Get(context.Background(), model.ResourceKey{Kind: "IPPool", Name: "none"}); !errors.Is(err, cerrors.ErrNotFound) {
		t.Fatalf("get before the test: %v", err)
	}
	return c, d
}

// TestAnswerLostPastTheTimeoutIsSettled: a write committed whose answer
// is lost, with no member reachable again until the call's time is over,
// is settled once one is: reported committed (Create, Txn), not failed
// while it stands in the store.
func TestAnswerLostPastTheTimeoutIsSettled(t *testing.T) {
	c, d := outageClient(t)
	ctx := context.Background()
	key := func(n string) model.Key { return model.ResourceKey{Kind: "IPPool", Name: n} }

	d.arm("settled-create")
	start := time.Now()
	created, err := c.Create(ctx, &backend.KVPair{Key: key("a"), Value: []byte(`{"v":"settled-create"}`)})
	if err != nil {
		t.Fatalf("create whose answers were lost past the timeout: %v", err)
	}
	if !d.fired {
		t.Fatal("the answer was not lost: the test proves nothing")
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("create answered in %v, before the connection came back: the test proves nothing", took)
	}
	if got, err := c.Get(ctx, key("a")); err != nil || got.Revision != created.Revision {
		t.Fatalf("get after create = %v, %v; want revision %d", got, err, created.Revision)
	}

	d.arm(`"settled-txn"`)
	res, err := c.Txn(ctx, []backend.TxnOp{
		{Action: backend.TxnPut, Key: key("a"), Revision: created.Revision, Value: []byte(`{"v":"settled-txn"}`)},
		{Action: backend.TxnPut, Key: key("b"), Value: []byte(`{"v":"settled-txn"}`)},
	})
	if err != nil {
		t.Fatalf("txn whose answers were lost past the timeout: %v", err)
	}
	if got, err := c.Get(ctx, key("b")); err != nil || got.Revision != res.Revision {
		t.Fatalf("get after txn = %v, %v; want revision %d", got, err, res.Revision)
	}
}

// TestCancelledWriteIsNotSettled: a caller that cancels a write whose
// answer was lost gets its cancellation back, not a write settled after
// it (a daemon shutting down is not held up by one).
func TestCancelledWriteIsNotSettled(t *testing.T) {
	c, d := outageClient(t)
	key := model.ResourceKey{Kind: "IPPool", Name: "a"}
	d.arm("cancelled-create")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	_, err := c.Create(ctx, &backend.KVPair{Key: key, Value: []byte(`{"v":"cancelled-create"}`)})
	if !d.fired {
		t.Fatal("the answer was not lost: the test proves nothing")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("create cancelled while its answer was lost: %v, want context.Canceled", err)
	}
}

// TestClusterFaults runs the backend through a 3-member cluster's faults:
// every operation succeeds while a quorum stands (the second attempt of a
// write sent to a member that died or was cut off included), fails with
// cerrors.ErrUnavailable naming the endpoints when it does not, and
// nothing acknowledged is lost.
func TestClusterFaults(t *testing.T) {
	cl := testutil.StartEtcdCluster(t, 3)
	c, err := etcd.New(etcd.Config{Endpoints: cl.ClientURLs(), Dialer: cl.DialContext, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Without a quorum every call takes its whole timeout: a short one.
	short, err := etcd.New(etcd.Config{Endpoints: cl.ClientURLs(), Dialer: cl.DialContext, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	key := func(n string) model.Key { return model.ResourceKey{Kind: "IPPool", Name: n} }
	acked := map[string]int64{}
	n := 0
	cl.RunFaults(t, func(t *testing.T, f testutil.ClusterFault) {
		ctx := context.Background()
		n++
		name := fmt.Sprintf("p%d", n)
		start := time.Now()
		if !f.Quorum {
			_, err := short.Create(ctx, &backend.KVPair{Key: key(name), Value: []byte(`{"n":1}`)})
			if err == nil {
				t.Fatal("create succeeded without a quorum")
			}
			t.Logf("create without a quorum failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if !errors.Is(err, cerrors.ErrUnavailable) || !strings.Contains(err.Error(), cl.Members[0].ClientURL) {
				t.Errorf("error %q: want datastore unavailable naming the endpoints", err)
			}
			return
		}
		kv, err := c.Create(ctx, &backend.KVPair{Key: key(name), Value: []byte(`{"n":1}`)})
		if err != nil {
			t.Fatalf("create with a quorum standing: %v", err)
		}
		if kv, err = c.Update(ctx, &backend.KVPair{Key: key(name), Value: []byte(`{"n":2}`), Revision: kv.Revision}); err != nil {
			t.Fatalf("update with a quorum standing: %v", err)
		}
		if _, err := c.Get(ctx, key(name)); err != nil {
			t.Fatalf("get with a quorum standing: %v", err)
		}
		res, err := c.Txn(ctx, []backend.TxnOp{{Action: backend.TxnPut, Key: key(name + "-tx"), Value: []byte(`{}`)}})
		if err != nil {
			t.Fatalf("txn with a quorum standing: %v", err)
		}
		if _, err := c.Delete(ctx, key(name+"-tx"), res.Revision); err != nil {
			t.Fatalf("delete with a quorum standing: %v", err)
		}
		acked[name] = kv.Revision
		t.Logf("create, update, get, txn and delete took %v", time.Since(start).Round(time.Millisecond))
	}, func(t *testing.T, f testutil.ClusterFault) {
		list, err := c.List(context.Background(), model.ResourceListOptions{Kind: "IPPool"})
		if err != nil {
			t.Fatalf("list after healing: %v", err)
		}
		have := map[string]int64{}
		for _, kv := range list.KVPairs {
			have[kv.Key.(model.ResourceKey).Name] = kv.Revision
		}
		for name, rev := range acked {
			if have[name] != rev {
				t.Errorf("%s acknowledged at revision %d, now at %d", name, rev, have[name])
			}
		}
	})
}

// TestListChanged: the keys the caller holds at their revision by path
// only, the others with their values, all read at one revision.
func TestListChanged(t *testing.T) {
	srv := testutil.StartEtcd(t)
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	key := func(n string) model.Key { return model.ResourceKey{Kind: "IPPool", Name: n} }
	revs := map[string]int64{}
	for _, n := range []string{"a", "b", "c"} {
		kv, err := c.Apply(ctx, &backend.KVPair{Key: key(n), Value: []byte(`{"n":"` + n + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := key(n).Path()
		revs[p] = kv.Revision
	}
	pa, _ := key("a").Path()
	held := map[string]int64{pa: revs[pa]} // the caller holds a only
	asked := 0
	l, err := c.ListChanged(ctx, model.ResourceListOptions{Kind: "IPPool"}, func(p string, rev int64) bool {
		asked++
		return held[p] == rev
	})
	if err != nil {
		t.Fatal(err)
	}
	if asked != 3 || len(l.KVPairs) != 2 || len(l.Unchanged) != 1 || l.Unchanged[0] != pa {
		t.Fatalf("asked %d times, listed %d, unchanged %q", asked, len(l.KVPairs), l.Unchanged)
	}
	for _, kv := range l.KVPairs {
		p, _ := kv.Key.Path()
		switch {
		case kv.Revision != revs[p]:
			t.Errorf("%s at revision %d, want %d", p, kv.Revision, revs[p])
		case p == pa:
			t.Errorf("%s held, yet it was read", p)
		case !strings.Contains(string(kv.Value), `"n"`):
			t.Errorf("%s changed, yet its value is %q", p, kv.Value)
		}
	}
	if l.Revision < revs[pa] {
		t.Errorf("list revision %d", l.Revision)
	}
}

// TestListSince: what changed after a revision, with the others unchanged,
// while no key was deleted; nil (list with ListChanged) once one was, or
// when a key modified since the list does not match.
func TestListSince(t *testing.T) {
	srv := testutil.StartEtcd(t)
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	opts := model.ResourceListOptions{Kind: "IPPool"}
	key := func(n string) model.Key { return model.ResourceKey{Kind: "IPPool", Name: n} }
	path := func(n string) string { p, _ := key(n).Path(); return p }
	apply := func(n string) int64 {
		kv, err := c.Apply(ctx, &backend.KVPair{Key: key(n), Value: []byte(`{"n":"` + n + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		return kv.Revision
	}
	var listed int64
	for _, n := range []string{"a", "b", "c"} {
		listed = apply(n)
	}
	held := map[string]bool{path("a"): true, path("b"): true, path("c"): true}
	holds := func(p string) bool { return held[p] }
	since := apply("a") // followed by the caller

	apply("b")
	apply("d")
	l, err := c.ListSince(ctx, opts, listed, since, len(held), holds)
	if err != nil || l == nil {
		t.Fatalf("ListSince after an update and a create: %v, %v", l, err)
	}
	var got []string
	for _, kv := range l.KVPairs {
		p, _ := kv.Key.Path()
		got = append(got, p)
	}
	if !l.OthersUnchanged || !slices.Equal(got, []string{path("b"), path("d")}) || l.Revision <= since {
		t.Fatalf("listed %v at %d (others unchanged: %v), want b and d after %d", got, l.Revision, l.OthersUnchanged, since)
	}

	if _, err := c.Delete(ctx, key("c"), 0); err != nil {
		t.Fatal(err)
	}
	// c deleted, d created: as many keys as held, yet one is gone.
	if l, err := c.ListSince(ctx, opts, listed, since, len(held), holds); l != nil || err != nil {
		t.Fatalf("ListSince after a delete: %v, %v; want nil, nil", l, err)
	}

	// A key under the prefix that is not a pool, created after the list
	// and before since (the caller's watch passes over it).
	listed = apply("d")
	held = map[string]bool{path("a"): true, path("b"): true, path("d"): true}
	if _, err := c.Raw().Put(ctx, path("e")+"/not-a-pool", "{}"); err != nil {
		t.Fatal(err)
	}
	since = apply("a")
	// With b deleted, the count is what the caller holds: only the
	// foreign key tells.
	if _, err := c.Delete(ctx, key("b"), 0); err != nil {
		t.Fatal(err)
	}
	if l, err := c.ListSince(ctx, opts, listed, since, len(held), holds); l != nil || err != nil {
		t.Fatalf("ListSince with a key under the prefix that is not a pool: %v, %v; want nil, nil", l, err)
	}
}
