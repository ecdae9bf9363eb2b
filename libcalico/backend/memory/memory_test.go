package memory

import (
	"context"
	"errors"
	"testing"

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
