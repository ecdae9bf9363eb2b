package memory

import (
	"testing"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/conformance"
)

func TestTxnConformance(t *testing.T) {
	conformance.RunTxn(t, func(t *testing.T) backend.Client {
		s := New()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
