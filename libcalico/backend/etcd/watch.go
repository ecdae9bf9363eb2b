package etcd

import (
	"context"
	"fmt"
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
func (c *Client) Watch(ctx context.Context, opts model.ListOptions, revision int64) (backend.Watcher, error) {
	prefix, err := opts.Prefix()
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	w := &watcher{events: make(chan backend.WatchEvent, 256), cancel: cancel}
	go w.run(wctx, c, prefix, revision, opts)
	return w, nil
}

func (w *watcher) run(ctx context.Context, c *Client, prefix string, revision int64, opts model.ListOptions) {
	defer close(w.events)
	defer w.Stop()
	wo := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if revision > 0 {
		wo = append(wo, clientv3.WithRev(revision+1))
	}
	// clientv3's Watch blocks until etcd confirms the watch, so open it
	// aside and keep probing meanwhile; wch stays nil (never ready) until then.
	opened := make(chan clientv3.WatchChan, 1)
	go func() { opened <- c.cli.Watch(ctx, prefix, wo...) }()
	var wch clientv3.WatchChan
	probe := time.NewTimer(c.probeInterval)
	defer probe.Stop()
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case wch = <-opened:
			opened = nil
			continue
		case resp, ok = <-wch:
		case <-probe.C:
			if err := c.probe(ctx); err != nil {
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
		if err := resp.Err(); err != nil {
			if resp.CompactRevision != 0 {
				err = fmt.Errorf("watch from compacted revision (now %d): %w", resp.CompactRevision, cerrors.ErrCompacted)
			}
			w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: err})
			return
		}
		for _, ev := range resp.Events {
			if out, ok := translate(ev, opts); ok && !w.send(ctx, out) {
				return
			}
		}
	}
	if ctx.Err() == nil {
		w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: fmt.Errorf("watch closed: %w", cerrors.ErrUnavailable)})
	}
}

// probe checks etcd answers within the client's timeout.
func (c *Client) probe(ctx context.Context) error {
	pctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.cli.Get(pctx, "/calico/", clientv3.WithCountOnly(), clientv3.WithLimit(1))
	return c.wrap(ctx, "watch health probe", err)
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
