package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
)

func reuseArgs(handle string, n4, n6 int) AutoAssignArgs {
	return AutoAssignArgs{Num4: n4, Num6: n6, HandleID: handle, Hostname: "h1",
		Attrs: map[string]string{AttributeNode: "h1"}, ReuseHandle: true}
}

func (e *env) assignReuse(c *Client, handle string, n4, n6 int) (*Assignments, *Assignments) {
	e.t.Helper()
	v4, v6, err := c.AutoAssign(context.Background(), reuseArgs(handle, n4, n6))
	if err != nil {
		e.t.Fatalf("AutoAssign(%s): %v", handle, err)
	}
	return v4, v6
}

func (e *env) owned(handle string) []netip.Addr {
	e.t.Helper()
	st := readState(e.t, e.be)
	st.MustCheck(e.t)
	var out []netip.Addr
	for a, h := range st.Owner {
		if h == handle {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// issue 23 item 5: a repeated request for a handle (a CNI ADD retried after
// a crash) gets the addresses the handle holds, not more; only what they
// lack is assigned; and the first request for a handle still costs one
// round trip.
func TestReuseHandleIsIdempotent(t *testing.T) {
	e, cnt := warmEnv(t)
	e.pool("p6", "fd60::/64", 122)
	e.assignReuse(e.ipam, "warmup", 1, 1)

	var a4, a6 *Assignments
	if n := rounds(cnt, func() { a4, a6 = e.assignReuse(e.ipam, "net.c1", 1, 1) }); n != 1 {
		t.Fatalf("first request for a handle took %d round trips, want 1", n)
	}
	if a4.Held != 0 || a6.Held != 0 {
		t.Fatalf("first request reports held addresses: %+v %+v", a4, a6)
	}
	want := []netip.Addr{addrOf(a4), addrOf(a6)}

	// The same client, then a fresh one (another process).
	fresh, err := New(e.be, testLog(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []*Client{e.ipam, fresh} {
		r4, r6 := e.assignReuse(c, "net.c1", 1, 1)
		if r4.IPs[0] != a4.IPs[0] || r6.IPs[0] != a6.IPs[0] || r4.Held != 1 || r6.Held != 1 {
			t.Fatalf("repeat %d got %v %v (held %d, %d), want %v %v held", i, r4.IPs, r6.IPs, r4.Held, r6.Held, a4.IPs, a6.IPs)
		}
	}
	if got := e.owned("net.c1"); !slices.Equal(got, want) {
		t.Fatalf("handle holds %v, want %v", got, want)
	}

	// A handle holding only IPv4 (a request cut off between its two
	// writes) keeps it and gets the IPv6 address it lacks.
	e.assignReuse(e.ipam, "net.c2", 1, 0)
	p4, p6 := e.assignReuse(e.ipam, "net.c2", 1, 1)
	if p4.Held != 1 || p6.Held != 0 || len(p6.IPs) != 1 {
		t.Fatalf("partly held: %+v %+v", p4, p6)
	}
	if got := e.owned("net.c2"); len(got) != 2 {
		t.Fatalf("net.c2 holds %v, want one address per version", got)
	}

	// More held than asked for (duplicates of an older plugin): the
	// lowest are returned, nothing is assigned.
	if _, _, err := e.ipam.AutoAssign(context.Background(), AutoAssignArgs{Num4: 2, HandleID: "net.c3", Hostname: "h1"}); err != nil {
		t.Fatal(err)
	}
	dup := e.owned("net.c3")
	d4, _ := e.assignReuse(e.ipam, "net.c3", 1, 0)
	if len(d4.IPs) != 1 || d4.IPs[0].Addr() != dup[0] || d4.Held != 1 || len(e.owned("net.c3")) != 2 {
		t.Fatalf("with two held: got %+v, handle holds %v", d4, e.owned("net.c3"))
	}

	// Without ReuseHandle a repeat adds to the handle, as Calico's does.
	e.assign("h1", "net.c4", 1, 0)
	e.assign("h1", "net.c4", 1, 0)
	if got := e.owned("net.c4"); len(got) != 2 {
		t.Fatalf("without ReuseHandle the handle holds %v, want 2 addresses", got)
	}
}

// issue 23 item 5: a repeat from the warm state, committed with ops,
// finds the handle in the failed transaction's answer and does not try
// again without the ops: one transaction, the full path's read and the
// read of the held blocks. The ops are never written.
func TestReuseHandleWarmRepeatWithOps(t *testing.T) {
	e, cnt := warmEnv(t)
	e.assignReuse(e.ipam, "warmup", 1, 0)
	key := model.ResourceKey{Kind: v3.KindProfile, Name: "rider"}
	first := e.planCommit(e.ipam, reuseArgs("net.c1", 1, 0), key)
	if !first.res.WithOps {
		t.Fatal("the first request's ops were not written")
	}
	if _, err := e.be.Delete(context.Background(), key, 0); err != nil {
		t.Fatal(err)
	}
	var again planned
	if n := rounds(cnt, func() { again = e.planCommit(e.ipam, reuseArgs("net.c1", 1, 0), key) }); n != 3 {
		t.Fatalf("warm repeat took %d round trips, want 3", n)
	}
	r := again.res.V4
	if r.IPs[0] != first.res.V4.IPs[0] || r.Held != 1 || again.res.WithOps {
		t.Fatalf("repeat got %+v (ops written: %v), want %v held", r, again.res.WithOps, first.res.V4.IPs)
	}
}

// issue 23 item 5: concurrent requests for one handle (a runtime retrying
// while the first attempt is still running) end up with one address
// between them, which all of them return.
func TestReuseHandleConcurrentRequests(t *testing.T) {
	e, _ := warmEnv(t)
	const n = 8
	var wg sync.WaitGroup
	got := make([]netip.Prefix, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate clients, as separate plugin processes.
			c, err := New(e.be, testLog(t), Options{})
			if err != nil {
				errs[i] = err
				return
			}
			v4, _, err := c.AutoAssign(context.Background(), AutoAssignArgs{Num4: 1, HandleID: "net.same", Hostname: "h1", ReuseHandle: true})
			if err != nil {
				errs[i] = err
				return
			}
			got[i] = v4.IPs[0]
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	held := e.owned("net.same")
	if len(held) != 1 {
		t.Fatalf("the handle holds %v, want one address", held)
	}
	for i, p := range got {
		if p.Addr() != held[0] {
			t.Errorf("request %d got %v, the handle holds %v", i, p, held[0])
		}
	}
	if t.Failed() {
		t.Log(fmt.Sprint(got))
	}
}
