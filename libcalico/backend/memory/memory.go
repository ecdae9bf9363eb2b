// Package memory implements backend.Client in process memory, with etcd's
// revision, transaction and watch semantics. It is for unit tests of
// logic above the datastore; it passes the same conformance suite as etcd.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

type entry struct {
	key     model.Key
	value   []byte
	mod     int64
	expires time.Time
}

type change struct {
	path string
	ev   backend.WatchEvent
}

// Store is an in-memory datastore.
type Store struct {
	mu        sync.Mutex
	rev       int64
	data      map[string]*entry
	history   []change
	compacted int64
	watchers  map[*watcher]struct{}
	closed    bool
	sweeping  bool
	stop      chan struct{}
}

// maxHistory bounds the watch history kept for replay; older changes are
// compacted away as etcd's auto-compaction would.
const maxHistory = 10000

var _ backend.Client = (*Store)(nil)

// New returns an empty store at revision 1.
func New() *Store {
	return &Store{rev: 1, data: map[string]*entry{}, watchers: map[*watcher]struct{}{}, stop: make(chan struct{})}
}

func keyPath(k model.Key) (string, error) {
	if k == nil {
		return "", errors.New("nil key")
	}
	p, err := k.Path()
	if err != nil {
		return "", fmt.Errorf("key %s: %w", k, err)
	}
	return p, nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func (s *Store) kv(e *entry) *backend.KVPair {
	return &backend.KVPair{Key: e.key, Value: clone(e.value), Revision: e.mod}
}

// begin locks the store and expires stale leases; callers unlock.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return &cerrors.Unavailable{Endpoints: []string{"memory"}, Err: errors.New("store closed")}
	}
	s.expire()
	return nil
}

// expire removes keys whose TTL has passed; s.mu held.
func (s *Store) expire() {
	now := time.Now()
	for p, e := range s.data {
		if !e.expires.IsZero() && now.After(e.expires) {
			s.remove(p, e)
		}
	}
}

// sweep expires keys on a timer so watchers see TTL deletes promptly;
// started by the first write with a TTL, stopped by Close.
func (s *Store) sweep() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.mu.Lock()
			s.expire()
			s.mu.Unlock()
		case <-s.stop:
			return
		}
	}
}

func (s *Store) put(p string, kv *backend.KVPair) *backend.KVPair {
	s.rev++
	old := s.data[p]
	e := &entry{key: kv.Key, value: clone(kv.Value), mod: s.rev}
	if kv.TTL > 0 {
		e.expires = time.Now().Add(kv.TTL)
		if !s.sweeping {
			s.sweeping = true
			go s.sweep()
		}
	}
	s.data[p] = e
	ev := backend.WatchEvent{Type: backend.EventAdded, New: s.kv(e), Revision: s.rev}
	if old != nil {
		ev.Type = backend.EventModified
		ev.Old = s.kv(old)
	}
	s.publish(p, ev)
	out := *kv
	out.Value = clone(kv.Value)
	out.Revision = s.rev
	return &out
}

func (s *Store) remove(p string, e *entry) {
	s.rev++
	delete(s.data, p)
	s.publish(p, backend.WatchEvent{Type: backend.EventDeleted, Old: s.kv(e), Revision: s.rev})
}

// Create implements backend.Client.
func (s *Store) Create(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := keyPath(kv.Key)
	if err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if _, ok := s.data[p]; ok {
		return nil, &cerrors.Exists{Key: kv.Key.String()}
	}
	return s.put(p, kv), nil
}

// check applies etcd's guard: present, and at revision rev unless rev is 0.
func (s *Store) check(p string, k model.Key, rev int64) (*entry, error) {
	e, ok := s.data[p]
	if !ok {
		return nil, &cerrors.NotFound{Key: k.String()}
	}
	if rev != 0 && e.mod != rev {
		return nil, &cerrors.Conflict{Key: k.String(), Revision: rev}
	}
	return e, nil
}

// Update implements backend.Client.
func (s *Store) Update(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := keyPath(kv.Key)
	if err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if _, err := s.check(p, kv.Key, kv.Revision); err != nil {
		return nil, err
	}
	return s.put(p, kv), nil
}

// Apply implements backend.Client.
func (s *Store) Apply(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := keyPath(kv.Key)
	if err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return s.put(p, kv), nil
}

// Delete implements backend.Client.
func (s *Store) Delete(ctx context.Context, key model.Key, revision int64) (*backend.KVPair, error) {
	p, err := keyPath(key)
	if err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, err := s.check(p, key, revision)
	if err != nil {
		return nil, err
	}
	s.remove(p, e)
	return s.kv(e), nil
}

// Get implements backend.Client.
func (s *Store) Get(ctx context.Context, key model.Key) (*backend.KVPair, error) {
	p, err := keyPath(key)
	if err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, ok := s.data[p]
	if !ok {
		return nil, &cerrors.NotFound{Key: key.String()}
	}
	return s.kv(e), nil
}

// List implements backend.Client.
func (s *Store) List(ctx context.Context, opts model.ListOptions) (*backend.KVList, error) {
	prefix, err := opts.Prefix()
	if err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	paths := make([]string, 0)
	for p, e := range s.data {
		if strings.HasPrefix(p, prefix) && opts.Matches(e.key) {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	out := &backend.KVList{Revision: s.rev, KVPairs: make([]*backend.KVPair, len(paths))}
	for i, p := range paths {
		out.KVPairs[i] = s.kv(s.data[p])
	}
	return out, nil
}

// Compact drops watch history up to the current revision, as etcd's
// compaction does; later watches from older revisions fail.
func (s *Store) Compact() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted = s.rev
	s.history = nil
	return s.rev
}

// Close implements backend.Client; it ends every watch.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stop)
	for w := range s.watchers {
		w.fail(&cerrors.Unavailable{Endpoints: []string{"memory"}, Err: errors.New("store closed")})
	}
	return nil
}
