// Package conformance is the one behavioural contract every backend.Client
// implementation must pass.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Factory returns an empty datastore for one subtest.
type Factory func(t *testing.T) backend.Client

func poolKey(name string) model.ResourceKey {
	return model.ResourceKey{Kind: "IPPool", Name: name}
}

func npKey(ns, name string) model.ResourceKey {
	return model.ResourceKey{Kind: "NetworkPolicy", Namespace: ns, Name: name}
}

func kv(k model.Key, v string) *backend.KVPair {
	return &backend.KVPair{Key: k, Value: []byte(v)}
}

// th wraps *testing.T with checkers that accept a call's two results.
type th struct{ t *testing.T }

func (h th) check(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("unexpected error: %v", err)
	}
}

func (h th) kv(v *backend.KVPair, err error) *backend.KVPair { h.t.Helper(); h.check(err); return v }
func (h th) list(v *backend.KVList, err error) *backend.KVList {
	h.t.Helper()
	h.check(err)
	return v
}
func (h th) watch(v backend.Watcher, err error) backend.Watcher {
	h.t.Helper()
	h.check(err)
	return v
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

// Run runs the whole suite.
func Run(t *testing.T, newClient Factory) {
	ctx := context.Background()
	t.Run("CreateGet", func(t *testing.T) {
		h := th{t}
		c := newClient(t)
		created := h.kv(c.Create(ctx, kv(poolKey("p1"), `{"a":1}`)))
		if created.Revision == 0 {
			t.Fatal("create returned revision 0")
		}
		got := h.kv(c.Get(ctx, poolKey("p1")))
		if string(got.Value) != `{"a":1}` || got.Revision != created.Revision {
			t.Fatalf("get = %s@%d, want {\"a\":1}@%d", got.Value, got.Revision, created.Revision)
		}
		_, err := c.Create(ctx, kv(poolKey("p1"), `{"a":2}`))
		wantErr(t, err, cerrors.ErrExists)
		_, err = c.Get(ctx, poolKey("nope"))
		wantErr(t, err, cerrors.ErrNotFound)
	})
	t.Run("UpdateRevisions", func(t *testing.T) {
		h := th{t}
		c := newClient(t)
		v1 := h.kv(c.Create(ctx, kv(poolKey("p1"), "1")))
		stale := v1.Revision
		v2 := h.kv(c.Update(ctx, &backend.KVPair{Key: poolKey("p1"), Value: []byte("2"), Revision: v1.Revision}))
		if v2.Revision <= v1.Revision {
			t.Fatalf("revision did not grow: %d -> %d", v1.Revision, v2.Revision)
		}
		_, err := c.Update(ctx, &backend.KVPair{Key: poolKey("p1"), Value: []byte("3"), Revision: stale})
		wantErr(t, err, cerrors.ErrConflict)
		if got := h.kv(c.Get(ctx, poolKey("p1"))); string(got.Value) != "2" {
			t.Fatalf("conflicting update wrote %q", got.Value)
		}
		h.kv(c.Update(ctx, kv(poolKey("p1"), "4")))
		_, err = c.Update(ctx, kv(poolKey("missing"), "x"))
		wantErr(t, err, cerrors.ErrNotFound)
		_, err = c.Get(ctx, poolKey("missing"))
		wantErr(t, err, cerrors.ErrNotFound)
	})
	t.Run("Apply", func(t *testing.T) {
		h := th{t}
		c := newClient(t)
		a := h.kv(c.Apply(ctx, kv(poolKey("p1"), "1")))
		b := h.kv(c.Apply(ctx, kv(poolKey("p1"), "2")))
		if b.Revision <= a.Revision {
			t.Fatal("apply did not advance revision")
		}
		if got := h.kv(c.Get(ctx, poolKey("p1"))); string(got.Value) != "2" {
			t.Fatalf("apply stored %q", got.Value)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		h := th{t}
		c := newClient(t)
		v := h.kv(c.Create(ctx, kv(poolKey("p1"), "1")))
		_, err := c.Delete(ctx, poolKey("p1"), v.Revision+1000)
		wantErr(t, err, cerrors.ErrConflict)
		del := h.kv(c.Delete(ctx, poolKey("p1"), v.Revision))
		if string(del.Value) != "1" {
			t.Fatalf("delete returned %q", del.Value)
		}
		_, err = c.Delete(ctx, poolKey("p1"), 0)
		wantErr(t, err, cerrors.ErrNotFound)
		h.kv(c.Create(ctx, kv(poolKey("p2"), "2")))
		h.kv(c.Delete(ctx, poolKey("p2"), 0))
	})
	t.Run("BadKeysWriteNothing", func(t *testing.T) {
		h := th{t}
		c := newClient(t)
		for _, k := range []model.Key{
			poolKey(""), poolKey("a/b"), npKey("", "x"), npKey("ns/x", "y"),
			model.ResourceKey{Kind: "Bogus", Name: "x"}, model.HandleKey{}, nil,
		} {
			if _, err := c.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("x")}); err == nil {
				t.Errorf("apply of bad key %v succeeded", k)
			}
		}
		l := h.list(c.List(ctx, model.PrefixListOptions{Path: model.Root}))
		if len(l.KVPairs) != 0 {
			t.Fatalf("bad keys wrote %d values", len(l.KVPairs))
		}
	})
	t.Run("List", func(t *testing.T) { testList(ctx, t, newClient(t)) })
	t.Run("Watch", func(t *testing.T) { testWatch(ctx, t, newClient(t)) })
	t.Run("WatchFromRevision", func(t *testing.T) { testWatchReplay(ctx, t, newClient(t)) })
	t.Run("TTL", func(t *testing.T) {
		h := th{t}
		c := newClient(t)
		k := model.FelixStatusKey{Hostname: "h1"}
		h.kv(c.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("{}"), TTL: time.Second}))
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := c.Get(ctx, k)
			if errors.Is(err, cerrors.ErrNotFound) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("key with 1s TTL still present after 15s (err %v)", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("ConcurrentCreateOneWins", func(t *testing.T) {
		c := newClient(t)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := c.Create(ctx, kv(poolKey("race"), fmt.Sprint(i)))
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, cerrors.ErrExists) {
					t.Errorf("create: %v", err)
				}
			}(i)
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d creates won, want 1", wins.Load())
		}
	})
	t.Run("ConcurrentUpdatesNoLostWrite", func(t *testing.T) {
		h := th{t}
		c := newClient(t)
		h.kv(c.Create(ctx, kv(poolKey("ctr"), "0")))
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < 10; {
					cur, err := c.Get(ctx, poolKey("ctr"))
					if err != nil {
						t.Error(err)
						return
					}
					var v int
					fmt.Sscan(string(cur.Value), &v)
					_, err = c.Update(ctx, &backend.KVPair{Key: cur.Key, Value: []byte(fmt.Sprint(v + 1)), Revision: cur.Revision})
					if errors.Is(err, cerrors.ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					n++
				}
			}()
		}
		wg.Wait()
		if got := h.kv(c.Get(ctx, poolKey("ctr"))); string(got.Value) != "80" {
			t.Fatalf("counter = %s, want 80", got.Value)
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		c := newClient(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.Apply(cctx, kv(poolKey("p"), "1")); err == nil {
			t.Fatal("apply with cancelled context succeeded")
		}
	})
}
