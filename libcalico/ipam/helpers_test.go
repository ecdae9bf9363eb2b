package ipam

import (
	"context"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam/internal/ipamtest"
)

var (
	testLog   = ipamtest.Log
	readState = ipamtest.Read
)

type env struct {
	t    testing.TB
	be   backend.Client
	cl   *client.Client
	ipam *Client
}

// newEnv's client has a Cache of its own unless opts gives one, as a
// long-lived process's would.
func newEnv(t testing.TB, be backend.Client, opts Options) *env {
	t.Helper()
	if opts.Cache == nil {
		opts.Cache = NewCache()
	}
	c, err := New(be, testLog(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, be: be, cl: client.New(be), ipam: c}
}

func memEnv(t testing.TB) *env {
	s := memory.New()
	t.Cleanup(func() { s.Close() })
	return newEnv(t, s, Options{})
}

func (e *env) pool(name, cidr string, blockSize int, mod ...func(*v3.IPPool)) {
	e.t.Helper()
	ipamtest.Pool(e.t, e.cl, name, cidr, blockSize, mod...)
}

func (e *env) node(name string, labels map[string]string) {
	e.t.Helper()
	ipamtest.Node(e.t, e.cl, name, labels)
}

func (e *env) assign(host, handle string, n4, n6 int) (*Assignments, *Assignments) {
	e.t.Helper()
	v4, v6, err := e.ipam.AutoAssign(context.Background(), AutoAssignArgs{Num4: n4, Num6: n6, HandleID: handle, Hostname: host,
		Attrs: map[string]string{AttributeNode: host}})
	if err != nil {
		e.t.Fatalf("AutoAssign(%s, %s): %v", host, handle, err)
	}
	return v4, v6
}
