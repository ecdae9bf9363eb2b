package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/nodedelete"

	"github.com/calico-etcd/calico/kube-controllers/keyqueue"
)

// NodeGrace spares a Calico node whose Kubernetes Node this process never
// saw, while it is younger than this: a host registers with Calico before
// its kubelet registers with Kubernetes.
const NodeGrace = 10 * time.Minute

// nodes deletes the Calico node of a deleted Kubernetes Node, with
// everything that belongs to it (libcalico/nodedelete). A Calico node is a
// Kubernetes Node's when its spec.orchRefs names it (orchestrator k8s);
// other Calico nodes are never touched.
type nodes struct {
	d        Deps
	c        *client.Client
	ipam     *ipam.Client
	kube     kubernetes.Interface
	informer cache.SharedIndexInformer
	queue    *keyqueue.Queue[string] // Kubernetes node names
	now      func() time.Time

	mu     sync.Mutex
	byKube map[string]map[string]*v3.Node // Kubernetes name → Calico name → node
	kubeOf map[string]string              // Calico name → Kubernetes name
	seen   map[string]bool                // Kubernetes nodes seen by the informer
	inSync bool
	synced bool
}

// NewNode returns the node controller.
func NewNode(d Deps, f informers.SharedInformerFactory, kube kubernetes.Interface, c *client.Client, ic *ipam.Client) (Controller, error) {
	inf := f.Core().V1().Nodes().Informer()
	n := &nodes{
		d: d, c: c, ipam: ic, kube: kube, informer: inf, now: time.Now,
		queue:  keyqueue.New[string]("node", 100*time.Millisecond, time.Minute, d.Log.WithField("controller", "node"), observer(d, "node")),
		byKube: map[string]map[string]*v3.Node{}, kubeOf: map[string]string{}, seen: map[string]bool{},
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if k, ok := obj.(*corev1.Node); ok {
				n.mu.Lock()
				n.seen[k.Name] = true
				n.mu.Unlock()
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if k, ok := obj.(*corev1.Node); ok {
				n.queue.Add(k.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	d.View.Handle(v3.KindNode, n)
	return n, nil
}

// kubeName returns the Kubernetes node a Calico node belongs to, or "".
func kubeName(node *v3.Node) string {
	for _, o := range node.Spec.OrchRefs {
		if o.Orchestrator == v3.OrchestratorKubernetes && o.NodeName != "" {
			return o.NodeName
		}
	}
	return ""
}

func (n *nodes) Name() string  { return "node" }
func (n *nodes) QueueLen() int { return n.queue.Len() }

func (n *nodes) Ready() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inSync && n.synced
}

// OnEtcdUpdate implements etcdview.Handler.
func (n *nodes) OnEtcdUpdate(key model.ResourceKey, r v3.Resource) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if k, ok := n.kubeOf[key.Name]; ok {
		delete(n.kubeOf, key.Name)
		delete(n.byKube[k], key.Name)
		if len(n.byKube[k]) == 0 {
			delete(n.byKube, k)
		}
	}
	node, ok := r.(*v3.Node)
	if !ok {
		return
	}
	k := kubeName(node)
	if k == "" {
		return
	}
	if n.byKube[k] == nil {
		n.byKube[k] = map[string]*v3.Node{}
	}
	n.byKube[k][node.Name] = node
	n.kubeOf[node.Name] = k
	n.queue.Add(k)
}

// OnEtcdStatus implements etcdview.Handler.
func (n *nodes) OnEtcdStatus(inSync bool) {
	n.mu.Lock()
	was := n.inSync
	n.inSync = inSync
	n.mu.Unlock()
	if inSync && !was {
		n.resync()
	}
}

func (n *nodes) resync() {
	n.mu.Lock()
	keys := make([]string, 0, len(n.byKube))
	for k := range n.byKube {
		keys = append(keys, k)
	}
	n.mu.Unlock()
	for _, k := range keys {
		n.queue.Add(k)
	}
}

func (n *nodes) Run(ctx context.Context, workers int) {
	if !cache.WaitForCacheSync(ctx.Done(), n.informer.HasSynced) {
		return
	}
	n.mu.Lock()
	n.synced = true
	n.mu.Unlock()
	n.resync()
	n.queue.Run(ctx, workers, n.sync, n.d.ResyncPeriod, n.resync)
}

// sync deletes the Calico nodes of Kubernetes node k if k is gone: gone
// from the informer's cache and, asked directly, from the API server.
func (n *nodes) sync(ctx context.Context, k string) error {
	n.mu.Lock()
	ready := n.inSync && n.synced
	seen := n.seen[k]
	var calico []*v3.Node
	for _, c := range n.byKube[k] {
		calico = append(calico, c)
	}
	n.mu.Unlock()
	if !ready || len(calico) == 0 {
		return nil
	}
	if _, exists, err := n.informer.GetStore().GetByKey(k); err != nil || exists {
		return err
	}
	_, err := n.kube.CoreV1().Nodes().Get(ctx, k, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("confirming that Kubernetes node %s is gone: %w", k, err)
	}
	var errs []error
	for _, c := range calico {
		log := n.d.Log.WithFields(map[string]any{"node": c.Name, "kubernetesNode": k})
		if !seen && n.now().Sub(c.CreationTimestamp.Time) < NodeGrace {
			log.Info("Kubernetes node not registered yet; Calico node spared for now")
			n.queue.AddAfter(k, NodeGrace)
			continue
		}
		res, err := nodedelete.Delete(ctx, n.c, n.ipam, c.Name, log)
		if n.d.Observer != nil {
			n.d.Observer.Wrote(n.Name(), "delete", err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting node %s: %w", c.Name, err))
			continue
		}
		log.WithFields(map[string]any{"endpoints": len(res.WorkloadEndpoints), "addresses": len(res.Addresses)}).
			Info("Kubernetes node deleted; its Calico node and what it owned are removed")
	}
	return errors.Join(errs...)
}
