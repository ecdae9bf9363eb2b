package memory

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// watcher queues events without bound and feeds them to its channel from
// one goroutine, so publishers never block under the store lock.
type watcher struct {
	store  *Store
	prefix string
	opts   model.ListOptions
	events chan backend.WatchEvent

	mu     sync.Mutex
	queue  []backend.WatchEvent
	wake   chan struct{}
	done   chan struct{}
	once   sync.Once
	failed bool
}

func (w *watcher) Events() <-chan backend.WatchEvent { return w.events }

func (w *watcher) Stop() {
	w.once.Do(func() {
		close(w.done)
		w.store.mu.Lock()
		delete(w.store.watchers, w)
		w.store.mu.Unlock()
	})
}

func (w *watcher) push(ev backend.WatchEvent) {
	w.mu.Lock()
	if !w.failed {
		w.queue = append(w.queue, ev)
		if ev.Type == backend.EventError {
			w.failed = true
		}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) fail(err error) { w.push(backend.WatchEvent{Type: backend.EventError, Err: err}) }

func (w *watcher) run() {
	defer close(w.events)
	for {
		w.mu.Lock()
		q := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, ev := range q {
			select {
			case w.events <- ev:
			case <-w.done:
				return
			}
			if ev.Type == backend.EventError {
				go w.Stop()
				return
			}
		}
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
	}
}

func (w *watcher) wants(p string, ev backend.WatchEvent) bool {
	if !strings.HasPrefix(p, w.prefix) {
		return false
	}
	k := ev.New
	if k == nil {
		k = ev.Old
	}
	return k != nil && w.opts.Matches(k.Key)
}

// publish records a change and hands it to matching watchers; s.mu held.
func (s *Store) publish(p string, ev backend.WatchEvent) {
	s.history = append(s.history, change{path: p, ev: ev})
	if len(s.history) > maxHistory {
		drop := len(s.history) - maxHistory/2
		s.compacted = s.history[drop-1].ev.Revision
		s.history = append([]change(nil), s.history[drop:]...)
	}
	for w := range s.watchers {
		if w.wants(p, ev) {
			w.push(ev)
		}
	}
}

// Watch implements backend.Client.
func (s *Store) Watch(ctx context.Context, opts model.ListOptions, revision int64) (backend.Watcher, error) {
	prefix, err := opts.Prefix()
	if err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	w := &watcher{store: s, prefix: prefix, opts: opts, events: make(chan backend.WatchEvent),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	if revision > 0 && revision < s.compacted {
		w.fail(fmt.Errorf("watch from revision %d, compacted at %d: %w", revision, s.compacted, cerrors.ErrCompacted))
	} else if revision > 0 {
		for _, c := range s.history {
			if c.ev.Revision > revision && w.wants(c.path, c.ev) {
				w.push(c.ev)
			}
		}
	}
	s.watchers[w] = struct{}{}
	go w.run()
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.done:
		}
	}()
	return w, nil
}
