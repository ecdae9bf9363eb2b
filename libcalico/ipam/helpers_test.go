package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
)

func testLog(t testing.TB) *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	l.SetOutput(testWriter{t})
	return logrus.NewEntry(l)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

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
	p := v3.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	p.Spec.BlockSize = blockSize
	for _, m := range mod {
		m(p)
	}
	if _, err := e.cl.IPPools().Create(context.Background(), p); err != nil {
		e.t.Fatalf("creating pool %s: %v", name, err)
	}
}

func (e *env) node(name string, labels map[string]string) {
	e.t.Helper()
	n := v3.NewNode()
	n.Name = name
	n.Labels = labels
	if _, err := e.cl.Nodes().Create(context.Background(), n); err != nil {
		e.t.Fatal(err)
	}
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

// state is the IPAM part of the datastore at one revision.
type state struct {
	rev     int64
	blocks  map[netip.Prefix]*model.AllocationBlock
	handles map[string]map[string]int
	affs    map[model.BlockAffinityKey]string
	// owner maps each allocated address to its handle.
	owner map[netip.Addr]string
}

func readState(t testing.TB, be backend.Client) *state {
	t.Helper()
	res, err := be.(backend.Transactor).Read(context.Background(), backend.Linearizable, []backend.ReadOp{
		{List: model.BlockListOptions{}}, {List: model.HandleListOptions{}}, {List: model.BlockAffinityListOptions{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &state{rev: res.Revision, blocks: map[netip.Prefix]*model.AllocationBlock{}, handles: map[string]map[string]int{},
		affs: map[model.BlockAffinityKey]string{}, owner: map[netip.Addr]string{}}
	for _, kv := range res.Results[0] {
		var b model.AllocationBlock
		if err := json.Unmarshal(kv.Value, &b); err != nil {
			t.Fatal(err)
		}
		s.blocks[kv.Key.(model.BlockKey).CIDR] = &b
	}
	for _, kv := range res.Results[1] {
		var h model.IPAMHandle
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			t.Fatal(err)
		}
		s.handles[kv.Key.(model.HandleKey).HandleID] = h.Block
	}
	for _, kv := range res.Results[2] {
		var a model.BlockAffinity
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			t.Fatal(err)
		}
		s.affs[kv.Key.(model.BlockAffinityKey)] = a.State
	}
	return s
}

// check verifies the invariants that must hold at every revision: each
// ordinal is either allocated or in the free list exactly once, attribute
// indexes are valid and used, blocks do not overlap, and every handle's
// counts equal its allocations. It returns the problems found.
func (s *state) check() []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf("rev %d: ", s.rev)+fmt.Sprintf(f, a...)) }
	actual := map[string]map[string]int{}
	cidrs := slices.SortedFunc(maps.Keys(s.blocks), netip.Prefix.Compare)
	for i, cidr := range cidrs {
		if i > 0 && cidrs[i-1].Overlaps(cidr) {
			bad("blocks %s and %s overlap", cidrs[i-1], cidr)
		}
		b := s.blocks[cidr]
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
			if _, dup := s.owner[addr]; dup {
				bad("address %s allocated twice", addr)
			}
			s.owner[addr] = h
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
	for h, counts := range s.handles {
		if len(counts) == 0 {
			bad("handle %s stored with no blocks", h)
		}
		if !maps.Equal(counts, actual[h]) {
			bad("handle %s counts %v, blocks hold %v", h, counts, actual[h])
		}
	}
	for h := range actual {
		if s.handles[h] == nil {
			bad("allocations of handle %s but no handle", h)
		}
	}
	return errs
}

func (s *state) mustCheck(t testing.TB) {
	t.Helper()
	for _, e := range s.check() {
		t.Error(e)
	}
}
