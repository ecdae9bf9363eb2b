package etcd_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

// enableAuth creates user root (password s3cret, role root) and turns
// etcd's authentication on.
func enableAuth(t *testing.T, srv *testutil.Etcd) {
	t.Helper()
	ctx := context.Background()
	raw := srv.RawClient(t)
	for _, step := range []func() error{
		func() error { _, err := raw.RoleAdd(ctx, "root"); return err },
		func() error { _, err := raw.UserAdd(ctx, "root", "s3cret"); return err },
		func() error { _, err := raw.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := raw.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

// within runs fn and reports whether it returned within d (fn is left
// running if not).
func within(d time.Duration, fn func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// everyCall runs each kind of call of c at once and returns their errors
// by name; a call that has not returned within bound is reported as such.
func everyCall(t *testing.T, c *etcd.Client, bound time.Duration) map[string]error {
	t.Helper()
	ctx := context.Background()
	k := model.ResourceKey{Kind: "IPPool", Name: "x"}
	kv := func() *backend.KVPair { return &backend.KVPair{Key: k, Value: []byte("{}")} }
	opts := model.ResourceListOptions{Kind: "IPPool"}
	calls := map[string]func() error{
		"get":    func() error { _, err := c.Get(ctx, k); return err },
		"list":   func() error { _, err := c.List(ctx, opts); return err },
		"create": func() error { _, err := c.Create(ctx, kv()); return err },
		"update": func() error { _, err := c.Update(ctx, kv()); return err },
		"apply":  func() error { _, err := c.Apply(ctx, kv()); return err },
		"delete": func() error { _, err := c.Delete(ctx, k, 0); return err },
		"read": func() error {
			_, err := c.Read(ctx, backend.Linearizable, []backend.ReadOp{{Key: k}})
			return err
		},
		"txn": func() error {
			_, err := c.Txn(ctx, []backend.TxnOp{{Action: backend.TxnPut, Key: k, Value: []byte("{}")}})
			return err
		},
		"watch": func() error {
			w, err := c.Watch(ctx, opts, 0)
			if err != nil {
				return err
			}
			defer w.Stop()
			ev, ok := <-w.Events()
			if !ok {
				return errors.New("watch closed without an error event")
			}
			return ev.Err
		},
	}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(calls))
	for name, fn := range calls {
		go func() { results <- result{name, fn()} }()
	}
	out := map[string]error{}
	deadline := time.After(bound)
	for range calls {
		select {
		case r := <-results:
			out[r.name] = r.err
		case <-deadline:
			for name := range calls {
				if _, ok := out[name]; !ok {
					t.Errorf("%s did not return within %v", name, bound)
				}
			}
			return out
		}
	}
	return out
}

// issue 23 item 1
//
// With a username and password and etcd unreachable, New returns at once
// and every call fails within a bound of the configured timeout with an
// Unavailable naming the endpoint; once etcd is back the same client
// authenticates and works.
func TestEtcdAuthDownBoundedError(t *testing.T) {
	const timeout = time.Second
	stopped := testutil.StartEtcd(t)
	enableAuth(t, stopped)
	stopped.Stop()
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		srv  *testutil.Etcd // restarted at the end, if set
		ep   string
	}{
		{"auth enabled, etcd stopped", stopped, stopped.Endpoint},
		{"nothing listening", nil, "http://127.0.0.1:" + strconv.Itoa(port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *etcd.Client
			var err error
			if !within(timeout, func() {
				c, err = etcd.New(etcd.Config{Endpoints: []string{tc.ep}, Username: "root", Password: "s3cret",
					Timeout: timeout, WatchProbeInterval: 200 * time.Millisecond})
			}) {
				t.Fatal("New blocked on an unreachable etcd")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for name, err := range everyCall(t, c, 3*(timeout+200*time.Millisecond)) {
				if !errors.Is(err, cerrors.ErrUnavailable) || !strings.Contains(err.Error(), tc.ep) {
					t.Errorf("%s: err = %v, want unavailable naming %s", name, err, tc.ep)
				}
			}
			if tc.srv == nil {
				return
			}
			if err := tc.srv.Start(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "a read once etcd is back", func() error {
				_, err := c.Get(context.Background(), model.ResourceKey{Kind: "IPPool", Name: "x"})
				if errors.Is(err, cerrors.ErrNotFound) {
					return nil
				}
				return err
			})
		})
	}
}

// issue 23 item 1
//
// The token fetched by the first call is renewed when etcd no longer
// accepts it (a restarted etcd forgets its simple tokens).
func TestEtcdAuthTokenRenewedAfterRestart(t *testing.T) {
	srv := testutil.StartEtcd(t)
	enableAuth(t, srv)
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Username: "root", Password: "s3cret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	k := model.ResourceKey{Kind: "IPPool", Name: "p"}
	if _, err := c.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("{}")}); err != nil {
		t.Fatalf("apply with password: %v", err)
	}
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a read after the restart", func() error { _, err := c.Get(ctx, k); return err })
	// Watch from a known revision: "from now" races with the Apply below.
	pools := model.ResourceListOptions{Kind: "IPPool"}
	l, err := c.List(ctx, pools)
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, pools, l.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := c.Apply(ctx, &backend.KVPair{Key: k, Value: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.Events():
		if ev.Type != backend.EventModified {
			t.Fatalf("watch event = %+v, want the update", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event with the renewed token")
	}
}

// issue 23 item 3
//
// A wrong password is reported as such by the first call, naming the user
// and the endpoint, well before the timeout; New itself does not talk to
// etcd.
func TestEtcdWrongPasswordFailsAtOnce(t *testing.T) {
	const timeout = 10 * time.Second
	srv := testutil.StartEtcd(t)
	enableAuth(t, srv)
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Username: "root", Password: "wrong", Timeout: timeout})
	if err != nil {
		t.Fatalf("New = %v; it should not talk to etcd", err)
	}
	defer c.Close()
	for range 2 {
		start := time.Now()
		_, err = c.Get(context.Background(), model.IPAMConfigKey{})
		if d := time.Since(start); d > timeout/3 {
			t.Errorf("wrong password reported after %v; timeout is %v", d, timeout)
		}
		if !errors.Is(err, cerrors.ErrUnavailable) {
			t.Fatalf("err = %v, want unavailable", err)
		}
		for _, want := range []string{"authentication failed", `"root"`, srv.Endpoint} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to say %q", err, want)
			}
		}
	}
}

// eventually retries fn until it succeeds or 30 s pass.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
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
