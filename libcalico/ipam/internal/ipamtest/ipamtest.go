// Package ipamtest holds what the tests of package ipam and package
// ipamcheck share: the IPAM state read raw at one revision with the
// invariants it must keep (State), and the pools, nodes and logger they
// set up. It imports no IPAM code, so that ipam's own tests can use it.
package ipamtest

import (
	"context"
	"testing"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
)

// Log is a logger that writes warnings and worse to t's log.
func Log(t testing.TB) *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	l.SetOutput(testWriter{t})
	return logrus.NewEntry(l)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Pool creates an IP pool, changed by mod.
func Pool(t testing.TB, cl *client.Client, name, cidr string, blockSize int, mod ...func(*v3.IPPool)) {
	t.Helper()
	p := v3.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	p.Spec.BlockSize = blockSize
	for _, m := range mod {
		m(p)
	}
	if _, err := cl.IPPools().Create(context.Background(), p); err != nil {
		t.Fatalf("creating pool %s: %v", name, err)
	}
}

// Node creates a Node.
func Node(t testing.TB, cl *client.Client, name string, labels map[string]string) {
	t.Helper()
	n := v3.NewNode()
	n.Name = name
	n.Labels = labels
	if _, err := cl.Nodes().Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}
