package client

import (
	"context"
	"fmt"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
)

// Resources is the typed client of one kind.
type Resources[T v3.Resource] struct {
	c    *Client
	kind string
}

func typed[T v3.Resource](r v3.Resource, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	t, ok := r.(T)
	if !ok {
		return zero, fmt.Errorf("datastore returned %T, want %T", r, zero)
	}
	return t, nil
}

// Create stores a new resource.
func (r Resources[T]) Create(ctx context.Context, obj T) (T, error) {
	return typed[T](r.c.Create(ctx, obj))
}

// Update replaces an existing resource (see Client.Update).
func (r Resources[T]) Update(ctx context.Context, obj T) (T, error) {
	return typed[T](r.c.Update(ctx, obj))
}

// Apply creates or replaces a resource.
func (r Resources[T]) Apply(ctx context.Context, obj T) (T, error) {
	return typed[T](r.c.Apply(ctx, obj))
}

// Delete removes a resource; namespace is "" for cluster-scoped kinds.
func (r Resources[T]) Delete(ctx context.Context, namespace, name, resourceVersion string) (T, error) {
	return typed[T](r.c.Delete(ctx, r.kind, namespace, name, resourceVersion))
}

// Get reads one resource.
func (r Resources[T]) Get(ctx context.Context, namespace, name string) (T, error) {
	return typed[T](r.c.Get(ctx, r.kind, namespace, name))
}

// List reads every resource matching opts and the revision of the read;
// values that do not decode are skipped as Client.List skips them.
func (r Resources[T]) List(ctx context.Context, opts ListOptions) ([]T, int64, error) {
	items, rev, err := r.c.List(ctx, r.kind, opts)
	skipped, err := cerrors.Skipped(err)
	if err != nil {
		return nil, 0, err
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		t, err := typed[T](it, nil)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t)
	}
	return out, rev, cerrors.PartialOf(skipped)
}

func res[T v3.Resource](c *Client, kind string) Resources[T] { return Resources[T]{c: c, kind: kind} }

// IPPools is the IPPool client.
func (c *Client) IPPools() Resources[*v3.IPPool] { return res[*v3.IPPool](c, v3.KindIPPool) }

// IPReservations is the IPReservation client.
func (c *Client) IPReservations() Resources[*v3.IPReservation] {
	return res[*v3.IPReservation](c, v3.KindIPReservation)
}

// NetworkPolicies is the NetworkPolicy client.
func (c *Client) NetworkPolicies() Resources[*v3.NetworkPolicy] {
	return res[*v3.NetworkPolicy](c, v3.KindNetworkPolicy)
}

// GlobalNetworkPolicies is the GlobalNetworkPolicy client.
func (c *Client) GlobalNetworkPolicies() Resources[*v3.GlobalNetworkPolicy] {
	return res[*v3.GlobalNetworkPolicy](c, v3.KindGlobalNetworkPolicy)
}

// Tiers is the Tier client.
func (c *Client) Tiers() Resources[*v3.Tier] { return res[*v3.Tier](c, v3.KindTier) }

// Profiles is the Profile client.
func (c *Client) Profiles() Resources[*v3.Profile] { return res[*v3.Profile](c, v3.KindProfile) }

// NetworkSets is the NetworkSet client.
func (c *Client) NetworkSets() Resources[*v3.NetworkSet] {
	return res[*v3.NetworkSet](c, v3.KindNetworkSet)
}

// GlobalNetworkSets is the GlobalNetworkSet client.
func (c *Client) GlobalNetworkSets() Resources[*v3.GlobalNetworkSet] {
	return res[*v3.GlobalNetworkSet](c, v3.KindGlobalNetworkSet)
}

// WorkloadEndpoints is the WorkloadEndpoint client.
func (c *Client) WorkloadEndpoints() Resources[*v3.WorkloadEndpoint] {
	return res[*v3.WorkloadEndpoint](c, v3.KindWorkloadEndpoint)
}

// HostEndpoints is the HostEndpoint client.
func (c *Client) HostEndpoints() Resources[*v3.HostEndpoint] {
	return res[*v3.HostEndpoint](c, v3.KindHostEndpoint)
}

// Nodes is the Node client.
func (c *Client) Nodes() Resources[*v3.Node] { return res[*v3.Node](c, v3.KindNode) }

// BGPPeers is the BGPPeer client.
func (c *Client) BGPPeers() Resources[*v3.BGPPeer] { return res[*v3.BGPPeer](c, v3.KindBGPPeer) }

// BGPConfigurations is the BGPConfiguration client.
func (c *Client) BGPConfigurations() Resources[*v3.BGPConfiguration] {
	return res[*v3.BGPConfiguration](c, v3.KindBGPConfiguration)
}

// BGPFilters is the BGPFilter client.
func (c *Client) BGPFilters() Resources[*v3.BGPFilter] {
	return res[*v3.BGPFilter](c, v3.KindBGPFilter)
}

// FelixConfigurations is the FelixConfiguration client.
func (c *Client) FelixConfigurations() Resources[*v3.FelixConfiguration] {
	return res[*v3.FelixConfiguration](c, v3.KindFelixConfiguration)
}

// ClusterInformations is the ClusterInformation client.
func (c *Client) ClusterInformations() Resources[*v3.ClusterInformation] {
	return res[*v3.ClusterInformation](c, v3.KindClusterInformation)
}
