// Package controllers holds calico-kube-controllers' controllers. Each one
// watches Kubernetes with a client-go informer and writes etcd through
// libcalico only:
//
//	policy            NetworkPolicy  ─► NetworkPolicy knp.default.<name>   (mirror)
//	namespace         Namespace      ─► Profile kns.<name>                  (mirror)
//	serviceaccount    ServiceAccount ─► Profile ksa.<ns>.<name>             (mirror)
//	workloadendpoint  Pod labels     ─► its WorkloadEndpoints' labels
//	node              Node deleted   ─► its Calico Node and all it owns     (libcalico/nodedelete)
//
// Every controller acts only once its informer has synced and the etcd
// view is complete, and compares everything again each time the etcd view
// comes back in sync.
package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/tools/cache"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"

	"github.com/calico-etcd/calico/kube-controllers/etcdview"
	"github.com/calico-etcd/calico/kube-controllers/mirror"
)

// Controller is one running controller.
type Controller interface {
	// Name is the ENABLED_CONTROLLERS name.
	Name() string
	// Run works until ctx ends; it waits for its informer first.
	Run(ctx context.Context, workers int)
	// Ready reports whether it has synced both sides.
	Ready() bool
	// QueueLen is the number of keys waiting.
	QueueLen() int
}

// Deps is what every controller is built from.
type Deps struct {
	Log *logrus.Entry
	// View is the shared etcd view; controllers register on it.
	View *etcdview.View
	// Observer hears writes and reconciles (metrics); may be nil.
	Observer mirror.Observer
	// ResyncPeriod compares everything again this often (0: never).
	ResyncPeriod time.Duration
}

// mirrored runs a mirror.Mirror fed by one informer.
type mirrored[T v3.Resource] struct {
	name     string
	m        *mirror.Mirror[T]
	informer cache.SharedIndexInformer
	resync   time.Duration
}

// newMirrored binds informer to a Mirror of kind over store: each object
// is converted by convert (ok false: it wants no Calico resource) and
// deleted ones are unwanted by keyOf.
func newMirrored[K any, T v3.Resource](d Deps, calicoKind string, kind mirror.Kind[T], store mirror.Store[T],
	informer cache.SharedIndexInformer, convert func(K) (T, bool), keyOf func(K) mirror.Key) (*mirrored[T], error) {
	m := mirror.New(kind, store, d.Log, d.Observer)
	d.View.Handle(calicoKind, m)
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { want(m, obj, convert, keyOf) },
		UpdateFunc: func(_, obj any) { want(m, obj, convert, keyOf) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if k, ok := obj.(K); ok {
				m.Unwant(keyOf(k))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: adding informer handler: %w", kind.Name, err)
	}
	return &mirrored[T]{name: kind.Name, m: m, informer: informer, resync: d.ResyncPeriod}, nil
}

func want[K any, T v3.Resource](m *mirror.Mirror[T], obj any, convert func(K) (T, bool), keyOf func(K) mirror.Key) {
	k, ok := obj.(K)
	if !ok {
		return
	}
	if r, ok := convert(k); ok {
		m.Want(r)
	} else {
		m.Unwant(keyOf(k))
	}
}

func (c *mirrored[T]) Name() string  { return c.name }
func (c *mirrored[T]) Ready() bool   { return c.m.Ready() }
func (c *mirrored[T]) QueueLen() int { return c.m.QueueLen() }

func (c *mirrored[T]) Run(ctx context.Context, workers int) {
	if !cache.WaitForCacheSync(ctx.Done(), c.informer.HasSynced) {
		return
	}
	c.m.SourceSynced()
	c.m.Run(ctx, workers, c.resync)
}

// observer returns d's reconcile-time observer for controller name.
func observer(d Deps, name string) func(time.Duration) {
	if d.Observer == nil {
		return nil
	}
	return func(t time.Duration) { d.Observer.Reconciled(name, t) }
}

// sameJSON reports whether a and b encode alike: stored values come back
// without empty lists, which a fresh conversion may have.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
