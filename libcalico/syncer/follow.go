package syncer

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

type msgKind int

const (
	// msgListed carries a successful list.
	msgListed msgKind = iota + 1
	// msgListFailed says a list attempt failed; it will be retried.
	msgListFailed
	// msgRelisting says the watch is lost and the prefix will be relisted.
	msgRelisting
	// msgEvent carries one watch event (never an EventError).
	msgEvent
	// msgReset says the watch ended with cerrors.ErrDatastoreReset.
	msgReset
)

// message is what a follow goroutine tells the Run loop.
type message struct {
	prefix int
	kind   msgKind
	gen    uint64 // the loop's reset generation when the prefix was listed
	floor  int64  // for msgListed: the revision delivered before the list
	list   *backend.KVList
	ev     backend.WatchEvent
	err    error
}

// errMoved ends a watch when the Run loop has handled a reset since the
// prefix was listed.
var errMoved = errors.New("datastore reset since the prefix was listed")

// follow lists and watches one prefix until ctx is done, sending what it
// sees to out in datastore order. It lists again whenever sh's generation
// moves on.
// A relist that is not after a reset fetches only what changed since the
// consumer's copy of the prefix (p), if the backend is a
// backend.ChangeLister: with ListSince when p is exactly the prefix at the
// revision the watch reached (every event up to it applied) and little of
// it changed since its list (prefixState.exact), else with ListChanged.
func (s *Syncer) follow(ctx context.Context, idx int, opts model.ListOptions, sh *shared, p *prefixState, out chan<- message) {
	prefix, _ := opts.Prefix()
	log := s.log.WithField("prefix", prefix)
	g, moved := sh.current() // as of the last list
	send := func(m message) bool {
		m.prefix, m.gen = idx, g
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	b := backoff{first: s.cfg.RetryInterval, max: s.cfg.MaxRetryInterval, jitter: true}
	cl, _ := s.be.(backend.ChangeLister)
	var rev int64
	relist := true
	cheap := false // the next list may skip the values the consumer has
	failures := 0  // watches in a row that ended without delivering an event
	for {
		fresh := relist // this watch starts at a list's revision
		if relist {
			ng, nm := sh.current()
			if ng != g {
				cheap = false // a reset since the last list: values too
			}
			g, moved = ng, nm
			floor := sh.delivered.Load()
			select {
			case sh.listing <- struct{}{}:
			case <-ctx.Done():
				return
			}
			var list *backend.KVList
			var err error
			if cheap && cl != nil {
				if held, listed, ok := p.exact(rev); ok {
					list, err = cl.ListSince(ctx, opts, listed, rev, held, p.holds)
				}
				if list == nil && err == nil {
					list, err = cl.ListChanged(ctx, opts, p.has)
				}
			} else {
				list, err = s.be.List(ctx, opts)
			}
			<-sh.listing
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				log.WithError(err).Warn("Listing prefix failed; will retry")
				if !send(message{kind: msgListFailed}) || !sleep(ctx, b.next()) {
					return
				}
				continue
			}
			if !send(message{kind: msgListed, list: list, floor: floor}) {
				return
			}
			rev, relist, failures, cheap = list.Revision, false, 0, true
		}

		started := time.Now()
		n, last, err := s.watch(ctx, opts, rev, moved, send)
		if ctx.Err() != nil {
			return
		}
		rev = last
		if n > 0 || time.Since(started) > s.cfg.MaxRetryInterval {
			failures = 0
			b.reset()
		}
		failures++
		delay := b.next()
		compacted := errors.Is(err, cerrors.ErrCompacted)
		l := log.WithError(err).WithField("revision", rev)
		switch {
		case errors.Is(err, errMoved):
			l.Info("Datastore reset; relisting prefix")
			relist, delay, cheap = true, spread(s.cfg.RelistJitter), false
		case errors.Is(err, cerrors.ErrDatastoreReset):
			// The loop relists every prefix: wait until it has moved on,
			// then list this one again at once.
			l.Info("Watch saw a datastore reset; relisting prefix")
			if !send(message{kind: msgReset, err: err}) {
				return
			}
			select {
			case <-moved:
			case <-ctx.Done():
				return
			}
			relist, delay, cheap = true, spread(s.cfg.RelistJitter), false
		case errors.Is(err, cerrors.ErrUnavailable):
			// The datastore stopped answering: what the consumer has may
			// be stale, so it is told (ResyncInProgress, then
			// WaitForDatastore while lists fail) until a list proves
			// etcd is back.
			l.Warn("Datastore unavailable; relisting prefix")
			relist = true
			if !send(message{kind: msgRelisting}) {
				return
			}
		case compacted && !fresh:
			// A resumed watch fell behind compaction: relist soon, but
			// not in step with every other client that fell behind it.
			delay = spread(s.cfg.RelistJitter)
			fallthrough
		case compacted || failures > 1:
			l.Warn("Watch lost; relisting prefix")
			relist = true
			if !send(message{kind: msgRelisting}) {
				return
			}
		default:
			l.Info("Watch ended; resuming from its last revision")
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

// watch forwards events after rev until the watch ends or moved is
// closed. It returns how many events it sent, the last revision seen and
// why the watch ended.
func (s *Syncer) watch(ctx context.Context, opts model.ListOptions, rev int64, moved <-chan struct{}, send func(message) bool) (int, int64, error) {
	w, err := s.be.Watch(ctx, opts, rev)
	if err != nil {
		return 0, rev, err
	}
	defer w.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return n, rev, ctx.Err()
		case <-moved:
			return n, rev, errMoved
		case ev, ok := <-w.Events():
			switch {
			case !ok:
				return n, rev, errors.New("watch channel closed")
			case ev.Type == backend.EventError && ev.Err == nil:
				return n, rev, errors.New("watch ended with an error event")
			case ev.Type == backend.EventError:
				return n, rev, ev.Err
			}
			if !send(message{kind: msgEvent, ev: ev}) {
				return n, rev, ctx.Err()
			}
			n++
			rev = max(rev, ev.Revision)
		}
	}
}

// backoff yields 0 first (retry at once), then first, doubling up to max;
// with jitter each wait is drawn from ±25% around that.
type backoff struct {
	first, max, cur time.Duration
	used, jitter    bool
}

func (b *backoff) next() time.Duration {
	switch {
	case !b.used:
		b.used = true
		return 0
	case b.cur == 0:
		b.cur = b.first
	default:
		b.cur = min(2*b.cur, b.max)
	}
	if b.jitter {
		return b.cur*3/4 + spread(b.cur/2)
	}
	return b.cur
}

// spread is a random wait in [0, d); 0 when d <= 0.
func spread(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

func (b *backoff) reset() { b.cur, b.used = 0, false }

// sleep waits d unless ctx ends first; it reports whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
