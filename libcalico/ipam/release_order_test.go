package ipam

import (
	"net/netip"
	"testing"

	"github.com/calico-etcd/calico/libcalico/model"
)

// A release of an address that is already free reports it as not
// assigned even when the caller's sequence number is out of date.
func TestReleaseFreedAddressIgnoresSequenceNumber(t *testing.T) {
	b := &model.AllocationBlock{CIDR: model.CIDR{Prefix: netip.MustParsePrefix("10.0.0.0/30")},
		Allocations: make([]*int, 4), Unallocated: []int{0, 1, 2, 3}, SequenceNumber: 7}
	stale := uint64(3)
	addr := netip.MustParseAddr("10.0.0.1")
	notAllocated, _, err := releaseFromBlock(b, []ReleaseOptions{{Address: addr, SequenceNumber: &stale}})
	if err != nil || len(notAllocated) != 1 || notAllocated[0] != addr {
		t.Fatalf("release of a free address = %v, %v; want it reported as not assigned", notAllocated, err)
	}
}
