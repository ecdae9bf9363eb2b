package conformance

import (
	"context"
	"testing"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// RunTxn holds a backend.Transactor to its contract: reads at one
// revision, all-or-nothing guarded writes, current values on conflict.
func RunTxn(t *testing.T, f Factory) {
	t.Run("ReadKeysAndLists", func(t *testing.T) { testTxnRead(t, f(t)) })
	t.Run("AllOrNothing", func(t *testing.T) { testTxnAllOrNothing(t, f(t)) })
	t.Run("ListGuard", func(t *testing.T) { testTxnListGuard(t, f(t)) })
	t.Run("ValueGuard", func(t *testing.T) { testTxnValueGuard(t, f(t)) })
}

func transactor(t *testing.T, c backend.Client) backend.Transactor {
	t.Helper()
	tx, ok := c.(backend.Transactor)
	if !ok {
		t.Fatalf("%T does not implement backend.Transactor", c)
	}
	return tx
}

func testTxnRead(t *testing.T, c backend.Client) {
	h, ctx, tx := th{t}, context.Background(), transactor(t, c)
	a := h.kv(c.Create(ctx, kv(poolKey("a"), `{"a":1}`)))
	h.kv(c.Create(ctx, kv(poolKey("b"), `{"b":1}`)))
	h.kv(c.Create(ctx, kv(npKey("ns", "p"), `{}`)))
	res, err := tx.Read(ctx, backend.Linearizable, []backend.ReadOp{
		{Key: poolKey("a")},
		{Key: poolKey("missing")},
		{List: model.ResourceListOptions{Kind: "IPPool"}},
		{Key: poolKey("a"), KeysOnly: true},
	})
	h.check(err)
	if len(res.Results) != 4 || res.Revision < a.Revision {
		t.Fatalf("read = %+v", res)
	}
	if got := res.Results[0]; len(got) != 1 || string(got[0].Value) != `{"a":1}` || got[0].Revision != a.Revision {
		t.Fatalf("key read = %+v", got)
	}
	if len(res.Results[1]) != 0 {
		t.Fatalf("missing key read = %+v", res.Results[1])
	}
	if got := res.Results[2]; len(got) != 2 || got[0].Key != poolKey("a") || got[1].Key != poolKey("b") {
		t.Fatalf("list read = %+v", got)
	}
	if got := res.Results[3]; len(got) != 1 || got[0].Value != nil || got[0].Revision != a.Revision {
		t.Fatalf("keys-only read = %+v", got)
	}
	stale, err := tx.Read(ctx, backend.Serializable, []backend.ReadOp{{Key: poolKey("a")}})
	h.check(err)
	if got := stale.Results[0]; len(got) != 1 || string(got[0].Value) != `{"a":1}` {
		t.Fatalf("serializable read = %+v", got)
	}
}

func testTxnAllOrNothing(t *testing.T, c backend.Client) {
	h, ctx, tx := th{t}, context.Background(), transactor(t, c)
	a := h.kv(c.Create(ctx, kv(poolKey("a"), `1`)))
	del := h.kv(c.Create(ctx, kv(poolKey("del"), `x`)))
	// A stale guard on a: nothing is written, current values come back.
	res, err := tx.Txn(ctx, []backend.TxnOp{
		{Action: backend.TxnPut, Key: poolKey("new"), Value: []byte(`n`)},
		{Action: backend.TxnPut, Key: poolKey("a"), Revision: a.Revision + 100, Value: []byte(`2`)},
	})
	wantErr(t, err, cerrors.ErrConflict)
	if res == nil || len(res.Current) != 2 || res.Current[0] != nil || string(res.Current[1].Value) != `1` || res.Current[1].Revision != a.Revision {
		t.Fatalf("conflict result = %+v", res)
	}
	if _, err := c.Get(ctx, poolKey("new")); err == nil {
		t.Fatal("failed transaction wrote a key")
	}
	// Good guards: create, update, delete and a check, all at once.
	ok, err := tx.Txn(ctx, []backend.TxnOp{
		{Action: backend.TxnPut, Key: poolKey("new"), Value: []byte(`n`)},
		{Action: backend.TxnPut, Key: poolKey("a"), Revision: a.Revision, Value: []byte(`2`)},
		{Action: backend.TxnDelete, Key: poolKey("del"), Revision: del.Revision},
		{Action: backend.TxnCheck, Key: poolKey("absent")},
	})
	h.check(err)
	if got := h.kv(c.Get(ctx, poolKey("a"))); string(got.Value) != `2` || got.Revision != ok.Revision {
		t.Fatalf("a = %s at %d, want 2 at the txn revision %d", got.Value, got.Revision, ok.Revision)
	}
	if got := h.kv(c.Get(ctx, poolKey("new"))); string(got.Value) != `n` || got.Revision != ok.Revision {
		t.Fatalf("new = %s", got.Value)
	}
	if _, err := c.Get(ctx, poolKey("del")); err == nil {
		t.Fatal("delete in transaction did not happen")
	}
	// A create guard on an existing key fails.
	_, err = tx.Txn(ctx, []backend.TxnOp{{Action: backend.TxnCheck, Key: poolKey("new")}})
	wantErr(t, err, cerrors.ErrConflict)

	// An existence guard holds for a key at any revision, and fails,
	// writing nothing, for a missing one.
	ex, err := tx.Txn(ctx, []backend.TxnOp{
		{Action: backend.TxnCheckExists, Key: poolKey("new")},
		{Action: backend.TxnPut, Key: poolKey("ex1"), Value: []byte(`e`)},
	})
	h.check(err)
	if got := h.kv(c.Get(ctx, poolKey("ex1"))); got.Revision != ex.Revision {
		t.Fatalf("ex1 at %d, want the txn revision %d", got.Revision, ex.Revision)
	}
	res, err = tx.Txn(ctx, []backend.TxnOp{
		{Action: backend.TxnCheckExists, Key: poolKey("del")},
		{Action: backend.TxnPut, Key: poolKey("ex2"), Value: []byte(`e`)},
	})
	wantErr(t, err, cerrors.ErrConflict)
	if res == nil || len(res.Current) != 2 || res.Current[0] != nil || res.Current[1] != nil {
		t.Fatalf("failed existence guard: result %+v", res)
	}
	if _, err := c.Get(ctx, poolKey("ex2")); err == nil {
		t.Fatal("failed existence guard wrote a key")
	}
	_, err = tx.Txn(ctx, []backend.TxnOp{{Action: backend.TxnCheckExists, Key: poolKey("new"), Revision: ok.Revision}})
	if err == nil {
		t.Fatal("existence guard with a revision accepted")
	}
}

func testTxnListGuard(t *testing.T, c backend.Client) {
	h, ctx, tx := th{t}, context.Background(), transactor(t, c)
	pools := model.ResourceListOptions{Kind: "IPPool"}
	a := h.kv(c.Create(ctx, kv(poolKey("a"), `1`)))
	guarded := func(list model.ListOptions, rev int64, write model.Key) []backend.TxnOp {
		return []backend.TxnOp{
			{Action: backend.TxnCheckList, List: list, Revision: rev},
			{Action: backend.TxnPut, Key: write, Value: []byte(`w`)},
		}
	}
	// Nothing under the prefix changed since a: the write happens.
	_, err := tx.Txn(ctx, guarded(pools, a.Revision, npKey("ns", "w1")))
	h.check(err)
	h.kv(c.Get(ctx, npKey("ns", "w1")))
	// A key created under the prefix after the guard's revision fails
	// it, and nothing is written.
	h.kv(c.Create(ctx, kv(poolKey("b"), `1`)))
	res, err := tx.Txn(ctx, guarded(pools, a.Revision, npKey("ns", "w2")))
	wantErr(t, err, cerrors.ErrConflict)
	if res == nil || len(res.Current) != 2 || res.Current[0] != nil {
		t.Fatalf("conflict result = %+v", res)
	}
	if _, err := c.Get(ctx, npKey("ns", "w2")); err == nil {
		t.Fatal("a failed list guard let the write through")
	}
	// Keys outside the prefix do not count: an empty prefix holds even
	// at revision 0.
	_, err = tx.Txn(ctx, guarded(model.ResourceListOptions{Kind: "HostEndpoint"}, 0, npKey("ns", "w3")))
	h.check(err)
}

func testTxnValueGuard(t *testing.T, c backend.Client) {
	h, ctx, tx := th{t}, context.Background(), transactor(t, c)
	a := h.kv(c.Create(ctx, kv(poolKey("a"), `{"v":1}`)))
	put := func(expect string) []backend.TxnOp {
		return []backend.TxnOp{{Action: backend.TxnPut, Key: poolKey("a"), Revision: a.Revision, Value: []byte(`{"v":2}`), Expect: []byte(expect)}}
	}
	// The right revision with another value fails, and writes nothing.
	res, err := tx.Txn(ctx, put(`{"v":0}`))
	wantErr(t, err, cerrors.ErrConflict)
	if res == nil || len(res.Current) != 1 || res.Current[0] == nil || string(res.Current[0].Value) != `{"v":1}` {
		t.Fatalf("conflict result = %+v", res)
	}
	if got := h.kv(c.Get(ctx, poolKey("a"))); string(got.Value) != `{"v":1}` {
		t.Fatalf("value after a failed value guard = %s", got.Value)
	}
	// The right revision and value: the write happens.
	_, err = tx.Txn(ctx, put(`{"v":1}`))
	h.check(err)
	if got := h.kv(c.Get(ctx, poolKey("a"))); string(got.Value) != `{"v":2}` {
		t.Fatalf("value after the guarded write = %s", got.Value)
	}
	// A check of an absent key with an expected value fails.
	_, err = tx.Txn(ctx, []backend.TxnOp{{Action: backend.TxnCheck, Key: poolKey("b"), Expect: []byte(`1`)}})
	wantErr(t, err, cerrors.ErrConflict)
}
