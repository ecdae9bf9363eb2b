package ipamplugin

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A free lock is taken without waiting for anything; a taken one runs
// beforeWait once, then queues until the holder lets go.
func TestLockFileWaitsBeforeQueueing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.lock")
	var waited atomic.Int32
	before := func() { waited.Add(1) }
	held, err := lockFile(path, "", before)
	if err != nil {
		t.Fatal(err)
	}
	if waited.Load() != 0 {
		t.Fatal("beforeWait ran for a free lock")
	}
	got := make(chan error, 1)
	go func() {
		f, err := lockFile(path, "", before)
		if err == nil {
			f.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second lock taken while held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if n := waited.Load(); n != 1 {
		t.Fatalf("beforeWait ran %d times for a taken lock, want 1", n)
	}
	held.Close()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if n := waited.Load(); n != 1 {
		t.Fatalf("beforeWait ran %d times in all, want 1", n)
	}
}
