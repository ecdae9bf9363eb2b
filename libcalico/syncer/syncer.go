// Package syncer keeps a consumer in step with a set of datastore prefixes.
// It lists each prefix, watches it from the list's revision, and reports
// through two callbacks: OnStatusUpdated and OnUpdates.
//
//	                ┌─ follow(prefix 0): List ─► Watch ─► resume or relist ─┐
//	backend.Client ─┼─ follow(prefix 1): ...                                ├─► Run loop ─► cache diff ─► Callbacks
//	                └─ follow(prefix n): ...                                ┘  (one goroutine, in order)
//
// Status starts at WaitForDatastore, moves to ResyncInProgress once a list
// succeeds and to InSync once every prefix's snapshot has been delivered.
// The Run loop keeps, per prefix, the revision and a hash of the value of
// every key it reported (not the value), so a relist after a compaction or
// an outage reports only the differences: New for unknown keys, Updated
// for changed revisions or values and Deleted for keys that vanished.
//
// A watch that breaks is resumed from its last revision without leaving
// InSync, as nothing is lost. If the revision was compacted, the datastore
// stopped answering (cerrors.ErrUnavailable), or the resumed watch fails
// again before delivering anything, the prefix is relisted: the status
// goes to ResyncInProgress (WaitForDatastore while the list fails) and
// back to InSync once the differences are delivered.
//
// A datastore reset (etcd restored from a snapshot or replaced, so that
// revisions went back or belong to another cluster) relists every prefix,
// with the same status trip and a warning naming what was seen. It is
// noticed from a watch ending with cerrors.ErrDatastoreReset, from a list
// below a revision already delivered, or from the backend's
// backend.ResetNotifier. Values are compared as well as revisions on the
// relist, as the restored store may reuse a revision for another value.
// Other relists, of a store that did not go back, need only revisions:
// with a backend.ChangeLister they fetch only the values that changed,
// and a prefix the syncer holds exactly as it followed it is not listed at
// all while no key was deleted (ListSince).
//
// Every client of a cluster sees a compaction or a reset at about the
// same moment. So that their relists reach etcd spread out rather than at
// once, a prefix relists after a random wait of up to Config.RelistJitter,
// a syncer lists at most Config.MaxListing prefixes at a time, and the
// waits between failed attempts are jittered.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Status is the syncer's view of the datastore.
type Status int

// Statuses, in the order a healthy start goes through them.
const (
	// WaitForDatastore: some prefix could not be listed yet.
	WaitForDatastore Status = iota
	// ResyncInProgress: a prefix is being listed and its snapshot sent.
	ResyncInProgress
	// InSync: every prefix's snapshot has been delivered and is watched.
	InSync
)

func (s Status) String() string {
	switch s {
	case WaitForDatastore:
		return "wait-for-datastore"
	case ResyncInProgress:
		return "resync-in-progress"
	case InSync:
		return "in-sync"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// UpdateType says what happened to a key.
type UpdateType int

// Update types.
const (
	// UpdateNew: the key was not known to the consumer.
	UpdateNew UpdateType = iota + 1
	// UpdateUpdated: the key was known and has a new value.
	UpdateUpdated
	// UpdateDeleted: the key is gone (or its value no longer decodes).
	UpdateDeleted
)

func (t UpdateType) String() string {
	switch t {
	case UpdateNew:
		return "new"
	case UpdateUpdated:
		return "updated"
	case UpdateDeleted:
		return "deleted"
	}
	return fmt.Sprintf("update(%d)", int(t))
}

// Update is one change to one key.
type Update struct {
	Key model.Key
	// Value is the model.Decode result (*v3.IPPool, *model.AllocationBlock,
	// ...); nil for deletes.
	Value any
	// Revision is the key's modification revision, or for deletes the
	// revision at which the deletion was seen.
	Revision int64
	Type     UpdateType
}

// Callbacks receives the syncer's output. Both methods are called from the
// goroutine running Run, one call at a time, in datastore order per prefix.
// Updates may come in any status; InSync means that everything delivered
// so far is a complete view of every prefix.
type Callbacks interface {
	// OnStatusUpdated reports a status change; it is never called twice in
	// a row with the same status.
	OnStatusUpdated(Status)
	// OnUpdates delivers a non-empty batch of changes. The slice is not
	// reused by the syncer, so the consumer may keep it.
	OnUpdates([]Update)
}

// Defaults for Config's zero fields.
const (
	DefaultRetryInterval    = time.Second
	DefaultMaxRetryInterval = 10 * time.Second
	DefaultMaxBatchSize     = 1000
	DefaultRelistJitter     = 2 * time.Second
	DefaultMaxListing       = 2
)

// Config says what to sync and how patiently.
type Config struct {
	// Prefixes to list and watch. They must not overlap: a key matched by
	// two of them would be reported twice.
	Prefixes []model.ListOptions
	// RetryInterval is the first wait after repeated failures; it doubles
	// up to MaxRetryInterval. Defaults 1 s and 10 s.
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// MaxBatchSize caps the updates passed to one OnUpdates call
	// (default 1000).
	MaxBatchSize int
	// RelistJitter spreads the relists that every client of a cluster
	// starts at the same moment (its history compacted under them, or
	// restored): a prefix whose watch was compacted waits a random time
	// up to RelistJitter before it lists again. Default 2 s; negative for
	// none. The waits between failed attempts are jittered too (±25%).
	RelistJitter time.Duration
	// MaxListing caps the prefixes listed at once (default 2), so that a
	// relist of every prefix is a queue, not a burst.
	MaxListing int
	// Unmarshal decodes stored values (nil: encoding/json; see
	// model.Unmarshal).
	Unmarshal model.Unmarshal
}

func (c Config) withDefaults() Config {
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.MaxRetryInterval == 0 {
		c.MaxRetryInterval = max(DefaultMaxRetryInterval, c.RetryInterval)
	}
	if c.MaxBatchSize == 0 {
		c.MaxBatchSize = DefaultMaxBatchSize
	}
	if c.RelistJitter == 0 {
		c.RelistJitter = DefaultRelistJitter
	}
	if c.MaxListing == 0 {
		c.MaxListing = DefaultMaxListing
	}
	return c
}

// Validate checks the configuration after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if len(c.Prefixes) == 0 {
		return errors.New("no prefixes to sync")
	}
	for i, p := range c.Prefixes {
		if p == nil {
			return fmt.Errorf("prefix %d is nil", i)
		}
		if _, err := p.Prefix(); err != nil {
			return fmt.Errorf("prefix %d: %w", i, err)
		}
	}
	if c.RetryInterval < 0 || c.MaxRetryInterval < c.RetryInterval {
		return fmt.Errorf("retry interval %v, max %v: want 0 < interval <= max", c.RetryInterval, c.MaxRetryInterval)
	}
	if c.MaxBatchSize < 0 {
		return fmt.Errorf("max batch size %d is negative", c.MaxBatchSize)
	}
	if c.MaxListing < 0 {
		return fmt.Errorf("max listing %d is negative", c.MaxListing)
	}
	return nil
}

// Syncer lists and watches Config.Prefixes and feeds Callbacks.
type Syncer struct {
	be  backend.Client
	cfg Config
	cb  Callbacks
	log *logrus.Entry
}

// New returns a syncer; nothing happens until Run. log may be nil.
func New(be backend.Client, cfg Config, cb Callbacks, log *logrus.Entry) *Syncer {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	return &Syncer{be: be, cfg: cfg.withDefaults(), cb: cb, log: log}
}

// Run syncs until ctx is done, then stops every watch and goroutine it
// started and returns nil. It fails only on an invalid Config. Call it once:
// a second Run starts from an empty cache and reports everything as New.
func (s *Syncer) Run(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("syncer config: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel
	defer cancel()

	msgs := make(chan message, 256)
	l := &loop{s: s, status: -1, sh: newShared(), seed: maphash.MakeSeed()}
	l.sh.listing = make(chan struct{}, s.cfg.MaxListing)
	var backendReset <-chan struct{}
	if rn, ok := s.be.(backend.ResetNotifier); ok {
		l.notifier = rn
		l.backendResets, backendReset, _ = rn.Resets()
	}
	for i, opts := range s.cfg.Prefixes {
		prefix, _ := opts.Prefix() // checked by Validate
		p := &prefixState{
			name: prefix,
			log:  s.log.WithField("prefix", prefix),
			keys: map[string]cached{},
		}
		l.prefixes = append(l.prefixes, p)
		wg.Go(func() { s.follow(ctx, i, opts, l.sh, p, msgs) })
	}
	l.setStatus(WaitForDatastore)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			l.handle(m)
		case <-backendReset:
			var n uint64
			var cause error
			n, backendReset, cause = l.notifier.Resets()
			if n != l.backendResets {
				l.reset(cause)
			}
		}
	drain: // coalesce what is already queued into one batch, without waiting
		for {
			select {
			case <-ctx.Done():
				return nil
			case m := <-msgs:
				l.handle(m)
			default:
				break drain
			}
		}
		l.flush()
	}
}

// cached is what the loop remembers of a reported key.
type cached struct {
	key model.Key
	rev int64
	sum uint64 // hash of the value
}

type prefixState struct {
	name   string
	log    *logrus.Entry
	synced bool // snapshot delivered, watch running
	down   bool // the last list attempt failed
	// keys is written by the Run loop only, under mu, so that the
	// prefix's follow goroutine may read revisions (has).
	mu   sync.RWMutex
	keys map[string]cached
	// listed, under mu, is the revision of the last list when keys have
	// been exactly the prefix's keys since (none was left out as not
	// matching, every value decoded) and at most an eighth of them changed
	// since (touched), so that reading those again costs about what
	// listing keys and revisions would; 0 otherwise. applied is the
	// revision of the last list or event applied.
	listed, applied int64
	touched         map[string]struct{}
}

// exact reports, when keys are exactly the prefix's keys at revision rev
// (every event up to rev applied), how many there are and the revision of
// the list they were followed from.
func (p *prefixState) exact(rev int64) (held int, listed int64, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.keys), p.listed, p.listed > 0 && p.applied == rev
}

// followed records that the event at revision rev, for path, was applied,
// and whether keys are still exactly the prefix's.
func (p *prefixState) followed(rev int64, path string, exact bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied = max(p.applied, rev)
	if p.listed == 0 {
		return
	}
	p.touched[path] = struct{}{}
	if !exact || 8*len(p.touched) > len(p.keys) {
		p.listed, p.touched = 0, nil
	}
}

// holds reports whether the consumer has path.
func (p *prefixState) holds(path string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.keys[path]
	return ok
}

// has reports whether the consumer has path at revision rev.
func (p *prefixState) has(path string, rev int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c, ok := p.keys[path]
	return ok && c.rev == rev
}

// loop is the state of one Run, touched only by Run's goroutine but for
// sh, which the follow goroutines read.
type loop struct {
	s        *Syncer
	prefixes []*prefixState
	status   Status
	pending  []Update
	seed     maphash.Seed
	sh       *shared
	// notifier is the backend's, if it has one; backendResets is the
	// count of its resets already handled.
	notifier      backend.ResetNotifier
	backendResets uint64
}

func (l *loop) handle(m message) {
	p := l.prefixes[m.prefix]
	stale := m.gen != l.sh.gen // no lock: only this goroutine writes gen
	switch m.kind {
	case msgListFailed:
		p.down = true
		l.updateStatus()
	case msgRelisting:
		p.synced = false
		l.updateStatus()
	case msgListed:
		if stale {
			return // read before a reset; the prefix is being listed again
		}
		p.down = false
		if m.list.Revision < m.floor {
			l.reset(fmt.Errorf("prefix %s listed at revision %d, below revision %d delivered before the list: %w",
				p.name, m.list.Revision, m.floor, cerrors.ErrDatastoreReset))
			return
		}
		l.sh.deliver(m.list.Revision)
		l.updateStatus()
		l.diff(p, m.list)
		p.synced = true
		l.updateStatus()
	case msgEvent:
		if stale {
			return
		}
		l.sh.deliver(m.ev.Revision)
		l.apply(p, m.ev)
	case msgReset:
		if !stale {
			l.reset(m.err)
		}
	}
}

// reset handles a datastore reset: every prefix is listed again (the
// follow goroutines see gen move on) and the status leaves InSync until
// they all are. A reset the backend has already reported is the same one,
// so it is handled once.
func (l *loop) reset(cause error) {
	if l.notifier != nil {
		if n, _, c := l.notifier.Resets(); n != l.backendResets {
			l.backendResets = n
			if c != nil {
				cause = c
			}
		}
	}
	l.s.log.WithError(cause).Warn("Datastore reset (restored from a snapshot, or replaced); relisting every prefix")
	l.sh.bump()
	for _, p := range l.prefixes {
		p.synced = false
	}
	l.updateStatus()
}

// shared is what the Run loop shares with the follow goroutines: the
// count of resets it handled (a follow lists again, rather than resume its
// watch, once it moves on; messages from before it are stale) and the
// highest revision delivered since the last (a list started after it was
// delivered cannot be below it unless the datastore went back in time).
type shared struct {
	delivered atomic.Int64
	// listing holds a token per list in progress (Config.MaxListing).
	listing chan struct{}

	mu    sync.Mutex
	gen   uint64
	moved chan struct{} // closed when gen moves on
}

func newShared() *shared { return &shared{moved: make(chan struct{})} }

func (sh *shared) current() (uint64, <-chan struct{}) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.gen, sh.moved
}

func (sh *shared) bump() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	sh.delivered.Store(0)
	close(sh.moved)
	sh.moved = make(chan struct{})
}

// deliver raises the delivered mark; only the loop calls it.
func (sh *shared) deliver(rev int64) {
	if rev > sh.delivered.Load() {
		sh.delivered.Store(rev)
	}
}

// updateStatus reports the status the prefixes' states add up to.
func (l *loop) updateStatus() {
	all, down := true, false
	for _, p := range l.prefixes {
		if !p.synced {
			all = false
			down = down || p.down
		}
	}
	switch {
	case all:
		l.setStatus(InSync)
	case down:
		l.setStatus(WaitForDatastore)
	default:
		l.setStatus(ResyncInProgress)
	}
}

// setStatus flushes queued updates first, so a status always describes
// everything delivered before it.
func (l *loop) setStatus(st Status) {
	if st == l.status {
		return
	}
	l.flush()
	l.s.log.WithFields(logrus.Fields{"from": l.status, "to": st}).Info("Syncer status changed")
	l.status = st
	l.s.cb.OnStatusUpdated(st)
}

func (l *loop) add(u Update) {
	l.pending = append(l.pending, u)
	if len(l.pending) >= l.s.cfg.MaxBatchSize {
		l.flush()
	}
}

func (l *loop) flush() {
	if len(l.pending) == 0 {
		return
	}
	batch := l.pending
	l.pending = nil
	l.s.cb.OnUpdates(batch)
}

// diff reports the differences between a fresh list and the cache.
func (l *loop) diff(p *prefixState, list *backend.KVList) {
	before := len(p.keys)
	held := len(list.Unchanged) // keys of the cache that are listed
	exact := list.Foreign == 0
	paths := make([]string, 0, len(list.KVPairs))
	for _, kv := range list.KVPairs {
		path, err := kv.Key.Path()
		if err != nil {
			p.log.WithError(err).WithField("key", kv.Key).Warn("Skipping listed key without a path")
			exact = false
			continue
		}
		paths = append(paths, path)
		old, ok := p.keys[path]
		if ok {
			held++
			if old.rev == kv.Revision && old.sum == maphash.Bytes(l.seed, kv.Value) {
				continue
			}
		}
		exact = l.upsert(p, path, kv) && exact
	}
	if held < before && !list.OthersUnchanged {
		l.removeUnlisted(p, list, paths)
	}
	p.mu.Lock()
	p.listed, p.applied, p.touched = 0, list.Revision, nil
	if exact {
		p.listed, p.touched = list.Revision, map[string]struct{}{}
	}
	p.mu.Unlock()
	p.log.WithFields(logrus.Fields{"revision": list.Revision, "keys": len(p.keys)}).Info("Prefix listed")
}

// removeUnlisted reports the removal of every cached key that list, whose
// KVPairs have the given paths, does not hold.
func (l *loop) removeUnlisted(p *prefixState, list *backend.KVList, paths []string) {
	seen := make(map[string]struct{}, len(list.Unchanged)+len(paths))
	for _, path := range list.Unchanged {
		seen[path] = struct{}{}
	}
	for _, path := range paths {
		seen[path] = struct{}{}
	}
	var gone []string
	for path := range p.keys {
		if _, ok := seen[path]; !ok {
			gone = append(gone, path)
		}
	}
	sort.Strings(gone)
	for _, path := range gone {
		l.remove(p, path, list.Revision)
	}
}

// apply reports one watch event, skipping what the cache already has.
func (l *loop) apply(p *prefixState, ev backend.WatchEvent) {
	path, exact := l.applyEvent(p, ev)
	p.followed(ev.Revision, path, exact)
}

// applyEvent is apply's work: it returns the event's path, and false when
// keys may no longer be exactly the prefix's (a key skipped).
func (l *loop) applyEvent(p *prefixState, ev backend.WatchEvent) (string, bool) {
	switch ev.Type {
	case backend.EventAdded, backend.EventModified:
		if ev.New == nil {
			return "", false
		}
		path, err := ev.New.Key.Path()
		if err != nil {
			p.log.WithError(err).WithField("key", ev.New.Key).Warn("Skipping watched key without a path")
			return "", false
		}
		if old, ok := p.keys[path]; ok && old.rev >= ev.New.Revision {
			return path, true
		}
		return path, l.upsert(p, path, ev.New)
	case backend.EventDeleted:
		if ev.Old == nil {
			return "", false
		}
		path, err := ev.Old.Key.Path()
		if err != nil {
			return "", false
		}
		l.remove(p, path, ev.Revision)
		return path, true
	}
	return "", false
}

// upsert decodes kv and reports it as New or Updated; a value that does
// not decode is skipped, and reported Deleted if the consumer had it
// (upsert returns false).
func (l *loop) upsert(p *prefixState, path string, kv *backend.KVPair) bool {
	v, err := model.DecodeWith(l.s.cfg.Unmarshal, kv.Key, kv.Value, kv.Revision)
	if err != nil {
		p.log.WithError(err).WithFields(logrus.Fields{"key": kv.Key, "revision": kv.Revision}).
			Warn("Skipping value that does not decode")
		l.remove(p, path, kv.Revision)
		return false
	}
	t := UpdateNew
	if _, ok := p.keys[path]; ok {
		t = UpdateUpdated
	}
	p.mu.Lock()
	p.keys[path] = cached{key: kv.Key, rev: kv.Revision, sum: maphash.Bytes(l.seed, kv.Value)}
	p.mu.Unlock()
	l.add(Update{Key: kv.Key, Value: v, Revision: kv.Revision, Type: t})
	return true
}

// remove reports path Deleted if the consumer has it.
func (l *loop) remove(p *prefixState, path string, rev int64) {
	old, ok := p.keys[path]
	if !ok {
		return
	}
	p.mu.Lock()
	delete(p.keys, path)
	p.mu.Unlock()
	l.add(Update{Key: old.key, Revision: rev, Type: UpdateDeleted})
}
