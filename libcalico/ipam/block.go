package ipam

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// This file holds the pure operations on one AllocationBlock, with
// Calico's semantics: Unallocated is a FIFO (assignment takes from the
// head, release appends to the tail); an attribute entry is shared by the
// allocations with the same handle and attributes and is deleted, with the
// later indexes renumbered, when its last allocation goes; every write of
// an existing block bumps SequenceNumber and each allocation records the
// number the block had when it was made.

// claimTimeLayout is how Calico (metav1.Time) writes affinity_claim_time.
const claimTimeLayout = "2006-01-02T15:04:05Z07:00"

func affinityOf(host string) string { return "host:" + host }

// newBlock returns an empty block affine to host, with its sequence number
// seeded from the clock so a re-created block never repeats one.
func newBlock(cidr netip.Prefix, host string, now time.Time) *model.AllocationBlock {
	b := &model.AllocationBlock{CIDR: model.CIDR{Prefix: cidr.Masked()}}
	n := b.NumAddresses()
	b.Allocations = make([]*int, n)
	b.Unallocated = make([]int, n)
	for i := range b.Unallocated {
		b.Unallocated[i] = i
	}
	b.SequenceNumber = uint64(now.UnixNano())
	b.SequenceNumberForAllocation = map[string]uint64{}
	aff := affinityOf(host)
	b.Affinity = &aff
	b.AffinityClaimTime = now.UTC().Format(claimTimeLayout)
	return b
}

// claimTime parses affinity_claim_time; zero when absent or unreadable.
func claimTime(b *model.AllocationBlock) time.Time {
	t, err := time.Parse(time.RFC3339, b.AffinityClaimTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// blockEmpty reports whether nothing but Windows reservations is allocated.
func blockEmpty(b *model.AllocationBlock) bool {
	for _, idx := range b.Allocations {
		if idx == nil {
			continue
		}
		if *idx >= len(b.Attributes) {
			return false
		}
		h := b.Attributes[*idx].HandleID
		if h == nil || !strings.EqualFold(*h, WindowsReservedHandle) {
			return false
		}
	}
	return true
}

// inUse counts allocated ordinals.
func inUse(b *model.AllocationBlock) int {
	n := 0
	for _, idx := range b.Allocations {
		if idx != nil {
			n++
		}
	}
	return n
}

// freeCount is the number of unallocated, unreserved addresses.
func freeCount(b *model.AllocationBlock, res reservations) int {
	switch {
	case res.coversAll(b.CIDR.Prefix):
		return 0
	case !res.touches(b.CIDR.Prefix):
		return len(b.Unallocated)
	}
	n := 0
	for _, ord := range b.Unallocated {
		if !res.contains(b.AddrAt(ord)) {
			n++
		}
	}
	return n
}

func sameAttr(a model.AllocationAttribute, handle *string, attrs map[string]string) bool {
	if (a.HandleID == nil) != (handle == nil) || (handle != nil && *a.HandleID != *handle) {
		return false
	}
	return a.Alternate == nil && (a.Secondary == nil) == (attrs == nil) && maps.Equal(a.Secondary, attrs)
}

// attrIndex returns the index of the attribute entry for handle and attrs,
// appending one if there is none.
func attrIndex(b *model.AllocationBlock, handle *string, attrs map[string]string) int {
	for i, a := range b.Attributes {
		if sameAttr(a, handle, attrs) {
			return i
		}
	}
	b.Attributes = append(b.Attributes, model.AllocationAttribute{HandleID: handle, Secondary: attrs})
	return len(b.Attributes) - 1
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// assignFromBlock takes up to num unreserved addresses from the head of
// the free list, keeping the order of what it leaves.
func assignFromBlock(b *model.AllocationBlock, num int, handle string, attrs map[string]string, res reservations) []netip.Addr {
	var ips []netip.Addr
	var idx *int
	kept := b.Unallocated[:0]
	for i, ord := range b.Unallocated {
		if len(ips) == num {
			kept = append(kept, b.Unallocated[i:]...)
			break
		}
		addr := b.AddrAt(ord)
		if res.contains(addr) {
			kept = append(kept, ord)
			continue
		}
		if idx == nil {
			n := attrIndex(b, strPtr(handle), attrs)
			idx = &n
		}
		b.Allocations[ord] = idx
		b.SetSequenceNumberFor(ord)
		ips = append(ips, addr)
	}
	b.Unallocated = kept
	return ips
}

// assignAddr allocates one given address.
func assignAddr(b *model.AllocationBlock, addr netip.Addr, handle string, attrs map[string]string) error {
	ord, err := b.OrdinalOf(addr)
	if err != nil {
		return err
	}
	if b.Allocations[ord] != nil {
		return fmt.Errorf("address %s already assigned in block %s: %w", addr, b.CIDR, &cerrors.Exists{Key: addr.String()})
	}
	n := attrIndex(b, strPtr(handle), attrs)
	b.Allocations[ord] = &n
	b.SetSequenceNumberFor(ord)
	if i := slices.Index(b.Unallocated, ord); i >= 0 {
		b.Unallocated = slices.Delete(b.Unallocated, i, i+1)
	}
	return nil
}

func seqFor(b *model.AllocationBlock, ord int) uint64 {
	return b.SequenceNumberForAllocation[strconv.Itoa(ord)]
}

// handleOf returns the (sanitized) handle of the allocation at ord, or "".
func handleOf(b *model.AllocationBlock, ord int) string {
	idx := b.Allocations[ord]
	if idx == nil || *idx >= len(b.Attributes) || b.Attributes[*idx].HandleID == nil {
		return ""
	}
	return sanitizeHandle(*b.Attributes[*idx].HandleID)
}

// sanitizeHandle drops what Calico's host-local migration once appended.
func sanitizeHandle(h string) string { h, _, _ = strings.Cut(h, "\r"); return h }

// errStaleRelease means a release named a handle or sequence number that
// no longer matches the allocation: someone else owns the address now.
var errStaleRelease = errors.New("allocation changed since the release was requested")

// releaseFromBlock frees the addresses of opts that are allocated and
// returns those that were not, plus the count freed per handle. A
// mismatched handle or sequence number fails the whole block.
func releaseFromBlock(b *model.AllocationBlock, opts []ReleaseOptions) ([]netip.Addr, map[string]int, error) {
	var notAllocated []netip.Addr
	perHandle := map[string]int{}
	var ords []int
	seen := map[int]bool{}
	for _, o := range opts {
		ord, err := b.OrdinalOf(o.Address)
		if err != nil {
			return nil, nil, err
		}
		if seen[ord] {
			continue
		}
		seen[ord] = true
		// A free address is reported as not assigned, whatever the caller's
		// sequence number says (as Calico does), before the staleness check.
		if b.Allocations[ord] == nil {
			notAllocated = append(notAllocated, o.Address)
			continue
		}
		if o.SequenceNumber != nil && *o.SequenceNumber != seqFor(b, ord) {
			return nil, nil, fmt.Errorf("releasing %s with sequence number %d, block has %d: %w", o.Address, *o.SequenceNumber, seqFor(b, ord), errStaleRelease)
		}
		h := handleOf(b, ord)
		if o.Handle != "" && h != o.Handle {
			return nil, nil, fmt.Errorf("releasing %s for handle %q, it belongs to %q: %w", o.Address, o.Handle, h, errStaleRelease)
		}
		if h != "" {
			perHandle[h]++
		}
		ords = append(ords, ord)
	}
	freeOrdinals(b, ords)
	return notAllocated, perHandle, nil
}

// releaseHandleFromBlock frees every address of handle and returns how many.
func releaseHandleFromBlock(b *model.AllocationBlock, handle string) []netip.Addr {
	var ords []int
	var ips []netip.Addr
	for ord := range b.Allocations {
		if b.Allocations[ord] != nil && handleOf(b, ord) == handle {
			ords = append(ords, ord)
			ips = append(ips, b.AddrAt(ord))
		}
	}
	freeOrdinals(b, ords)
	return ips
}

// freeOrdinals releases ords (all allocated), deletes attribute entries
// left without allocations and renumbers the rest.
func freeOrdinals(b *model.AllocationBlock, ords []int) {
	if len(ords) == 0 {
		return
	}
	refs := map[int]int{}
	for _, idx := range b.Allocations {
		if idx != nil {
			refs[*idx]++
		}
	}
	gone := map[int]bool{}
	for _, ord := range ords {
		idx := *b.Allocations[ord]
		if refs[idx]--; refs[idx] == 0 {
			gone[idx] = true
		}
	}
	if len(gone) > 0 {
		renumber := make([]int, len(b.Attributes))
		kept := []model.AllocationAttribute{}
		for i, a := range b.Attributes {
			renumber[i] = len(kept)
			if !gone[i] {
				kept = append(kept, a)
			}
		}
		b.Attributes = kept
		for ord, idx := range b.Allocations {
			if idx != nil && *idx < len(renumber) {
				n := renumber[*idx]
				b.Allocations[ord] = &n
			}
		}
	}
	for _, ord := range ords {
		b.Allocations[ord] = nil
		b.Unallocated = append(b.Unallocated, ord)
		delete(b.SequenceNumberForAllocation, strconv.Itoa(ord))
	}
}

// attributesAt returns the attribute entry of the allocation at addr.
func attributesAt(b *model.AllocationBlock, addr netip.Addr) (*model.AllocationAttribute, int, error) {
	ord, err := b.OrdinalOf(addr)
	if err != nil {
		return nil, 0, err
	}
	idx := b.Allocations[ord]
	if idx == nil || *idx >= len(b.Attributes) {
		return nil, ord, fmt.Errorf("address %s is not assigned: %w", addr, &cerrors.NotFound{Key: addr.String()})
	}
	return &b.Attributes[*idx], ord, nil
}
