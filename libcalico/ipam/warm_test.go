package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// warmEnv is an env whose IPAM client counts its round trips.
func warmEnv(t *testing.T) (*env, *counting) {
	s := memory.New()
	t.Cleanup(func() { s.Close() })
	cnt := newCounting(s)
	e := newEnv(t, cnt, Options{})
	e.pool("p", "10.60.0.0/16", 26)
	return e, cnt
}

// rounds runs f and returns how many round trips it made.
func rounds(cnt *counting, f func()) int64 {
	before := cnt.n.Load()
	f()
	return cnt.n.Load() - before
}

func addrOf(a *Assignments) netip.Addr { return a.IPs[0].Addr() }

func TestWarmPathOneRoundTrip(t *testing.T) {
	e, cnt := warmEnv(t)
	first, _ := e.assign("h1", "a", 1, 0)
	var second *Assignments
	if n := rounds(cnt, func() { second, _ = e.assign("h1", "b", 1, 0) }); n != 1 {
		t.Fatalf("a warm assignment took %d round trips, want 1", n)
	}
	if addrOf(first) == addrOf(second) {
		t.Fatalf("both requests got %v", addrOf(first))
	}
	st := readState(t, e.be)
	st.MustCheck(t)
	if st.Owner[addrOf(second)] != "b" {
		t.Fatalf("%v is owned by %q in the datastore, want b", addrOf(second), st.Owner[addrOf(second)])
	}
	// Another host is not served from h1's cache.
	if n := rounds(cnt, func() { e.assign("h2", "c", 1, 0) }); n == 1 {
		t.Fatal("h2's first request took one round trip")
	}
}

// Whatever moved since the cache was filled, the warm path writes nothing
// wrong: the request falls back to the full path.
func TestWarmPathFallsBack(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(e *env, next netip.Addr)
		check  func(t *testing.T, e *env, got *Assignments, err error, next netip.Addr)
	}{{
		name: "reservation of the next address",
		change: func(e *env, next netip.Addr) {
			r := v3.NewIPReservation()
			r.Name, r.Spec.ReservedCIDRs = "r", []string{next.String() + "/32"}
			if _, err := e.cl.IPReservations().Create(ctx, r); err != nil {
				e.t.Fatal(err)
			}
		},
		check: func(t *testing.T, _ *env, got *Assignments, err error, next netip.Addr) {
			if err != nil || addrOf(got) == next {
				t.Fatalf("got %v, %v; the reserved %v must be skipped", got, err, next)
			}
		},
	}, {
		name: "pool disabled",
		change: func(e *env, _ netip.Addr) {
			p, err := e.cl.IPPools().Get(ctx, "", "p")
			if err != nil {
				e.t.Fatal(err)
			}
			p.Spec.Disabled = true
			if _, err := e.cl.IPPools().Update(ctx, p); err != nil {
				e.t.Fatal(err)
			}
		},
		check: func(t *testing.T, _ *env, got *Assignments, err error, _ netip.Addr) {
			if !errors.Is(err, ErrNoQualifiedPool) {
				t.Fatalf("got %v, %v from a disabled pool", got, err)
			}
		},
	}, {
		name: "another client assigned from the block",
		change: func(e *env, next netip.Addr) {
			other := newEnv(e.t, e.be, Options{})
			if got, _ := other.assign("h1", "other", 1, 0); addrOf(got) != next {
				e.t.Fatalf("other client got %v, want %v", addrOf(got), next)
			}
		},
		check: func(t *testing.T, _ *env, got *Assignments, err error, next netip.Addr) {
			if err != nil || addrOf(got) == next {
				t.Fatalf("got %v, %v; %v is the other client's", got, err, next)
			}
		},
	}, {
		name: "handle already holds an address",
		change: func(e *env, next netip.Addr) {
			other := newEnv(e.t, e.be, Options{})
			other.assign("h1", "b", 1, 0)
		},
		check: func(t *testing.T, e *env, got *Assignments, err error, _ netip.Addr) {
			if err != nil {
				t.Fatal(err)
			}
			ips, err := e.ipam.IPsByHandle(ctx, "b")
			if err != nil || len(ips) != 2 {
				t.Fatalf("handle b holds %v (%v), want both addresses", ips, err)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e, cnt := warmEnv(t)
			first, _ := e.assign("h1", "a", 1, 0)
			next := addrOf(first).Next()
			tc.change(e, next)
			var got *Assignments
			var err error
			n := rounds(cnt, func() {
				got, _, err = e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "b", Hostname: "h1"})
			})
			if n < 2 {
				t.Errorf("request took %d round trip(s); the stale cache must have been refused", n)
			}
			tc.check(t, e, got, err, next)
			readState(t, e.be).MustCheck(t)
		})
	}
}

// The IPAM config does not guard the warm path: no setting forbids a host
// its own block.
func TestWarmPathSurvivesConfigChange(t *testing.T) {
	e, cnt := warmEnv(t)
	ctx := context.Background()
	first, _ := e.assign("h1", "a", 1, 0)
	cfg, err := e.ipam.GetIPAMConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StrictAffinity = true
	if err := newEnv(t, e.be, Options{}).ipam.SetIPAMConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var second *Assignments
	if n := rounds(cnt, func() { second, _ = e.assign("h1", "b", 1, 0) }); n != 1 {
		t.Errorf("took %d round trips, want 1", n)
	}
	if block := first.IPs[0].Masked(); !block.Contains(addrOf(second)) {
		t.Errorf("second address %v is not in the host's block %v", addrOf(second), block)
	}
	readState(t, e.be).MustCheck(t)
}

// Releases by handle keep the cache up to date, so the next request still
// takes one round trip; other releases drop it, and the block is read
// afresh.
func TestWarmPathAfterRelease(t *testing.T) {
	e, cnt := warmEnv(t)
	ctx := context.Background()
	for i := range 5 {
		e.assign("h1", fmt.Sprint("h", i), 1, 0)
	}
	if err := e.ipam.ReleaseByHandle(ctx, "h0"); err != nil {
		t.Fatal(err)
	}
	if n := rounds(cnt, func() { e.assign("h1", "x", 1, 0) }); n != 1 {
		t.Errorf("first request after a release by handle took %d round trips, want 1", n)
	}
	if _, err := e.ipam.ReleaseIPs(ctx, ReleaseOptions{Address: netip.MustParseAddr("10.60.0.1")}); err != nil && !errors.Is(err, cerrors.ErrNotFound) {
		t.Fatal(err)
	}
	if n := rounds(cnt, func() { e.assign("h1", "y", 1, 0) }); n != 2 {
		t.Errorf("first request after ReleaseIPs took %d round trips, want 2 (read, write)", n)
	}
	if n := rounds(cnt, func() { e.assign("h1", "z", 1, 0) }); n != 1 {
		t.Errorf("next request took %d round trips, want 1", n)
	}
	readState(t, e.be).MustCheck(t)
}

// A saved state serves another client's first request in one round trip,
// as a CNI plugin process after the previous one.
func TestWarmStateSavedAndLoaded(t *testing.T) {
	e, cnt := warmEnv(t)
	ctx := context.Background()
	first, _ := e.assign("h1", "a", 1, 0)
	if e.ipam.SaveWarm("h2") != nil {
		t.Fatal("saved a state for a host with none")
	}
	saved := e.ipam.SaveWarm("h1")
	if saved == nil {
		t.Fatal("nothing saved after an assignment")
	}
	next := newEnv(t, cnt, Options{})
	if err := next.ipam.LoadWarm(saved); err != nil {
		t.Fatal(err)
	}
	if got := next.ipam.Hint("h1"); got != first.IPs[0].Masked() {
		t.Errorf("hint after LoadWarm = %v, want %v", got, first.IPs[0].Masked())
	}
	var second *Assignments
	if n := rounds(cnt, func() { second, _ = next.assign("h1", "b", 1, 0) }); n != 1 {
		t.Errorf("first request of the loading client took %d round trips, want 1", n)
	}
	if addrOf(first) == addrOf(second) {
		t.Fatalf("both clients assigned %v", addrOf(first))
	}
	// A release by handle, then a save and load again: still one trip.
	if err := next.ipam.ReleaseByHandle(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	third := newEnv(t, cnt, Options{})
	if err := third.ipam.LoadWarm(next.ipam.SaveWarm("h1")); err != nil {
		t.Fatal(err)
	}
	if n := rounds(cnt, func() { third.assign("h1", "c", 1, 0) }); n != 1 {
		t.Errorf("request after a saved release took %d round trips, want 1", n)
	}
	st := readState(t, e.be)
	st.MustCheck(t)
	if len(st.Owner) != 2 || st.Owner[addrOf(first)] != "" && st.Owner[addrOf(first)] != "c" {
		t.Errorf("owners %v", st.Owner)
	}
}

// A saved state that another client has overtaken costs a round trip and
// never a wrong assignment; data that is not a saved state is refused.
func TestWarmStateStaleOrBad(t *testing.T) {
	e, cnt := warmEnv(t)
	e.assign("h1", "a", 1, 0)
	saved := e.ipam.SaveWarm("h1")
	e.assign("h1", "b", 1, 0) // the block moves on past the save
	stale := newEnv(t, cnt, Options{})
	if err := stale.ipam.LoadWarm(saved); err != nil {
		t.Fatal(err)
	}
	var got *Assignments
	if n := rounds(cnt, func() { got, _ = stale.assign("h1", "c", 1, 0) }); n < 2 {
		t.Errorf("a stale state took %d round trips; its guard cannot have held", n)
	}
	st := readState(t, e.be)
	st.MustCheck(t)
	if st.Owner[addrOf(got)] != "c" || len(st.Owner) != 3 {
		t.Errorf("owners %v after the stale request got %v", st.Owner, addrOf(got))
	}
	// Same revision, another value, as a save from before etcd was
	// restored could have: the value guard fails and nothing is lost.
	e.assign("h1", "d", 1, 0)
	var sw savedWarm
	if err := json.Unmarshal(e.ipam.SaveWarm("h1"), &sw); err != nil {
		t.Fatal(err)
	}
	var b model.AllocationBlock
	blk := sw.Blocks[4]
	if err := json.Unmarshal(blk.Value, &b); err != nil {
		t.Fatal(err)
	}
	for i := range b.Allocations {
		b.Allocations[i] = nil // as if nothing were assigned
	}
	blk.Value, _ = json.Marshal(&b)
	sw.Blocks[4] = blk
	forged, _ := json.Marshal(sw)
	restored := newEnv(t, cnt, Options{})
	if err := restored.ipam.LoadWarm(forged); err != nil {
		t.Fatal(err)
	}
	if n := rounds(cnt, func() { got, _ = restored.assign("h1", "e", 1, 0) }); n < 2 {
		t.Errorf("a state whose block value differs took %d round trips", n)
	}
	st = readState(t, e.be)
	st.MustCheck(t)
	if st.Owner[addrOf(got)] != "e" || len(st.Owner) != 5 {
		t.Errorf("owners %v after the restored request got %v", st.Owner, addrOf(got))
	}
	for _, bad := range []string{"", "{", `{"host":"h1"}`, `{"host":"a/b"}`, `{"host":"h1","read":[[],[],[],[],[{"key":"/nope","rev":1}]]}`} {
		c := newEnv(t, cnt, Options{})
		if err := c.ipam.LoadWarm([]byte(bad)); err == nil {
			t.Errorf("LoadWarm(%q) succeeded", bad)
		}
		if c.ipam.SaveWarm("h1") != nil {
			t.Errorf("LoadWarm(%q) left a cached state", bad)
		}
	}
}

// Requests, releases and saves of one host from several goroutines share
// the cache safely (run with -race) and leave consistent IPAM data.
func TestWarmStateConcurrentUse(t *testing.T) {
	e, _ := warmEnv(t)
	ctx := context.Background()
	e.assign("h1", "first", 1, 0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				h := fmt.Sprintf("g%d-%d", g, i)
				if _, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: h, Hostname: "h1",
					Attrs: map[string]string{AttributeNode: "h1"}}); err != nil {
					t.Error(err)
					return
				}
				if s := e.ipam.SaveWarm("h1"); s != nil && i%3 == 0 {
					if err := e.ipam.LoadWarm(s); err != nil {
						t.Error(err)
					}
				}
				if i%2 == 0 {
					if err := e.ipam.ReleaseByHandle(ctx, h); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	st := readState(t, e.be)
	st.MustCheck(t)
	if len(st.Owner) != 1+4*5 {
		t.Errorf("%d addresses assigned, want %d", len(st.Owner), 1+4*5)
	}
}

// planned is what planCommit saw: the addresses the plan offered and
// what Commit wrote.
type planned struct {
	offered []netip.Prefix
	res     *Committed
}

// planCommit plans args and commits the assignment with a put of key
// naming the planned addresses, as the CNI plugin commits its endpoint;
// without planned addresses it commits no ops.
func (e *env) planCommit(c *Client, args AutoAssignArgs, key model.Key) planned {
	e.t.Helper()
	ctx := context.Background()
	p, err := c.Plan(ctx, args)
	if err != nil {
		e.t.Fatal(err)
	}
	v4, v6 := p.IPs()
	var out planned
	out.offered = append(v4, v6...)
	var ops []backend.TxnOp
	if len(out.offered) > 0 {
		ops = []backend.TxnOp{{Action: backend.TxnPut, Key: key, Value: []byte(fmt.Sprintf(`{"ips":%q}`, out.offered))}}
	}
	if out.res, err = p.Commit(ctx, ops...); err != nil {
		e.t.Fatalf("Commit(%s): %v", args.HandleID, err)
	}
	return out
}

// A plan from a warm state commits the caller's ops in its one
// transaction; when their guard fails (the key exists) the planned
// assignment still commits, without them; a plan without a warm state
// offers nothing and takes no ops.
func TestPlanCommitsOpsWithWarmAssignment(t *testing.T) {
	e, cnt := warmEnv(t)
	ctx := context.Background()
	args := func(handle string) AutoAssignArgs { return AutoAssignArgs{Num4: 1, HandleID: handle, Hostname: "h1"} }
	key := model.ResourceKey{Kind: v3.KindProfile, Name: "rider"}

	cold := e.planCommit(e.ipam, args("a"), key)
	if len(cold.offered) != 0 || cold.res.WithOps {
		t.Fatalf("a cold plan offered %v (ops written: %v)", cold.offered, cold.res.WithOps)
	}

	var warm planned
	if n := rounds(cnt, func() { warm = e.planCommit(e.ipam, args("b"), key) }); n != 1 {
		t.Fatalf("warm assignment with ops took %d round trips, want 1", n)
	}
	got := warm.res.V4
	if len(warm.offered) != 1 || warm.offered[0] != got.IPs[0] {
		t.Fatalf("plan offered %v, assignment is %v", warm.offered, got.IPs)
	}
	kv, err := e.be.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !warm.res.WithOps || kv.Revision != warm.res.Revision {
		t.Fatalf("ops written at %d (%v), key stored at %d", warm.res.Revision, warm.res.WithOps, kv.Revision)
	}
	blk, err := e.be.Get(ctx, model.BlockKey{CIDR: got.IPs[0].Masked()})
	if err != nil {
		t.Fatal(err)
	}
	if blk.Revision != kv.Revision {
		t.Fatalf("block at revision %d, the ops' key at %d: not one transaction", blk.Revision, kv.Revision)
	}

	var taken planned
	if n := rounds(cnt, func() { taken = e.planCommit(e.ipam, args("c"), key) }); n != 2 {
		t.Fatalf("warm assignment with refused ops took %d round trips, want 2", n)
	}
	if taken.res.WithOps || taken.res.V4.IPs[0] != taken.offered[0] {
		t.Fatalf("refused ops: written %v; got %v, planned %v", taken.res.WithOps, taken.res.V4.IPs, taken.offered)
	}
	if after, err := e.be.Get(ctx, key); err != nil || after.Revision != kv.Revision {
		t.Fatalf("refused ops' key changed: %v, %v", after, err)
	}
	st := readState(t, e.be)
	st.MustCheck(t)
	if st.Owner[taken.res.V4.IPs[0].Addr()] != "c" {
		t.Fatalf("%v is owned by %q, want c", taken.res.V4.IPs[0].Addr(), st.Owner[taken.res.V4.IPs[0].Addr()])
	}
}

// A plan that is never committed writes nothing and leaves the cached
// state to the next request (a CNI ADD whose veth failed).
func TestPlanAbandoned(t *testing.T) {
	e, cnt := warmEnv(t)
	ctx := context.Background()
	first, _ := e.assign("h1", "a", 1, 0)
	n := rounds(cnt, func() {
		p, err := e.ipam.Plan(ctx, AutoAssignArgs{Num4: 1, HandleID: "gone", Hostname: "h1"})
		if err != nil {
			t.Fatal(err)
		}
		if v4, _ := p.IPs(); len(v4) != 1 || v4[0].Addr() != addrOf(first).Next() {
			t.Fatalf("planned %v after %v", v4, addrOf(first))
		}
	})
	if n != 0 {
		t.Fatalf("planning took %d round trips", n)
	}
	var second *Assignments
	if n := rounds(cnt, func() { second, _ = e.assign("h1", "b", 1, 0) }); n != 1 {
		t.Fatalf("the request after an abandoned plan took %d round trips, want 1", n)
	}
	if addrOf(second) != addrOf(first).Next() {
		t.Fatalf("got %v, want %v", addrOf(second), addrOf(first).Next())
	}
	if _, err := e.ipam.Plan(ctx, AutoAssignArgs{Num4: -1, Hostname: "h1"}); err == nil {
		t.Fatal("planned -1 addresses")
	}
	readState(t, e.be).MustCheck(t)
}

// TestNoCacheKeepsNothing: a Client without a Cache keeps nothing between
// calls: no hint, no warm state to save, none loaded.
func TestNoCacheKeepsNothing(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.40.0.0/24", 28)
	e.node("h1", nil)
	c, err := New(e.be, testLog(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := c.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "net.a", Hostname: "h1"}); err != nil {
		t.Fatal(err)
	}
	if h := c.Hint("h1"); h.IsValid() {
		t.Errorf("hint %s kept without a Cache", h)
	}
	if c.SaveWarm("h1") != nil {
		t.Error("warm state kept without a Cache")
	}
	// The same assignment through a client with a Cache saves a state;
	// one without refuses to load it.
	if _, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "net.b", Hostname: "h1"}); err != nil {
		t.Fatal(err)
	}
	saved := e.ipam.SaveWarm("h1")
	if saved == nil {
		t.Fatal("the client with a Cache saved nothing")
	}
	if err := c.LoadWarm(saved); err == nil || !strings.Contains(err.Error(), "no Cache") {
		t.Errorf("LoadWarm without a Cache: %v", err)
	}
}
