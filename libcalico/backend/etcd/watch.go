package etcd

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

type watcher struct {
	events chan backend.WatchEvent
	cancel context.CancelFunc
	once   sync.Once
}

func (w *watcher) Events() <-chan backend.WatchEvent { return w.events }
func (w *watcher) Stop()                             { w.once.Do(w.cancel) }

// Watch implements backend.Client. It returns at once: the etcd watch is
// opened by the watcher's goroutine, so a down etcd cannot block the call.
// The watch ends with cerrors.ErrDatastoreReset when the client notices
// that etcd was restored from a snapshot or replaced (see Resets), and on
// its own when etcd turns out to be below revision (read before a reset).
func (c *Client) Watch(ctx context.Context, opts model.ListOptions, revision int64) (backend.Watcher, error) {
	prefix, err := opts.Prefix()
	if err != nil {
		return nil, err
	}
	_, reset, _ := c.Resets()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	w := &watcher{events: make(chan backend.WatchEvent, 256), cancel: cancel}
	go w.run(wctx, c, prefix, revision, opts, reset)
	return w, nil
}

// opened is a watch channel once etcd confirmed the watch, with the token
// it was opened with.
type opened struct {
	wch clientv3.WatchChan
	tok string
	err error
}

func (w *watcher) run(ctx context.Context, c *Client, prefix string, revision int64, opts model.ListOptions, reset <-chan struct{}) {
	defer close(w.events)
	defer w.Stop()
	wo := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify()}
	if revision > 0 {
		wo = append(wo, clientv3.WithRev(revision+1))
	}
	// seen is the highest revision this watch knows etcd has reached: a
	// linearizable probe answering below it means etcd went back in time.
	seen := revision
	// clientv3's Watch blocks until etcd confirms the watch, so open it
	// aside and keep probing meanwhile; wch stays nil (never ready) until then.
	open := make(chan opened, 1)
	go func() { open <- c.openWatch(ctx, prefix, wo) }()
	var wch clientv3.WatchChan
	var tok string
	probe := time.NewTimer(c.probeInterval)
	defer probe.Stop()
	// wasReset ends the watch if the client noticed a reset, before
	// anything more is delivered.
	wasReset := func() bool {
		select {
		case <-reset:
			_, _, cause := c.Resets()
			w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: cause})
			return true
		default:
			return false
		}
	}
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case o := <-open:
			open = nil
			if o.err != nil {
				w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: c.wrap(ctx, "watch "+prefix, o.err)})
				return
			}
			wch, tok = o.wch, o.tok
			continue
		case <-reset:
			wasReset()
			return
		case resp, ok = <-wch:
		case <-probe.C:
			err := c.probe(ctx, seen)
			if wasReset() {
				return
			}
			if err != nil {
				w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: err})
				return
			}
			probe.Reset(c.probeInterval)
			continue
		case <-ctx.Done():
			return
		}
		if !ok {
			break
		}
		probe.Reset(c.probeInterval)
		c.ident.observe(resp.Header, c.ident.start(), false)
		if wasReset() { // this very answer may be another etcd's
			return
		}
		if resp.Header.GetClusterId() != 0 && resp.Header.GetRevision() < seen {
			// Below what this watch started from or saw: a member lagging
			// behind, or etcd restored from a snapshot. Ask at once.
			probe.Reset(0)
		}
		if err := resp.Err(); err != nil {
			if c.auth != nil && tokenRejected(err) {
				c.auth.forget(tok)
			}
			if resp.CompactRevision != 0 {
				err = fmt.Errorf("watch from compacted revision (now %d): %w", resp.CompactRevision, cerrors.ErrCompacted)
			}
			w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: err})
			return
		}
		seen = max(seen, resp.Header.GetRevision())
		for _, ev := range resp.Events {
			seen = max(seen, ev.Kv.ModRevision)
			if out, ok := translate(ev, opts); ok && !w.send(ctx, out) {
				return
			}
		}
	}
	if ctx.Err() == nil {
		w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: fmt.Errorf("watch closed: %w", cerrors.ErrUnavailable)})
	}
}

// openWatch opens the etcd watch, with a token in its context when the
// client authenticates (clientv3 keys its watch streams by context
// metadata, so a renewed token opens a new stream).
func (c *Client) openWatch(ctx context.Context, prefix string, wo []clientv3.OpOption) opened {
	var tok string
	if c.auth != nil {
		var err error
		if tok, err = c.auth.token(ctx, c.cli.ActiveConnection(), nil); err != nil {
			return opened{err: err}
		}
		ctx = withToken(ctx, tok)
	}
	return opened{wch: c.cli.Watch(ctx, prefix, wo...), tok: tok}
}

// probe checks etcd answers within the client's timeout, at a revision
// not below seen. The client notices a reset from the answer if it is
// below a revision the client saw; if it is only below seen, the watch's
// start revision was read before a reset, and only this watch ends.
//
// One probe serves every watch of the client that asks within half a
// probe interval of it, as they share the connection it tests: a client
// with a dozen idle watches sends one probe, not a dozen, per interval.
func (c *Client) probe(ctx context.Context, seen int64) error {
	rev, err := c.prober.answer(ctx, seen, c.probeInterval/2, c.probeOnce)
	if err != nil {
		return c.wrap(ctx, "watch health probe", err)
	}
	if rev < seen {
		return fmt.Errorf("etcd at %s is at revision %d, below revision %d this watch started from or saw (restored from a snapshot): %w",
			strings.Join(c.endpoints, ","), rev, seen, cerrors.ErrDatastoreReset)
	}
	return nil
}

// probeOnce asks etcd for its revision (a linearizable read of nothing).
func (c *Client) probeOnce() (int64, error) {
	pctx, cancel := c.call(leaderCtx(context.Background()))
	defer cancel()
	var resp *clientv3.GetResponse
	err := attempts(pctx, func(actx context.Context, _ bool) (err error) {
		st := c.ident.start()
		if resp, err = c.cli.Get(actx, "/calico/", clientv3.WithCountOnly(), clientv3.WithLimit(1)); err == nil {
			c.ident.observe(resp.Header, st, true)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// prober shares probes between a client's watches.
type prober struct {
	mu      sync.Mutex
	running chan struct{} // closed when the probe in flight ends
	okAt    time.Time     // start of the last probe that succeeded
	okRev   int64
	lastErr error // of the last probe
}

// answer returns a revision etcd answered at: the last probe's if it
// succeeded within fresh and is not below seen, else a new probe's (or,
// if one is in flight, that one's outcome).
func (p *prober) answer(ctx context.Context, seen int64, fresh time.Duration, probe func() (int64, error)) (int64, error) {
	waited := false
	for {
		p.mu.Lock()
		if !p.okAt.IsZero() && time.Since(p.okAt) < fresh && p.okRev >= seen {
			rev := p.okRev
			p.mu.Unlock()
			return rev, nil
		}
		if waited && p.running == nil && p.lastErr != nil {
			err := p.lastErr
			p.mu.Unlock()
			return 0, err
		}
		if p.running == nil {
			done := make(chan struct{})
			p.running = done
			p.mu.Unlock()
			start := time.Now()
			rev, err := probe()
			p.mu.Lock()
			if err == nil {
				p.okAt, p.okRev = start, rev
			}
			p.lastErr, p.running = err, nil
			close(done)
			p.mu.Unlock()
			return rev, err
		}
		done := p.running
		p.mu.Unlock()
		select {
		case <-done:
			waited = true
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func translate(ev *clientv3.Event, opts model.ListOptions) (backend.WatchEvent, bool) {
	k := model.ParseKey(string(ev.Kv.Key))
	if k == nil || !opts.Matches(k) {
		return backend.WatchEvent{}, false
	}
	out := backend.WatchEvent{Revision: ev.Kv.ModRevision}
	if ev.PrevKv != nil {
		out.Old = &backend.KVPair{Key: k, Value: ev.PrevKv.Value, Revision: ev.PrevKv.ModRevision}
	}
	switch ev.Type {
	case mvccpb.PUT:
		out.Type = backend.EventModified
		if ev.IsCreate() {
			out.Type = backend.EventAdded
		}
		out.New = &backend.KVPair{Key: k, Value: ev.Kv.Value, Revision: ev.Kv.ModRevision}
	case mvccpb.DELETE:
		out.Type = backend.EventDeleted
		if out.Old == nil {
			out.Old = &backend.KVPair{Key: k}
		}
	}
	return out, true
}

func (w *watcher) send(ctx context.Context, ev backend.WatchEvent) bool {
	select {
	case w.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func quietLogger() *zap.Logger { return zap.NewNop() }
