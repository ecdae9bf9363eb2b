// Package backend defines the datastore interface every libcalico layer
// writes through: raw values at Calico's keys, with revisions and typed
// errors (package cerrors). Implementations: backend/etcd and
// backend/memory, held to one contract by backend/conformance.
package backend

import (
	"context"
	"time"

	"github.com/calico-etcd/calico/libcalico/model"
)

// KVPair is one stored value with its key and revision.
type KVPair struct {
	Key model.Key
	// Value is the stored bytes (compact JSON for every Calico object).
	Value []byte
	// Revision is the key's modification revision; 0 when not yet stored.
	Revision int64
	// TTL, when set on a write, makes the key expire unless written again.
	TTL time.Duration
}

// KVList is the result of a List.
type KVList struct {
	KVPairs []*KVPair
	// Unchanged, from a ChangeLister only: the paths of the keys the
	// caller holds as listed, neither parsed nor read.
	Unchanged []string
	// OthersUnchanged, from ListSince only: every key the caller held,
	// but for those in KVPairs, is there as the caller holds it.
	OthersUnchanged bool
	// Foreign counts the keys under the prefix that were left out as not
	// parsing or not matching the options (etcd's List and ListChanged).
	Foreign int
	// Revision is the datastore revision the list was read at.
	Revision int64
}

// EventType classifies a watch event.
type EventType int

// Watch event types.
const (
	EventAdded EventType = iota + 1
	EventModified
	EventDeleted
	// EventError carries Err; the watch has ended after it.
	EventError
)

func (t EventType) String() string {
	switch t {
	case EventAdded:
		return "added"
	case EventModified:
		return "modified"
	case EventDeleted:
		return "deleted"
	case EventError:
		return "error"
	}
	return "unknown"
}

// WatchEvent is one change seen by a Watcher.
type WatchEvent struct {
	Type EventType
	// New is the value after the change (nil for deletes).
	New *KVPair
	// Old is the value before the change, when known (nil for adds).
	Old *KVPair
	// Revision is the datastore revision of the change.
	Revision int64
	// Err is set for EventError; cerrors.ErrCompacted means the start
	// revision is gone and the caller must list again.
	Err error
}

// Watcher streams events until stopped or until an EventError.
type Watcher interface {
	// Events delivers events in revision order; it is closed after Stop or
	// after an EventError.
	Events() <-chan WatchEvent
	// Stop ends the watch and releases its resources; safe to call twice.
	Stop()
}

// Client is the datastore. Every method honours ctx and also bounds itself
// by the client's own timeout, so no call hangs when the store is down:
// it fails with a cerrors.Unavailable naming the endpoints.
type Client interface {
	// Create stores kv only if its key is absent (else cerrors.ErrExists)
	// and returns it with the new revision.
	Create(ctx context.Context, kv *KVPair) (*KVPair, error)
	// Update replaces kv only if the stored revision equals kv.Revision
	// (cerrors.ErrConflict otherwise, cerrors.ErrNotFound when absent).
	// Revision 0 updates unconditionally but still requires presence.
	Update(ctx context.Context, kv *KVPair) (*KVPair, error)
	// Apply stores kv whether or not it exists.
	Apply(ctx context.Context, kv *KVPair) (*KVPair, error)
	// Delete removes key if its revision equals revision (0: any) and
	// returns the value removed.
	Delete(ctx context.Context, key model.Key, revision int64) (*KVPair, error)
	// Get reads one key (cerrors.ErrNotFound when absent).
	Get(ctx context.Context, key model.Key) (*KVPair, error)
	// List reads every key matching opts at one revision, in key order.
	List(ctx context.Context, opts model.ListOptions) (*KVList, error)
	// Watch streams changes to keys matching opts after revision (a List's
	// Revision); revision 0 means from now.
	Watch(ctx context.Context, opts model.ListOptions, revision int64) (Watcher, error)
	// Close releases connections.
	Close() error
}

// ResetNotifier is implemented by backends that notice when the datastore
// behind them is replaced or rolled back (etcd restored from a snapshot):
// revisions read before such a reset no longer compare with revisions
// read after it, so a cache keyed by revision must list again.
type ResetNotifier interface {
	// Resets returns how many resets were noticed so far, a channel closed
	// when the next one is, and the cause of the latest (an error matching
	// cerrors.ErrDatastoreReset that says what was seen; nil before the
	// first).
	Resets() (n uint64, next <-chan struct{}, cause error)
}

// ChangeLister is implemented by backends that can list a prefix again
// sending only what changed: a client whose watch fell behind compaction
// holds most keys already, and when every client of a cluster relists at
// once, the values they hold are most of what etcd would send.
type ChangeLister interface {
	// ListChanged is List at one revision, except that a key for which
	// unchanged(path, revision) is true is returned by its path only, in
	// Unchanged. unchanged is called from the calling goroutine only,
	// once per key.
	ListChanged(ctx context.Context, opts model.ListOptions, unchanged func(path string, revision int64) bool) (*KVList, error)
	// ListSince serves a caller that holds exactly the prefix's keys as
	// they were at revision since (held of them; holds names them), having
	// listed the prefix at revision listed and followed it since, when no
	// key under the prefix at listed was left out as not matching. It
	// reads, at one revision, the keys modified after listed, with their
	// values, and how many keys the prefix has. When those show that no
	// key was deleted after since, it returns the keys modified after
	// since with OthersUnchanged; when a key was deleted (which it cannot
	// name), or one modified after listed does not match opts, it returns
	// nil, and the caller lists with ListChanged. Much cheaper than
	// ListChanged when little changed: etcd sends no key that did not.
	ListSince(ctx context.Context, opts model.ListOptions, listed, since int64, held int, holds func(path string) bool) (*KVList, error)
}
