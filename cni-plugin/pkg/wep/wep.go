// Package wep builds, writes and deletes the WorkloadEndpoint through which
// felix learns of a pod's interface, and the per-network Profile the
// endpoint names, the way Calico's CNI plugin does in etcd mode.
//
// An endpoint is owned by the container that wrote it (spec.containerID):
// a Kubernetes pod keeps its endpoint name across sandboxes, so the ADD of
// a new sandbox replaces the endpoint an old one left, and the late DEL of
// the old sandbox must leave the new endpoint alone.
package wep

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
)

// IDs identify a workload endpoint.
type IDs struct {
	Node         string
	Orchestrator string // v3.OrchestratorKubernetes or v3.OrchestratorCNI
	Namespace    string // the pod's namespace for k8s, "default" otherwise
	Pod          string // k8s only
	ContainerID  string
	Endpoint     string // CNI_IFNAME
}

// NewIDs returns the identifiers of a CNI attachment: orchestrator "k8s"
// when the runtime named the pod (K8S_POD_NAMESPACE and K8S_POD_NAME in
// CNI_ARGS), else "cni".
func NewIDs(node, containerID, ifName, k8sNamespace, k8sPod string) IDs {
	ids := IDs{Node: node, ContainerID: containerID, Endpoint: ifName,
		Orchestrator: v3.OrchestratorCNI, Namespace: v3.DefaultNamespace}
	if k8sNamespace != "" && k8sPod != "" {
		ids.Orchestrator, ids.Namespace, ids.Pod = v3.OrchestratorKubernetes, k8sNamespace, k8sPod
	}
	return ids
}

// IsK8s reports whether the endpoint is a Kubernetes pod's.
func (i IDs) IsK8s() bool { return i.Orchestrator == v3.OrchestratorKubernetes }

// Name is the endpoint's resource name, <node>-<orchestrator>-<pod or
// container ID>-<endpoint> with '-' doubled inside each part.
func (i IDs) Name() string {
	wl := i.ContainerID
	if i.IsK8s() {
		wl = i.Pod
	}
	return v3.WorkloadEndpointName(i.Node, i.Orchestrator, wl, i.Endpoint)
}

// WorkloadID is what the host interface name is hashed from: as in
// Calico, "<namespace>.<pod>" for a Kubernetes pod, otherwise the
// container ID.
func (i IDs) WorkloadID() string {
	if i.IsK8s() {
		return i.Namespace + "." + i.Pod
	}
	return i.ContainerID
}

// Meta is what an endpoint carries besides its identity and interface:
// its profiles and, in Kubernetes mode, what the pod contributes.
type Meta struct {
	Profiles       []string
	Labels         map[string]string
	Annotations    map[string]string
	Ports          []v3.WorkloadEndpointPort
	ServiceAccount string
	GenerateName   string
	// AllowSpoofedSourcePrefixes are the pod's allowedSourcePrefixes.
	AllowSpoofedSourcePrefixes []string
	// IPNATs maps the endpoint's addresses to floating IPs; nil for none.
	IPNATs func(addrs []netip.Addr) []v3.IPNAT
}

// Build returns the endpoint of a programmed interface. Addresses are
// stored as /32 and /128, as felix expects.
func Build(ids IDs, meta Meta, hostIf string, podMAC net.HardwareAddr, addrs []netip.Addr) *v3.WorkloadEndpoint {
	w := v3.NewWorkloadEndpoint()
	w.Name = ids.Name()
	w.Namespace = ids.Namespace
	w.GenerateName = meta.GenerateName
	w.Labels = maps.Clone(meta.Labels)
	w.Annotations = maps.Clone(meta.Annotations)
	w.Spec = v3.WorkloadEndpointSpec{
		Orchestrator:               ids.Orchestrator,
		Node:                       ids.Node,
		ContainerID:                ids.ContainerID,
		Pod:                        ids.Pod,
		Endpoint:                   ids.Endpoint,
		Profiles:                   slices.Clone(meta.Profiles),
		InterfaceName:              hostIf,
		ServiceAccountName:         meta.ServiceAccount,
		Ports:                      slices.Clone(meta.Ports),
		AllowSpoofedSourcePrefixes: slices.Clone(meta.AllowSpoofedSourcePrefixes),
	}
	if meta.IPNATs != nil {
		w.Spec.IPNATs = meta.IPNATs(addrs)
	}
	if podMAC != nil {
		w.Spec.MAC = podMAC.String()
	}
	for _, a := range addrs {
		a = a.Unmap()
		w.Spec.IPNetworks = append(w.Spec.IPNetworks, netip.PrefixFrom(a, a.BitLen()).String())
	}
	return w
}

// NetworkAnnotation names, on an endpoint written in Kubernetes mode, the
// CNI network it belongs to (its profiles are the pod's, not the
// network's).
const NetworkAnnotation = "cni.projectcalico.org/network"

// OfNetwork reports whether w was written for network.
func OfNetwork(w *v3.WorkloadEndpoint, network string) bool {
	return slices.Contains(w.Spec.Profiles, network) || w.Annotations[NetworkAnnotation] == network
}

// Store reads and writes endpoints and profiles through the typed client.
type Store struct {
	c   *client.Client
	log *logrus.Entry
}

// NewStore returns a Store over c.
func NewStore(c *client.Client, log *logrus.Entry) *Store { return &Store{c: c, log: log} }

// ErrOwnedByOther: the endpoint's name is taken by an endpoint of another
// container that Write may not replace.
var ErrOwnedByOther = errors.New("workload endpoint exists and belongs to another container")

// Write creates w. An endpoint of the same name is replaced if this very
// container owns it (an earlier ADD of the container, cut off or retried)
// or, for a Kubernetes pod, if another container does (an earlier sandbox
// of the pod), as Calico does; otherwise Write fails with
// ErrOwnedByOther.
func (s *Store) Write(ctx context.Context, w *v3.WorkloadEndpoint) (*v3.WorkloadEndpoint, error) {
	out, err := s.c.WorkloadEndpoints().Create(ctx, w)
	if err == nil {
		return out, nil
	}
	if !errors.Is(err, cerrors.ErrExists) {
		return nil, fmt.Errorf("creating workload endpoint %s/%s: %w", w.Namespace, w.Name, err)
	}
	old, err := s.c.WorkloadEndpoints().Get(ctx, w.Namespace, w.Name)
	if err != nil {
		return nil, fmt.Errorf("reading existing workload endpoint %s/%s: %w", w.Namespace, w.Name, err)
	}
	log := s.log.WithFields(logrus.Fields{"endpoint": w.Name, "oldContainer": old.Spec.ContainerID})
	switch {
	case old.Spec.ContainerID == w.Spec.ContainerID:
		log.Info("replacing the endpoint of an earlier ADD of this container")
	case w.Spec.Orchestrator == v3.OrchestratorKubernetes:
		log.Info("replacing the endpoint of an earlier sandbox")
	default:
		return nil, fmt.Errorf("%w: %s/%s (container %s)", ErrOwnedByOther, w.Namespace, w.Name, old.Spec.ContainerID)
	}
	nw := *w
	nw.ResourceVersion = old.ResourceVersion
	out, err = s.c.WorkloadEndpoints().Update(ctx, &nw)
	if err != nil {
		return nil, fmt.Errorf("replacing workload endpoint %s/%s: %w", w.Namespace, w.Name, err)
	}
	return out, nil
}

// CreateOps prepares the creation of w for another transaction (an IPAM
// assignment's, see client.CreateOp), guarded by the existence of the
// network's profile (none when network is ""): the transaction fails if
// the name is taken, the profile missing or the cluster uninitialised,
// and the caller then falls back to EnsureProfile and Write. Once the ops
// commit at rev, Committed completes the returned copy.
func (s *Store) CreateOps(ctx context.Context, w *v3.WorkloadEndpoint, network string) (*v3.WorkloadEndpoint, []backend.TxnOp, error) {
	r, ops, err := s.c.CreateOp(ctx, w)
	if err != nil {
		return nil, nil, fmt.Errorf("preparing workload endpoint %s/%s: %w", w.Namespace, w.Name, err)
	}
	out, ok := r.(*v3.WorkloadEndpoint)
	if !ok {
		return nil, nil, fmt.Errorf("client prepared %T, want a WorkloadEndpoint", r)
	}
	if network == "" {
		return out, ops, nil
	}
	k8s := w.Spec.Orchestrator == v3.OrchestratorKubernetes
	return out, append(ops, client.ExistsOp(NetworkProfile(network, k8s))), nil
}

// Committed completes an endpoint CreateOps prepared, once its ops
// committed at rev.
func (s *Store) Committed(w *v3.WorkloadEndpoint, rev int64) { s.c.Committed(w, rev) }

// Get returns the named endpoint, or nil when there is none.
func (s *Store) Get(ctx context.Context, namespace, name string) (*v3.WorkloadEndpoint, error) {
	w, err := s.c.WorkloadEndpoints().Get(ctx, namespace, name)
	if errors.Is(err, cerrors.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading workload endpoint %s/%s: %w", namespace, name, err)
	}
	return w, nil
}

// DeleteOwned deletes w if it is unchanged since read and containerID
// owns it. It reports whether it deleted it; an endpoint that is already
// gone, or belongs to another container, is left alone without error.
func (s *Store) DeleteOwned(ctx context.Context, w *v3.WorkloadEndpoint, containerID string) (bool, error) {
	log := s.log.WithFields(logrus.Fields{"endpoint": w.Name, "owner": w.Spec.ContainerID})
	if w.Spec.ContainerID != containerID {
		log.Info("endpoint belongs to another container; leaving it")
		return false, nil
	}
	_, err := s.c.WorkloadEndpoints().Delete(ctx, w.Namespace, w.Name, w.ResourceVersion)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, cerrors.ErrNotFound):
		return false, nil
	case errors.Is(err, cerrors.ErrConflict):
		// Changed since read: look again, it may now be another sandbox's.
		cur, gerr := s.Get(ctx, w.Namespace, w.Name)
		if gerr != nil || cur == nil {
			return false, gerr
		}
		if cur.Spec.ContainerID != containerID {
			log.Info("endpoint was replaced by another container; leaving it")
			return false, nil
		}
		if _, err := s.c.WorkloadEndpoints().Delete(ctx, cur.Namespace, cur.Name, cur.ResourceVersion); err != nil && !errors.Is(err, cerrors.ErrNotFound) {
			return false, fmt.Errorf("deleting workload endpoint %s/%s: %w", w.Namespace, w.Name, err)
		}
		return true, nil
	default:
		return false, fmt.Errorf("deleting workload endpoint %s/%s: %w", w.Namespace, w.Name, err)
	}
}

// ListNode returns every endpoint on node.
func (s *Store) ListNode(ctx context.Context, node string) ([]*v3.WorkloadEndpoint, error) {
	all, _, err := s.c.WorkloadEndpoints().List(ctx, client.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing workload endpoints: %w", err)
	}
	var out []*v3.WorkloadEndpoint
	for _, w := range all {
		if w.Spec.Node == node {
			out = append(out, w)
		}
	}
	return out, nil
}

// NetworkProfile is the profile Calico's plugin creates for a network the
// first time a workload joins it: everything out, and in from members of
// the network (from anywhere for Kubernetes pods, whose isolation comes
// from network policy). Members carry the label <network>="".
func NetworkProfile(network string, k8s bool) *v3.Profile {
	p := v3.NewProfile()
	p.Name = network
	in := v3.Rule{Action: v3.Allow}
	if !k8s {
		in.Source.Selector = fmt.Sprintf("has(%s)", network)
	}
	p.Spec = v3.ProfileSpec{
		Ingress:       []v3.Rule{in},
		Egress:        []v3.Rule{{Action: v3.Allow}},
		LabelsToApply: map[string]string{network: ""},
	}
	return p
}

// EnsureProfile creates the network's profile if it does not exist, and
// the cluster's initial resources (client.EnsureInitialized); with
// network "" only the latter. It never changes an existing profile:
// operators may have edited it.
func (s *Store) EnsureProfile(ctx context.Context, network string, k8s bool) error {
	if network == "" {
		if err := s.c.EnsureInitialized(ctx); err != nil {
			return fmt.Errorf("initialising the datastore: %w", err)
		}
		return nil
	}
	// Only existence matters, read with the cluster's initialisation
	// checks in one round trip.
	prof := NetworkProfile(network, k8s)
	present, err := s.c.EnsureInitializedAnd(ctx, prof)
	if err != nil {
		return fmt.Errorf("reading profile %s: %w", network, err)
	}
	if present[0] {
		return nil
	}
	s.log.WithField("profile", network).Info("creating the network's profile")
	if _, err := s.c.Profiles().Create(ctx, prof); err != nil && !errors.Is(err, cerrors.ErrExists) {
		return fmt.Errorf("creating profile %s: %w", network, err)
	}
	return nil
}
