package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/conformance"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// emptyStoreFactory returns a conformance factory over one embedded etcd,
// emptied before each subtest.
func emptyStoreFactory(t *testing.T) conformance.Factory {
	srv := testutil.StartEtcd(t)
	raw := srv.RawClient(t)
	return func(t *testing.T) backend.Client {
		if _, err := raw.Delete(context.Background(), "/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
		c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

func TestConformance(t *testing.T) { conformance.Run(t, emptyStoreFactory(t)) }

func TestKeyLayout(t *testing.T) {
	srv := testutil.StartEtcd(t)
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	k := model.ResourceKey{Kind: "NetworkPolicy", Namespace: "prod", Name: "allow"}
	if _, err := c.Create(ctx, &backend.KVPair{Key: k, Value: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.RawClient(t).Get(ctx, "/calico/resources/v3/projectcalico.org/networkpolicies/prod/allow")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != `{"x":1}` {
		t.Fatalf("raw read = %v, %v", resp, err)
	}
}

func TestUnreachableIsBoundedAndNamesEndpoints(t *testing.T) {
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://127.0.0.1:" + itoa(port)
	c, err := etcd.New(etcd.Config{Endpoints: []string{ep}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Get(context.Background(), model.ResourceKey{Kind: "IPPool", Name: "x"})
	if !errors.Is(err, cerrors.ErrUnavailable) || !strings.Contains(err.Error(), ep) {
		t.Fatalf("err = %v, want unavailable naming %s", err, ep)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("unreachable etcd took %v, timeout is 1s", d)
	}
}

func TestTLSClientCertificates(t *testing.T) {
	srv := testutil.StartEtcd(t, testutil.WithTLS(t.TempDir()))
	ctx := context.Background()
	good, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, CertFile: srv.TLS.ClientCert,
		KeyFile: srv.TLS.ClientKey, CACertFile: srv.TLS.CA, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.Apply(ctx, &backend.KVPair{Key: model.IPAMConfigKey{}, Value: []byte("{}")}); err != nil {
		t.Fatalf("apply over TLS: %v", err)
	}
	noCert, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, CACertFile: srv.TLS.CA, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer noCert.Close()
	if _, err := noCert.Get(ctx, model.IPAMConfigKey{}); err == nil {
		t.Fatal("read without client certificate succeeded")
	}
	if _, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, CertFile: srv.TLS.ClientCert}); err == nil {
		t.Fatal("cert without key accepted")
	}
}

func TestUsernamePassword(t *testing.T) {
	srv := testutil.StartEtcd(t)
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
	ok, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Username: "root", Password: "s3cret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	if _, err := ok.Apply(ctx, &backend.KVPair{Key: model.IPAMConfigKey{}, Value: []byte("{}")}); err != nil {
		t.Fatalf("apply with password: %v", err)
	}
	bad, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Username: "root", Password: "wrong", Timeout: 2 * time.Second})
	if err == nil {
		defer bad.Close()
		_, err = bad.Get(ctx, model.IPAMConfigKey{})
	}
	if err == nil {
		t.Fatal("wrong password accepted")
	}
}

func TestWatchCompacted(t *testing.T) {
	srv := testutil.StartEtcd(t)
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	k := model.ResourceKey{Kind: "IPPool", Name: "p"}
	first, _ := c.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("1")})
	c.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("2")})
	if _, err := srv.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, model.ResourceListOptions{Kind: "IPPool"}, first.Revision-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case ev := <-w.Events():
		if ev.Type != backend.EventError || !errors.Is(ev.Err, cerrors.ErrCompacted) {
			t.Fatalf("event = %+v, want compacted", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no compaction error")
	}
}

func itoa(i int) string {
	return fmtInt(i)
}

func fmtInt(i int) string {
	var b []byte
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}

func TestWatchReportsOutageAndNeverBlocks(t *testing.T) {
	srv := testutil.StartEtcd(t)
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: time.Second, WatchProbeInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	w, err := c.Watch(ctx, model.ResourceListOptions{Kind: "IPPool"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	srv.Stop()
	select {
	case ev := <-w.Events():
		if ev.Type != backend.EventError || !errors.Is(ev.Err, cerrors.ErrUnavailable) {
			t.Fatalf("event = %+v, want unavailable", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("outage not reported by the watch")
	}
	done := make(chan error, 1)
	go func() {
		w2, err := c.Watch(ctx, model.ResourceListOptions{Kind: "IPPool"}, 0)
		if err == nil {
			w2.Stop()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch while etcd is down: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch blocked while etcd is down")
	}
}
