package client_test

import (
	"errors"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
)

// TestSwap replaces a pool by the two halves that cover it, in one
// transaction, and writes nothing when any part is refused.
func TestSwap(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T) *client.Client{
		"memory": func(t *testing.T) *client.Client { c, _ := newMemClient(t); return c },
		"etcd":   func(t *testing.T) *client.Client { c, _, _ := newEtcdClient(t); return c },
	} {
		t.Run(name, func(t *testing.T) {
			c := mk(t)
			old, err := c.IPPools().Create(ctx, pool("p", "10.0.0.0/16"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.IPPools().Create(ctx, pool("other", "10.1.0.0/16")); err != nil {
				t.Fatal(err)
			}
			halves := func(a, b string) []v3.Resource { return []v3.Resource{pool("p-0", a), pool("p-1", b)} }
			list := func() string {
				ps, _, err := c.IPPools().List(ctx, client.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var s []string
				for _, p := range ps {
					s = append(s, p.Name+"="+p.Spec.CIDR)
				}
				return strings.Join(s, ",")
			}
			before := list()

			for _, tc := range []struct {
				dels, adds []v3.Resource
				want       error
				msg        string
			}{
				{nil, halves("10.0.0.0/17", "10.0.128.0/17"), cerrors.ErrValidation, "overlaps with IPPool(p)"},
				{[]v3.Resource{old}, halves("10.0.0.0/17", "10.0.64.0/18"), cerrors.ErrValidation, "IPPool(p-1) CIDR overlaps with IPPool(p-0)"},
				{[]v3.Resource{old}, halves("10.0.0.0/17", "10.1.0.0/17"), cerrors.ErrValidation, "overlaps with IPPool(other)"},
				{[]v3.Resource{old}, halves("10.0.0.0/17", "10.300.0.0/17"), cerrors.ErrValidation, "10.300.0.0/17"},
				{[]v3.Resource{pool("p", "10.0.0.0/16")}, halves("10.0.0.0/17", "10.0.128.0/17"), cerrors.ErrValidation, "Metadata.ResourceVersion"},
				{[]v3.Resource{old}, []v3.Resource{pool("other", "10.0.0.0/17")}, cerrors.ErrConflict, ""},
			} {
				_, err := c.Swap(ctx, tc.dels, tc.adds)
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("want %v %q, got %v", tc.want, tc.msg, err)
				}
				if got := list(); got != before {
					t.Fatalf("a refused swap changed the pools: %s", got)
				}
			}

			stale := v3.Clone(old)
			stale.ResourceVersion = "1"
			if _, err := c.Swap(ctx, []v3.Resource{stale}, halves("10.0.0.0/17", "10.0.128.0/17")); !errors.Is(err, cerrors.ErrConflict) {
				t.Fatalf("stale delete: %v", err)
			}
			got, err := c.Swap(ctx, []v3.Resource{old}, halves("10.0.0.0/17", "10.0.128.0/17"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].GetObjectMeta().UID == "" || got[0].GetObjectMeta().ResourceVersion == "" {
				t.Fatalf("returned %v", got)
			}
			if l := list(); l != "other=10.1.0.0/16,p-0=10.0.0.0/17,p-1=10.0.128.0/17" {
				t.Fatal(l)
			}
		})
	}
}
