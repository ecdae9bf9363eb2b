package etcd

import (
	"context"
	"fmt"
	"sync"

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

// Watch implements backend.Client. The watch requires a leader, so a
// partitioned member ends it with an error instead of going silent.
func (c *Client) Watch(ctx context.Context, opts model.ListOptions, revision int64) (backend.Watcher, error) {
	prefix, err := opts.Prefix()
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wo := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if revision > 0 {
		wo = append(wo, clientv3.WithRev(revision+1))
	}
	w := &watcher{events: make(chan backend.WatchEvent, 256), cancel: cancel}
	wch := c.cli.Watch(wctx, prefix, wo...)
	go w.run(wctx, wch, opts)
	return w, nil
}

func (w *watcher) run(ctx context.Context, wch clientv3.WatchChan, opts model.ListOptions) {
	defer close(w.events)
	defer w.Stop()
	for resp := range wch {
		if err := resp.Err(); err != nil {
			if resp.CompactRevision != 0 {
				err = fmt.Errorf("watch from compacted revision (now %d): %w", resp.CompactRevision, cerrors.ErrCompacted)
			}
			w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: err})
			return
		}
		for _, ev := range resp.Events {
			k := model.ParseKey(string(ev.Kv.Key))
			if k == nil || !opts.Matches(k) {
				continue
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
			if !w.send(ctx, out) {
				return
			}
		}
	}
	if ctx.Err() == nil {
		w.send(ctx, backend.WatchEvent{Type: backend.EventError, Err: fmt.Errorf("watch closed: %w", cerrors.ErrUnavailable)})
	}
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
