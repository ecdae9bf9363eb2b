package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

func testList(ctx context.Context, t *testing.T, c backend.Client) {
	h := th{t}
	for _, k := range []model.Key{
		poolKey("b"), poolKey("a"), npKey("prod", "x"), npKey("prod2", "y"), npKey("prod", "w"),
		model.HandleKey{HandleID: "h1"},
	} {
		h.kv(c.Create(ctx, kv(k, "v")))
	}
	pools := h.list(c.List(ctx, model.ResourceListOptions{Kind: "IPPool"}))
	if len(pools.KVPairs) != 2 || pools.KVPairs[0].Key != poolKey("a") || pools.KVPairs[1].Key != poolKey("b") {
		t.Fatalf("list pools = %v", keys(pools))
	}
	for _, p := range pools.KVPairs {
		if p.Revision == 0 || p.Revision > pools.Revision {
			t.Fatalf("kv revision %d outside list revision %d", p.Revision, pools.Revision)
		}
	}
	prod := h.list(c.List(ctx, model.ResourceListOptions{Kind: "NetworkPolicy", Namespace: "prod"}))
	if len(prod.KVPairs) != 2 || prod.KVPairs[0].Key != npKey("prod", "w") {
		t.Fatalf("list prod = %v (prod2 must not leak in)", keys(prod))
	}
	all := h.list(c.List(ctx, model.ResourceListOptions{Kind: "NetworkPolicy"}))
	if len(all.KVPairs) != 3 {
		t.Fatalf("list all namespaces = %v", keys(all))
	}
	one := h.list(c.List(ctx, model.ResourceListOptions{Kind: "IPPool", Name: "b"}))
	if len(one.KVPairs) != 1 {
		t.Fatalf("list by name = %v", keys(one))
	}
	none := h.list(c.List(ctx, model.ResourceListOptions{Kind: "Tier"}))
	if len(none.KVPairs) != 0 || none.Revision == 0 {
		t.Fatalf("empty list = %v at %d", keys(none), none.Revision)
	}
}

func keys(l *backend.KVList) []string {
	var out []string
	for _, kv := range l.KVPairs {
		out = append(out, kv.Key.String())
	}
	return out
}

func next(t *testing.T, w backend.Watcher) backend.WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("watch closed early")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return backend.WatchEvent{}
}

func testWatch(ctx context.Context, t *testing.T, c backend.Client) {
	h := th{t}
	l := h.list(c.List(ctx, model.ResourceListOptions{Kind: "IPPool"}))
	w := h.watch(c.Watch(ctx, model.ResourceListOptions{Kind: "IPPool"}, l.Revision))
	defer w.Stop()
	h.kv(c.Create(ctx, kv(model.ResourceKey{Kind: "Tier", Name: "ignored"}, "x")))
	created := h.kv(c.Create(ctx, kv(poolKey("p"), "1")))
	h.kv(c.Apply(ctx, kv(poolKey("p"), "2")))
	h.kv(c.Delete(ctx, poolKey("p"), 0))

	ev := next(t, w)
	if ev.Type != backend.EventAdded || string(ev.New.Value) != "1" || ev.New.Key != poolKey("p") || ev.New.Revision != created.Revision {
		t.Fatalf("first event = %+v", ev)
	}
	ev = next(t, w)
	if ev.Type != backend.EventModified || string(ev.New.Value) != "2" || ev.Old == nil || string(ev.Old.Value) != "1" {
		t.Fatalf("second event = %+v", ev)
	}
	ev = next(t, w)
	if ev.Type != backend.EventDeleted || ev.New != nil || ev.Old == nil || ev.Old.Key != poolKey("p") || ev.Revision == 0 {
		t.Fatalf("third event = %+v", ev)
	}
	w.Stop()
	w.Stop()
	for range w.Events() {
	}
}

func testWatchReplay(ctx context.Context, t *testing.T, c backend.Client) {
	h := th{t}
	start := h.list(c.List(ctx, model.ResourceListOptions{Kind: "IPPool"}))
	h.kv(c.Create(ctx, kv(poolKey("a"), "1")))
	h.kv(c.Create(ctx, kv(poolKey("b"), "1")))
	w := h.watch(c.Watch(ctx, model.ResourceListOptions{Kind: "IPPool"}, start.Revision))
	defer w.Stop()
	if ev := next(t, w); ev.New == nil || ev.New.Key != poolKey("a") {
		t.Fatalf("replay first = %+v", ev)
	}
	if ev := next(t, w); ev.New == nil || ev.New.Key != poolKey("b") {
		t.Fatalf("replay second = %+v", ev)
	}
}
