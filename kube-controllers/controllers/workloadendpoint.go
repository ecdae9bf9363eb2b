package controllers

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/kubeconv"
	"github.com/calico-etcd/calico/libcalico/model"

	"github.com/calico-etcd/calico/kube-controllers/keyqueue"
)

// podKey is a pod's namespace and name.
type podKey struct{ ns, name string }

// workloadEndpoints copies each pod's labels (and service account) onto
// the WorkloadEndpoints the CNI plugin wrote for it. It never creates or
// deletes endpoints: the CNI plugin and the node cascade own those.
type workloadEndpoints struct {
	d        Deps
	c        *client.Client
	informer cache.SharedIndexInformer
	queue    *keyqueue.Queue[podKey]

	mu     sync.Mutex
	byPod  map[podKey]map[string]*v3.WorkloadEndpoint // endpoint name → endpoint
	podOf  map[podKey]podKey                          // endpoint (namespace, name) → its pod
	inSync bool
	synced bool
}

// NewWorkloadEndpoint returns the workloadendpoint controller.
func NewWorkloadEndpoint(d Deps, f informers.SharedInformerFactory, c *client.Client) (Controller, error) {
	inf := f.Core().V1().Pods().Informer()
	// Only labels, service account and names matter: keep the cache small.
	if err := inf.SetTransform(slimPod); err != nil {
		return nil, err
	}
	w := &workloadEndpoints{
		d: d, c: c, informer: inf, byPod: map[podKey]map[string]*v3.WorkloadEndpoint{}, podOf: map[podKey]podKey{},
		queue: keyqueue.New[podKey]("workloadendpoint", 50*time.Millisecond, 30*time.Second,
			d.Log.WithField("controller", "workloadendpoint"), observer(d, "workloadendpoint")),
	}
	enqueue := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if p, ok := obj.(*corev1.Pod); ok {
			w.queue.Add(podKey{p.Namespace, p.Name})
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	d.View.Handle(v3.KindWorkloadEndpoint, w)
	return w, nil
}

// slimPod drops what the controller never reads.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, Labels: p.Labels,
			ResourceVersion: p.ResourceVersion},
		Spec: corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName, NodeName: p.Spec.NodeName},
	}, nil
}

func (w *workloadEndpoints) Name() string  { return "workloadendpoint" }
func (w *workloadEndpoints) QueueLen() int { return w.queue.Len() }

func (w *workloadEndpoints) Ready() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inSync && w.synced
}

// OnEtcdUpdate implements etcdview.Handler.
func (w *workloadEndpoints) OnEtcdUpdate(key model.ResourceKey, r v3.Resource) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ek := podKey{key.Namespace, key.Name}
	if pk, ok := w.podOf[ek]; ok {
		delete(w.podOf, ek)
		delete(w.byPod[pk], key.Name)
		if len(w.byPod[pk]) == 0 {
			delete(w.byPod, pk)
		}
	}
	ep, ok := r.(*v3.WorkloadEndpoint)
	if !ok || ep.Spec.Orchestrator != v3.OrchestratorKubernetes || ep.Spec.Pod == "" {
		return
	}
	pk := podKey{ep.Namespace, ep.Spec.Pod}
	if w.byPod[pk] == nil {
		w.byPod[pk] = map[string]*v3.WorkloadEndpoint{}
	}
	w.byPod[pk][ep.Name] = ep
	w.podOf[ek] = pk
	w.queue.Add(pk)
}

// OnEtcdStatus implements etcdview.Handler.
func (w *workloadEndpoints) OnEtcdStatus(inSync bool) {
	w.mu.Lock()
	was := w.inSync
	w.inSync = inSync
	w.mu.Unlock()
	if inSync && !was {
		w.resync()
	}
}

func (w *workloadEndpoints) resync() {
	w.mu.Lock()
	keys := make([]podKey, 0, len(w.byPod))
	for k := range w.byPod {
		keys = append(keys, k)
	}
	w.mu.Unlock()
	for _, k := range keys {
		w.queue.Add(k)
	}
}

func (w *workloadEndpoints) Run(ctx context.Context, workers int) {
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return
	}
	w.mu.Lock()
	w.synced = true
	w.mu.Unlock()
	w.resync()
	w.queue.Run(ctx, workers, w.sync, w.d.ResyncPeriod, w.resync)
}

// sync gives the pod's endpoints the pod's labels.
func (w *workloadEndpoints) sync(ctx context.Context, k podKey) error {
	w.mu.Lock()
	ready := w.inSync && w.synced
	var eps []*v3.WorkloadEndpoint
	for _, ep := range w.byPod[k] {
		eps = append(eps, ep)
	}
	w.mu.Unlock()
	if !ready || len(eps) == 0 {
		return nil
	}
	obj, exists, err := w.informer.GetStore().GetByKey(k.ns + "/" + k.name)
	if err != nil || !exists {
		return err // a deleted pod's endpoints go with its sandbox
	}
	pod := obj.(*corev1.Pod)
	labels := kubeconv.EndpointLabels(pod)
	var errs []error
	for _, ep := range eps {
		if maps.Equal(ep.Labels, labels) && ep.Spec.ServiceAccountName == pod.Spec.ServiceAccountName {
			continue
		}
		up := v3.Clone(ep)
		up.Labels = maps.Clone(labels)
		up.Spec.ServiceAccountName = pod.Spec.ServiceAccountName
		out, err := w.c.WorkloadEndpoints().Update(ctx, up)
		if w.d.Observer != nil {
			w.d.Observer.Wrote(w.Name(), "update", err)
		}
		if errors.Is(err, cerrors.ErrNotFound) {
			continue // its sandbox is gone
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.OnEtcdUpdate(model.ResourceKey{Kind: v3.KindWorkloadEndpoint, Namespace: out.Namespace, Name: out.Name}, out)
		w.d.Log.WithField("endpoint", out.Namespace+"/"+out.Name).Debug("endpoint labels updated")
	}
	return errors.Join(errs...)
}
