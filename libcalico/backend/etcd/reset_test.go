package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/etcdrestore"
)

func pool(name string) model.ResourceKey { return model.ResourceKey{Kind: "IPPool", Name: name} }

var pools = model.ResourceListOptions{Kind: "IPPool"}

// waitReset waits for w to end with a datastore reset and returns it.
func waitReset(t *testing.T, w backend.Watcher) error {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatal("watch closed without an error")
			}
			if ev.Type != backend.EventError {
				continue
			}
			if !errors.Is(ev.Err, cerrors.ErrDatastoreReset) {
				t.Fatalf("watch ended with %v, want a datastore reset", ev.Err)
			}
			return ev.Err
		case <-deadline:
			t.Fatal("watch did not end after the reset")
		}
	}
}

// checkReset checks c reports one reset more than before, for cause.
func checkReset(t *testing.T, c *etcd.Client, before uint64, cause error, want ...string) {
	t.Helper()
	n, _, got := c.Resets()
	if n != before+1 || got == nil || got.Error() != cause.Error() {
		t.Errorf("Resets() = %d, %v; want %d, %v", n, got, before+1, cause)
	}
	for _, w := range want {
		if !strings.Contains(cause.Error(), w) {
			t.Errorf("cause %q does not say %q", cause, w)
		}
	}
}

// issue 23 item 2
//
// etcd restored from a snapshot is back at the snapshot's revision: a
// watch open across the restore ends with a datastore reset saying so,
// Resets reports it, and the client then works on the restored data.
func TestEtcdRestoreFromSnapshotEndsWatches(t *testing.T) {
	srv := testutil.StartEtcd(t)
	// The timeout outlasts the restore: the watch rides through it.
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: 20 * time.Second, WatchProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	put := func(name string) {
		t.Helper()
		if _, err := c.Apply(ctx, &backend.KVPair{Key: pool(name), Value: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	put("b")
	snap := filepath.Join(t.TempDir(), "snap.db")
	if err := etcdrestore.Save(ctx, srv, snap); err != nil {
		t.Fatal(err)
	}
	put("a")
	if _, err := c.Delete(ctx, pool("b"), 0); err != nil {
		t.Fatal(err)
	}
	l, err := c.List(ctx, pools)
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, pools, l.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	before, _, _ := c.Resets()

	if err := etcdrestore.Restore(srv, snap, etcdrestore.DefaultClusterToken); err != nil {
		t.Fatal(err)
	}
	cause := waitReset(t, w)
	checkReset(t, c, before, cause, srv.Endpoint, "revision", fmt.Sprint(l.Revision))

	// A watch resumed from a revision read before the restore (as a
	// syncer that saw only the outage would) ends too, on its own.
	w1, err := c.Watch(ctx, pools, l.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Stop()
	if err := waitReset(t, w1); !strings.Contains(err.Error(), "this watch started from") {
		t.Errorf("resumed watch ended with %v, want its start revision named", err)
	}

	// The client goes on with the restored data, and a new watch sees new
	// writes without another reset.
	eventually(t, "pool b back", func() error { _, err := c.Get(ctx, pool("b")); return err })
	if _, err := c.Get(ctx, pool("a")); !errors.Is(err, cerrors.ErrNotFound) {
		t.Errorf("pool a after the restore: %v, want not found", err)
	}
	l, err = c.List(ctx, pools)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := c.Watch(ctx, pools, l.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	put("c")
	select {
	case ev := <-w2.Events():
		if ev.Type != backend.EventAdded || ev.New.Key != pool("c") {
			t.Fatalf("event after the restore = %+v, want pool c added", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after the restore")
	}
	if n, _, _ := c.Resets(); n != before+1 {
		t.Errorf("%d resets after the restore, want 1", n-before)
	}
}

// issue 23 item 2
//
// etcd replaced by another cluster's data, further ahead in revisions: the
// cluster ID in the headers gives it away.
func TestEtcdReplacedByAnotherClusterEndsWatches(t *testing.T) {
	srv := testutil.StartEtcd(t)
	// The timeout outlasts the restore: the watch rides through it.
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: 20 * time.Second, WatchProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	l, err := c.List(ctx, pools)
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, pools, l.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	before, _, _ := c.Resets()

	other := testutil.StartEtcd(t)
	raw := other.RawClient(t)
	for i := range 3 * int(l.Revision+5) {
		if _, err := raw.Put(ctx, fmt.Sprintf("/calico/other/%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	snap := filepath.Join(t.TempDir(), "other.db")
	if err := etcdrestore.Save(ctx, other, snap); err != nil {
		t.Fatal(err)
	}
	if err := etcdrestore.Restore(srv, snap, "another-cluster"); err != nil {
		t.Fatal(err)
	}
	cause := waitReset(t, w)
	checkReset(t, c, before, cause, srv.Endpoint, "cluster")
	l2, err := c.List(ctx, pools)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Revision <= l.Revision {
		t.Fatalf("the replacement is at revision %d, not ahead of %d: the test shows nothing", l2.Revision, l.Revision)
	}
}
