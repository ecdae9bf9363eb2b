package etcd_test

import (
	"testing"

	"github.com/calico-etcd/calico/libcalico/backend/conformance"
)

func TestTxnConformance(t *testing.T) { conformance.RunTxn(t, emptyStoreFactory(t)) }
