// Package etcdview keeps the controllers' view of the Calico resources they
// read from etcd: one libcalico syncer over the kinds asked for, whose
// updates go to the handlers of each kind, in datastore order. The syncer
// lists, watches, and relists after a compaction or an outage, reporting
// only the differences; the handlers hear when the view is complete again.
package etcdview

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// Handler receives the view of one kind.
type Handler interface {
	// OnEtcdUpdate gives the resource now at key, or nil if there is none.
	// The resource carries its revision as resourceVersion.
	OnEtcdUpdate(key model.ResourceKey, r v3.Resource)
	// OnEtcdStatus reports whether the view is complete (in sync).
	OnEtcdStatus(inSync bool)
}

// View dispatches one syncer's updates by kind.
type View struct {
	be       backend.Client
	log      *logrus.Entry
	handlers map[string][]Handler
	kinds    []string

	mu     sync.Mutex
	inSync bool
	// OnStatus, when set, hears every status change (for health).
	OnStatus func(syncer.Status)
}

// New returns a View over be; add handlers before Run.
func New(be backend.Client, log *logrus.Entry) *View {
	return &View{be: be, log: log.WithField("component", "etcdview"), handlers: map[string][]Handler{}}
}

// Handle registers h for kind.
func (v *View) Handle(kind string, h Handler) {
	if _, ok := v.handlers[kind]; !ok {
		v.kinds = append(v.kinds, kind)
	}
	v.handlers[kind] = append(v.handlers[kind], h)
}

// InSync reports whether the view is complete.
func (v *View) InSync() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.inSync
}

// Run syncs until ctx ends.
func (v *View) Run(ctx context.Context) error {
	if len(v.kinds) == 0 {
		<-ctx.Done()
		return nil
	}
	var prefixes []model.ListOptions
	for _, k := range v.kinds {
		prefixes = append(prefixes, model.ResourceListOptions{Kind: k})
	}
	s := syncer.New(v.be, syncer.Config{Prefixes: prefixes}, callbacks{v}, v.log)
	if err := s.Run(ctx); err != nil {
		return fmt.Errorf("etcd view: %w", err)
	}
	return nil
}

type callbacks struct{ v *View }

func (c callbacks) OnStatusUpdated(s syncer.Status) {
	v := c.v
	in := s == syncer.InSync
	v.mu.Lock()
	v.inSync = in
	v.mu.Unlock()
	if v.OnStatus != nil {
		v.OnStatus(s)
	}
	for _, k := range v.kinds {
		for _, h := range v.handlers[k] {
			h.OnEtcdStatus(in)
		}
	}
}

func (c callbacks) OnUpdates(ups []syncer.Update) {
	for _, u := range ups {
		k, ok := u.Key.(model.ResourceKey)
		if !ok {
			continue
		}
		var r v3.Resource
		if u.Type != syncer.UpdateDeleted {
			if r, ok = u.Value.(v3.Resource); !ok {
				continue
			}
			r.GetObjectMeta().ResourceVersion = strconv.FormatInt(u.Revision, 10)
		}
		for _, h := range c.v.handlers[k.Kind] {
			h.OnEtcdUpdate(k, r)
		}
	}
}
