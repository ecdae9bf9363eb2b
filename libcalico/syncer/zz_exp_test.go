package syncer

import (
	"context"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/testutil"
)

func TestExp(t *testing.T) {
	srv := testutil.StartEtcd(t)
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := model.ResourceListOptions{Kind: "IPPool"}
	l, err := c.List(ctx, opts)
	t.Log(l, err)
	w, _ := c.Watch(ctx, opts, l.Revision)
	go func() {
		for ev := range w.Events() {
			t.Logf("%v ev %v %v rev %d", time.Now().Format("05.000"), ev.Type, ev.Err, ev.Revision)
		}
		t.Logf("%v closed", time.Now().Format("05.000"))
	}()
	c.Apply(ctx, &backend.KVPair{Key: model.ResourceKey{Kind: "IPPool", Name: "a"}, Value: []byte(`{}`)})
	time.Sleep(200 * time.Millisecond)
	t.Logf("%v stop", time.Now().Format("05.000"))
	srv.Stop()
	time.Sleep(3 * time.Second)
	_, err = c.List(ctx, opts)
	t.Logf("%v list while down: %v", time.Now().Format("05.000"), err)
	w2, err := c.Watch(ctx, opts, l.Revision)
	t.Logf("watch while down: %v", err)
	go func() {
		for ev := range w2.Events() {
			t.Logf("%v w2 ev %v %v rev %d", time.Now().Format("05.000"), ev.Type, ev.Err, ev.Revision)
		}
	}()
	srv.Start()
	t.Logf("%v started", time.Now().Format("05.000"))
	_, err = c.Apply(ctx, &backend.KVPair{Key: model.ResourceKey{Kind: "IPPool", Name: "b"}, Value: []byte(`{}`)})
	t.Logf("%v applied %v", time.Now().Format("05.000"), err)
	time.Sleep(3 * time.Second)
}
