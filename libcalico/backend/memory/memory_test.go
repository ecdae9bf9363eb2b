package memory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/conformance"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) backend.Client {
		s := New()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestWatchCompacted(t *testing.T) {
	s := New()
	ctx := context.Background()
	k := model.ResourceKey{Kind: "IPPool", Name: "p"}
	first, err := s.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("2")})
	s.Compact()
	w, err := s.Watch(ctx, model.ResourceListOptions{Kind: "IPPool"}, first.Revision-1)
	if err != nil {
		t.Fatal(err)
	}
	ev := <-w.Events()
	if ev.Type != backend.EventError || !errors.Is(ev.Err, cerrors.ErrCompacted) {
		t.Fatalf("event = %+v, want compacted error", ev)
	}
	if _, ok := <-w.Events(); ok {
		t.Fatal("watch not closed after error")
	}
}

func TestTTLDeleteSeenByWatcher(t *testing.T) {
	s := New()
	defer s.Close()
	ctx := context.Background()
	k := model.FelixStatusKey{Hostname: "h"}
	w, err := s.Watch(ctx, model.FelixStatusListOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := s.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("{}"), TTL: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []backend.EventType{backend.EventAdded, backend.EventDeleted} {
		select {
		case ev := <-w.Events():
			if ev.Type != want {
				t.Fatalf("event %v, want %v", ev.Type, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v event", want)
		}
	}
}

func TestHistoryIsBounded(t *testing.T) {
	s := New()
	defer s.Close()
	ctx := context.Background()
	k := model.ResourceKey{Kind: "IPPool", Name: "p"}
	first, _ := s.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("0")})
	for i := 0; i < maxHistory+10; i++ {
		s.Apply(ctx, &backend.KVPair{Key: k, Value: []byte("x")})
	}
	if len(s.history) > maxHistory {
		t.Fatalf("history holds %d changes", len(s.history))
	}
	w, _ := s.Watch(ctx, model.ResourceListOptions{Kind: "IPPool"}, first.Revision)
	defer w.Stop()
	if ev := <-w.Events(); !errors.Is(ev.Err, cerrors.ErrCompacted) {
		t.Fatalf("watch from a trimmed revision = %+v, want compacted", ev)
	}
}
