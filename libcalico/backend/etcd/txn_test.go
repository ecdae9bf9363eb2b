package etcd_test

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/conformance"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/testutil"
)

func TestTxnConformance(t *testing.T) {
	srv := testutil.StartEtcd(t)
	raw := srv.RawClient(t)
	conformance.RunTxn(t, func(t *testing.T) backend.Client {
		if _, err := raw.Delete(context.Background(), "/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
		c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	})
}
