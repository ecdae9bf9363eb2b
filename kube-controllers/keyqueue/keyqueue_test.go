package keyqueue

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// A key whose sync fails is retried until it succeeds; a key queued many
// times while waiting is synced once; resync runs on its period.
func TestRetriesAndResync(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	var mu sync.Mutex
	calls := map[string]int{}
	var observed atomic.Int32
	q := New[string]("test", time.Millisecond, 10*time.Millisecond, logrus.NewEntry(l), func(time.Duration) { observed.Add(1) })
	for range 5 {
		q.Add("once")
	}
	q.Add("flaky")
	var resyncs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		q.Run(ctx, 2, func(_ context.Context, k string) error {
			mu.Lock()
			defer mu.Unlock()
			calls[k]++
			if k == "flaky" && calls[k] < 3 {
				return errors.New("not yet")
			}
			return nil
		}, 5*time.Millisecond, func() { resyncs.Add(1) })
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		ok := calls["flaky"] == 3 && resyncs.Load() >= 2
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls %v, resyncs %d", calls, resyncs.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if calls["once"] != 1 {
		t.Errorf("a key queued 5 times was synced %d times", calls["once"])
	}
	if observed.Load() != 4 {
		t.Errorf("observed %d syncs, want 4", observed.Load())
	}
}
