package ipamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

// State is the IPAM part of the datastore at one revision.
type State struct {
	Rev     int64
	Blocks  map[netip.Prefix]*model.AllocationBlock
	Handles map[string]map[string]int
	Affs    map[model.BlockAffinityKey]string
	// Owner maps each allocated address to its handle; Check fills it.
	Owner map[netip.Addr]string
}

// Read reads the IPAM state of be at one revision.
func Read(t testing.TB, be backend.Client) *State {
	t.Helper()
	res, err := be.(backend.Transactor).Read(context.Background(), backend.Linearizable, []backend.ReadOp{
		{List: model.BlockListOptions{}}, {List: model.HandleListOptions{}}, {List: model.BlockAffinityListOptions{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &State{Rev: res.Revision, Blocks: map[netip.Prefix]*model.AllocationBlock{}, Handles: map[string]map[string]int{},
		Affs: map[model.BlockAffinityKey]string{}, Owner: map[netip.Addr]string{}}
	for _, kv := range res.Results[0] {
		var b model.AllocationBlock
		if err := json.Unmarshal(kv.Value, &b); err != nil {
			t.Fatal(err)
		}
		s.Blocks[kv.Key.(model.BlockKey).CIDR] = &b
	}
	for _, kv := range res.Results[1] {
		var h model.IPAMHandle
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			t.Fatal(err)
		}
		s.Handles[kv.Key.(model.HandleKey).HandleID] = h.Block
	}
	for _, kv := range res.Results[2] {
		var a model.BlockAffinity
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			t.Fatal(err)
		}
		s.Affs[kv.Key.(model.BlockAffinityKey)] = a.State
	}
	return s
}

// Check verifies the invariants that must hold at every revision: each
// ordinal is either allocated or in the free list exactly once, attribute
// indexes are valid and used, blocks do not overlap, and every handle's
// counts equal its allocations. It returns the problems found.
func (s *State) Check() []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf("rev %d: ", s.Rev)+fmt.Sprintf(f, a...)) }
	actual := map[string]map[string]int{}
	cidrs := slices.SortedFunc(maps.Keys(s.Blocks), netip.Prefix.Compare)
	for i, cidr := range cidrs {
		if i > 0 && cidrs[i-1].Overlaps(cidr) {
			bad("blocks %s and %s overlap", cidrs[i-1], cidr)
		}
		b := s.Blocks[cidr]
		if b.CIDR.Prefix != cidr || len(b.Allocations) != b.NumAddresses() {
			bad("block %s malformed", cidr)
			continue
		}
		seen := make([]int, len(b.Allocations))
		for _, o := range b.Unallocated {
			if o < 0 || o >= len(seen) {
				bad("block %s: free ordinal %d out of range", cidr, o)
				continue
			}
			seen[o]++
			if b.Allocations[o] != nil {
				bad("block %s: ordinal %d both free and allocated", cidr, o)
			}
		}
		used := make([]bool, len(b.Attributes))
		for o, idx := range b.Allocations {
			if idx == nil {
				if seen[o] != 1 {
					bad("block %s: free ordinal %d listed %d times", cidr, o, seen[o])
				}
				continue
			}
			if *idx < 0 || *idx >= len(b.Attributes) {
				bad("block %s: ordinal %d has attribute %d of %d", cidr, o, *idx, len(b.Attributes))
				continue
			}
			used[*idx] = true
			addr := b.AddrAt(o)
			h := ""
			if p := b.Attributes[*idx].HandleID; p != nil {
				h = *p
			}
			if _, dup := s.Owner[addr]; dup {
				bad("address %s allocated twice", addr)
			}
			s.Owner[addr] = h
			if h != "" {
				if actual[h] == nil {
					actual[h] = map[string]int{}
				}
				actual[h][cidr.String()]++
			}
		}
		for i, u := range used {
			if !u {
				bad("block %s: attribute %d unused", cidr, i)
			}
		}
	}
	for h, counts := range s.Handles {
		if len(counts) == 0 {
			bad("handle %s stored with no blocks", h)
		}
		if !maps.Equal(counts, actual[h]) {
			bad("handle %s counts %v, blocks hold %v", h, counts, actual[h])
		}
	}
	for h := range actual {
		if s.Handles[h] == nil {
			bad("allocations of handle %s but no handle", h)
		}
	}
	return errs
}

// MustCheck fails t with each problem Check finds.
func (s *State) MustCheck(t testing.TB) {
	t.Helper()
	for _, e := range s.Check() {
		t.Error(e)
	}
}
