// Package mirror keeps the Calico resources of one kind that a controller
// owns in etcd equal to what Kubernetes says they should be.
//
//	informer events ─► Want/Unwant ─┐
//	                                ├─► queue of keys ─► workers: compare ─► Create/Update/Delete (revision-checked)
//	etcd view (syncer) ─► OnEtcdUpdate ┘
//
// Nothing is written until both sides are complete (SourceSynced and an
// in-sync etcd view); then every key of either side is compared. Each time
// the etcd view comes back in sync after an outage, a compaction or a
// restore, every key is compared again: stale objects go, missing ones
// come back. Only keys the Kind owns are ever touched.
package mirror

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"

	"github.com/calico-etcd/calico/kube-controllers/keyqueue"
)

// Key names a Calico resource; Namespace is empty for cluster-scoped kinds.
type Key struct{ Namespace, Name string }

func (k Key) String() string {
	if k.Namespace == "" {
		return k.Name
	}
	return k.Namespace + "/" + k.Name
}

// KeyOf returns the key of r.
func KeyOf(r v3.Resource) Key {
	m := r.GetObjectMeta()
	return Key{Namespace: m.Namespace, Name: m.Name}
}

// Kind says which resources of a kind a controller owns and what of them.
type Kind[T v3.Resource] struct {
	// Name labels logs and metrics ("policy", "namespace", ...).
	Name string
	// Owns reports whether the resource at k is the controller's.
	Owns func(k Key) bool
	// Same reports whether have already carries want's content.
	Same func(want, have T) bool
	// Merge returns have with want's content; it must not change have.
	Merge func(want, have T) T
}

// Store writes resources of one kind (client.Resources[T] is one).
type Store[T v3.Resource] interface {
	// Create stores a new resource; cerrors.ErrExists if the key is taken.
	Create(ctx context.Context, obj T) (T, error)
	// Update replaces it, failing with cerrors.ErrConflict if the stored
	// revision is not obj's resourceVersion.
	Update(ctx context.Context, obj T) (T, error)
	// Delete removes it at resourceVersion ("" for any).
	Delete(ctx context.Context, namespace, name, resourceVersion string) (T, error)
}

// Observer hears what a Mirror does, for metrics; nil methods are fine.
type Observer interface {
	// Wrote is called after each write with its outcome.
	Wrote(kind, op string, err error)
	// Reconciled reports one key's reconcile and how long it took.
	Reconciled(kind string, d time.Duration)
}

// Mirror reconciles one kind.
type Mirror[T v3.Resource] struct {
	kind  Kind[T]
	store Store[T]
	log   *logrus.Entry
	obs   Observer

	mu         sync.Mutex
	desired    map[Key]T
	actual     map[Key]T
	sourceDone bool
	inSync     bool

	queue *keyqueue.Queue[Key]
}

// New returns a Mirror; nothing is written before Run. obs may be nil.
func New[T v3.Resource](kind Kind[T], store Store[T], log *logrus.Entry, obs Observer) *Mirror[T] {
	m := &Mirror[T]{kind: kind, store: store, log: log.WithField("controller", kind.Name), obs: obs,
		desired: map[Key]T{}, actual: map[Key]T{}}
	var observe func(time.Duration)
	if obs != nil {
		observe = func(d time.Duration) { obs.Reconciled(kind.Name, d) }
	}
	m.queue = keyqueue.New[Key](kind.Name, 50*time.Millisecond, 30*time.Second, m.log, observe)
	return m
}

// Want records what the resource at obj's key should be.
func (m *Mirror[T]) Want(obj T) {
	obj.Default()
	k := KeyOf(obj)
	m.mu.Lock()
	m.desired[k] = obj
	m.mu.Unlock()
	m.queue.Add(k)
}

// Unwant records that no resource should be at k.
func (m *Mirror[T]) Unwant(k Key) {
	m.mu.Lock()
	delete(m.desired, k)
	m.mu.Unlock()
	m.queue.Add(k)
}

// SourceSynced says every wanted resource has been given: from now on a
// key that is not wanted is deleted.
func (m *Mirror[T]) SourceSynced() {
	m.mu.Lock()
	m.sourceDone = true
	m.mu.Unlock()
	m.Resync()
}

// OnEtcdUpdate records what etcd holds at key (r nil: nothing); keys the
// Kind does not own are ignored. It implements etcdview.Handler.
func (m *Mirror[T]) OnEtcdUpdate(key model.ResourceKey, r v3.Resource) {
	k := Key{Namespace: key.Namespace, Name: key.Name}
	if !m.kind.Owns(k) {
		return
	}
	obj, present := r.(T)
	m.mu.Lock()
	if !present {
		delete(m.actual, k)
	} else if old, ok := m.actual[k]; !ok || revision(obj) >= revision(old) {
		m.actual[k] = obj
	}
	m.mu.Unlock()
	m.queue.Add(k)
}

// OnEtcdStatus records whether the etcd view is complete; becoming
// complete compares every key. It implements etcdview.Handler.
func (m *Mirror[T]) OnEtcdStatus(inSync bool) {
	m.mu.Lock()
	was := m.inSync
	m.inSync = inSync
	m.mu.Unlock()
	if inSync && !was {
		m.Resync()
	}
}

// Resync queues every key either side knows.
func (m *Mirror[T]) Resync() {
	m.mu.Lock()
	keys := make([]Key, 0, len(m.desired)+len(m.actual))
	for k := range m.desired {
		keys = append(keys, k)
	}
	for k := range m.actual {
		if _, ok := m.desired[k]; !ok {
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	for _, k := range keys {
		m.queue.Add(k)
	}
}

// Ready reports whether both sides are complete.
func (m *Mirror[T]) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sourceDone && m.inSync
}

// QueueLen is the number of keys waiting.
func (m *Mirror[T]) QueueLen() int { return m.queue.Len() }

// Run reconciles with workers goroutines until ctx ends, comparing every
// key again each resyncEvery (0: never).
func (m *Mirror[T]) Run(ctx context.Context, workers int, resyncEvery time.Duration) {
	m.queue.Run(ctx, workers, m.sync, resyncEvery, m.Resync)
}

// sync makes etcd's resource at k what is wanted.
func (m *Mirror[T]) sync(ctx context.Context, k Key) error {
	m.mu.Lock()
	if !m.sourceDone || !m.inSync {
		m.mu.Unlock()
		return nil // queued again once both are complete
	}
	want, wanted := m.desired[k]
	have, present := m.actual[k]
	m.mu.Unlock()
	log := m.log.WithField("key", k.String())
	switch {
	case wanted && !present:
		out, err := m.store.Create(ctx, v3.Clone(want))
		m.wrote("create", err)
		if errors.Is(err, cerrors.ErrExists) {
			return err // the etcd view will show it; retried then
		}
		if err != nil {
			return err
		}
		m.noteWritten(k, out)
		log.Info("created")
	case wanted && present && !m.kind.Same(want, have):
		out, err := m.store.Update(ctx, m.kind.Merge(want, have))
		m.wrote("update", err)
		if err != nil {
			return err
		}
		m.noteWritten(k, out)
		log.Info("updated")
	case !wanted && present:
		_, err := m.store.Delete(ctx, k.Namespace, k.Name, have.GetObjectMeta().ResourceVersion)
		m.wrote("delete", err)
		if err != nil && !errors.Is(err, cerrors.ErrNotFound) {
			return err
		}
		m.mu.Lock()
		if cur, ok := m.actual[k]; ok && revision(cur) <= revision(have) {
			delete(m.actual, k)
		}
		m.mu.Unlock()
		log.Info("deleted")
	}
	return nil
}

func (m *Mirror[T]) noteWritten(k Key, out T) {
	m.mu.Lock()
	if old, ok := m.actual[k]; !ok || revision(out) >= revision(old) {
		m.actual[k] = out
	}
	m.mu.Unlock()
}

func (m *Mirror[T]) wrote(op string, err error) {
	if m.obs != nil {
		m.obs.Wrote(m.kind.Name, op, err)
	}
}

// revision is a resource's etcd revision, 0 when unknown.
func revision(r v3.Resource) int64 {
	n, _ := strconv.ParseInt(r.GetObjectMeta().ResourceVersion, 10, 64)
	return n
}
