package syncer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

// faultyBackend wraps a real backend so a test can end its watches with an
// error, hold new watches until released, and count failed lists.
type faultyBackend struct {
	backend.Client
	lists    atomic.Int64
	listErrs atomic.Int64

	mu       sync.Mutex
	watchers []*breakable
	hold     chan struct{} // non-nil: Watch waits for it to close
	held     chan heldWatch
}

// heldWatch is a Watch call waiting in hold.
type heldWatch struct {
	prefix string
	rev    int64
}

func newFaulty(be backend.Client) *faultyBackend {
	return &faultyBackend{Client: be, held: make(chan heldWatch, 16)}
}

func (f *faultyBackend) List(ctx context.Context, opts model.ListOptions) (*backend.KVList, error) {
	f.lists.Add(1)
	l, err := f.Client.List(ctx, opts)
	if err != nil {
		f.listErrs.Add(1)
	}
	return l, err
}

// holdWatches makes later Watch calls wait until release is called.
func (f *faultyBackend) holdWatches() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	f.hold = ch
	return func() {
		f.mu.Lock()
		f.hold = nil
		f.mu.Unlock()
		close(ch)
	}
}

// breakWatches ends every live watch under prefix with err.
func (f *faultyBackend) breakWatches(opts model.ListOptions, err error) int {
	prefix, _ := opts.Prefix()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.watchers {
		if w.prefix == prefix {
			w.fail(err)
			n++
		}
	}
	return n
}

// watches counts the watches ever started under opts' prefix.
func (f *faultyBackend) watches(opts model.ListOptions) int {
	prefix, _ := opts.Prefix()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.watchers {
		if w.prefix == prefix {
			n++
		}
	}
	return n
}

func (f *faultyBackend) Watch(ctx context.Context, opts model.ListOptions, rev int64) (backend.Watcher, error) {
	prefix, _ := opts.Prefix()
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		select {
		case f.held <- heldWatch{prefix: prefix, rev: rev}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	inner, err := f.Client.Watch(ctx, opts, rev)
	if err != nil {
		return nil, err
	}
	w := &breakable{prefix: prefix, inner: inner, events: make(chan backend.WatchEvent),
		brk: make(chan error, 1), stop: make(chan struct{})}
	f.mu.Lock()
	f.watchers = append(f.watchers, w)
	f.mu.Unlock()
	go w.run()
	return w, nil
}

// breakable forwards a watcher's events until told to fail.
type breakable struct {
	prefix string
	inner  backend.Watcher
	events chan backend.WatchEvent
	brk    chan error
	stop   chan struct{}
	once   sync.Once
}

func (w *breakable) Events() <-chan backend.WatchEvent { return w.events }

func (w *breakable) Stop() {
	w.once.Do(func() {
		close(w.stop)
		w.inner.Stop()
	})
}

func (w *breakable) fail(err error) {
	select {
	case w.brk <- err:
	default:
	}
}

func (w *breakable) run() {
	defer close(w.events)
	for {
		var ev backend.WatchEvent
		select {
		case e, ok := <-w.inner.Events():
			if !ok {
				return
			}
			ev = e
		case err := <-w.brk:
			w.inner.Stop()
			ev = backend.WatchEvent{Type: backend.EventError, Err: err}
		case <-w.stop:
			return
		}
		select {
		case w.events <- ev:
		case <-w.stop:
			return
		}
		if ev.Type == backend.EventError {
			return
		}
	}
}

// relisting is a faultyBackend over a backend.ChangeLister that counts
// how its relists were served.
type relisting struct {
	*faultyBackend
	cl                       backend.ChangeLister
	since, sinceNil, changed atomic.Int64
}

func (r *relisting) ListChanged(ctx context.Context, opts model.ListOptions, unchanged func(string, int64) bool) (*backend.KVList, error) {
	r.changed.Add(1)
	return r.cl.ListChanged(ctx, opts, unchanged)
}

func (r *relisting) ListSince(ctx context.Context, opts model.ListOptions, listed, since int64, held int, holds func(string) bool) (*backend.KVList, error) {
	l, err := r.cl.ListSince(ctx, opts, listed, since, held, holds)
	if l == nil && err == nil {
		r.sinceNil.Add(1)
	} else {
		r.since.Add(1)
	}
	return l, err
}

// want fails t unless the relists so far were since by ListSince, missed
// by ListSince, and changed by ListChanged.
func (r *relisting) want(t *testing.T, since, missed, changed int64) {
	t.Helper()
	if r.since.Load() != since || r.sinceNil.Load() != missed || r.changed.Load() != changed {
		t.Fatalf("relists: %d by ListSince, %d ListSince misses, %d by ListChanged; want %d, %d, %d",
			r.since.Load(), r.sinceNil.Load(), r.changed.Load(), since, missed, changed)
	}
}
