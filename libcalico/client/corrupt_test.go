package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
)

// A List over values some of which do not decode returns the others,
// the read's revision and a *cerrors.Partial naming each skipped key in
// key order, serially and in the parallel decode of long lists alike; a
// Get of such a value fails naming it; a Delete removes it.
// issue 23 item 7
func TestListSkipsValuesThatDoNotDecode(t *testing.T) {
	c, _, srv := newEtcdClient(t)
	raw := srv.RawClient(t)
	const prefix = "/calico/resources/v3/projectcalico.org/ippools/"
	for _, n := range []int{3, 1500} { // 1500: decoded in parallel chunks
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if _, err := raw.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				p := pool(fmt.Sprintf("p%04d", i), fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
				p.APIVersion = v3.APIVersion
				p.Default()
				b, _ := json.Marshal(p)
				if _, err := raw.Put(ctx, prefix+p.Name, string(b)); err != nil {
					t.Fatal(err)
				}
			}
			bad := []string{prefix + "p0000x", prefix + "zz"}
			for _, k := range bad {
				if _, err := raw.Put(ctx, k, "garbage"); err != nil {
					t.Fatal(err)
				}
			}

			items, rev, err := c.List(ctx, v3.KindIPPool, client.ListOptions{})
			if !errors.Is(err, cerrors.ErrCorrupt) || len(items) != n || rev == 0 {
				t.Fatalf("List: %d items, revision %d, error %v; want %d items, a revision and ErrCorrupt", len(items), rev, err, n)
			}
			skipped, rest := cerrors.Skipped(err)
			if rest != nil || len(skipped) != len(bad) {
				t.Fatalf("Skipped: %v, rest %v", skipped, rest)
			}
			for i, s := range skipped {
				if s.Key != bad[i] || s.Err == nil {
					t.Errorf("skipped[%d] = %v, want key %s", i, s, bad[i])
				}
			}
			if !slices.IsSortedFunc(items, func(a, b v3.Resource) int {
				return strings.Compare(a.GetObjectMeta().Name, b.GetObjectMeta().Name)
			}) || items[0].GetObjectMeta().Name != "p0000" {
				t.Error("items out of key order")
			}

			typedItems, _, err := c.IPPools().List(ctx, client.ListOptions{})
			if s, rest := cerrors.Skipped(err); len(typedItems) != n || len(s) != len(bad) || rest != nil {
				t.Errorf("typed List: %d items, error %v", len(typedItems), err)
			}
			// A check that lists the pools goes on without them.
			if _, err := c.IPPools().Create(ctx, pool("new", "192.168.0.0/24")); err != nil {
				t.Errorf("create beside values that do not decode: %v", err)
			}
		})
	}

	_, err := c.Get(ctx, v3.KindIPPool, "", "zz")
	var corrupt *cerrors.Corrupt
	if !errors.As(err, &corrupt) || corrupt.Key != prefix+"zz" {
		t.Fatalf("Get: %v, want a *cerrors.Corrupt for %szz", err, prefix)
	}
	r, err := c.Delete(ctx, v3.KindIPPool, "", "zz", "")
	if err != nil || r.GetObjectMeta().Name != "zz" || r.GetTypeMeta().Kind != v3.KindIPPool || r.GetObjectMeta().ResourceVersion == "" {
		t.Fatalf("Delete: %+v, %v", r, err)
	}
	if _, err := c.Get(ctx, v3.KindIPPool, "", "zz"); !errors.Is(err, cerrors.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
	if _, err := c.IPPools().Delete(ctx, "", "p0000x", ""); err != nil {
		t.Fatalf("typed Delete: %v", err)
	}
	if _, _, err := c.List(ctx, v3.KindIPPool, client.ListOptions{}); err != nil {
		t.Fatalf("List after the deletes: %v", err)
	}
}
