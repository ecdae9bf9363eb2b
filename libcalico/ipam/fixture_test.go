package ipam

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil/fixtures"
)

type fixtureKV struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// loadFixture puts the state a real Calico wrote into a memory store.
func loadFixture(t *testing.T) (*memory.Store, []fixtureKV) {
	t.Helper()
	data, err := fixtures.Read("calico-etcd-state.json")
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	var kvs []fixtureKV
	if err := json.Unmarshal(data, &kvs); err != nil {
		t.Fatal(err)
	}
	s := memory.New()
	t.Cleanup(func() { s.Close() })
	for _, kv := range kvs {
		k := model.ParseKey(kv.Key)
		if k == nil {
			t.Fatalf("unparsable key %s", kv.Key)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, kv.Value); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, &backend.KVPair{Key: k, Value: buf.Bytes()}); err != nil {
			t.Fatal(err)
		}
	}
	return s, kvs
}

// TestFixtureBlocksRoundTripExactly re-encodes every IPAM value Calico
// wrote and expects the same bytes: field names, order and formats.
func TestFixtureBlocksRoundTripExactly(t *testing.T) {
	_, kvs := loadFixture(t)
	n := 0
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, model.IPAMRoot) {
			continue
		}
		var want bytes.Buffer
		if err := json.Compact(&want, kv.Value); err != nil {
			t.Fatal(err)
		}
		k := model.ParseKey(kv.Key)
		var got []byte
		switch k := k.(type) {
		case model.BlockKey:
			bk, err := decodeBlock(&backend.KVPair{Key: k, Value: want.Bytes()})
			if err != nil {
				t.Fatal(err)
			}
			got, _ = json.Marshal(bk.b)
		case model.HandleKey:
			h, err := decodeHandle(k.HandleID, &backend.KVPair{Key: k, Value: want.Bytes()})
			if err != nil {
				t.Fatal(err)
			}
			op, _ := h.op()
			got = op.Value
		case model.BlockAffinityKey:
			a, err := decodeAffinity(&backend.KVPair{Key: k, Value: want.Bytes()})
			if err != nil {
				t.Fatal(err)
			}
			got = affinityValue(a.state)
		default:
			continue
		}
		n++
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s:\n got %s\nwant %s", kv.Key, got, want.Bytes())
		}
	}
	if n < 10 {
		t.Fatalf("only %d IPAM values in fixture", n)
	}
}

// TestOperateOnCalicoState releases and assigns on the state Calico wrote
// and checks the result is what Calico itself would store.
func TestOperateOnCalicoState(t *testing.T) {
	s, _ := loadFixture(t)
	e := newEnv(t, s, Options{})
	before := readState(t, s)
	before.MustCheck(t)
	cidr := netip.MustParsePrefix("10.10.166.128/26")
	seq := before.Blocks[cidr].SequenceNumber

	if err := e.ipam.ReleaseByHandle(ctx, "k8s-pod-network.aaaa1111"); err != nil {
		t.Fatal(err)
	}
	after := readState(t, s)
	after.MustCheck(t)
	b := after.Blocks[cidr]
	if len(b.Attributes) != 1 || *b.Attributes[0].HandleID != "k8s-pod-network.bbbb2222" || *b.Allocations[4] != 0 {
		t.Fatalf("attributes not compacted: %+v", b.Attributes)
	}
	if u := b.Unallocated; len(u) != 63 || u[len(u)-2] != 0 || u[len(u)-1] != 1 || u[0] != 6 {
		t.Fatalf("unallocated = %v", u)
	}
	if b.SequenceNumber != seq+1 || after.Handles["k8s-pod-network.aaaa1111"] != nil {
		t.Fatalf("sequence %d (was %d), handle %v", b.SequenceNumber, seq, after.Handles["k8s-pod-network.aaaa1111"])
	}

	// node1's next address is the head of its block's free list.
	v4, _ := e.assign("node1", "k8s-pod-network.cccc3333", 1, 0)
	if got, want := v4.IPs[0], netip.MustParsePrefix("10.10.166.134/26"); got != want {
		t.Fatalf("assigned %v, want %v", got, want)
	}
	final := readState(t, s)
	final.MustCheck(t)
	if final.Blocks[cidr].SequenceNumberForAllocation["6"] != seq+1 {
		t.Fatalf("sequence for ordinal 6 = %d, want %d", final.Blocks[cidr].SequenceNumberForAllocation["6"], seq+1)
	}
}
