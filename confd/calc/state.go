// Package calc computes one node's BGP configuration (package
// libcalico/bgpconfig) from the datastore, with no I/O: State keeps the
// resources the syncer delivered, Compute turns a State into a Config.
//
//	syncer.Update ─► State.Apply ─► State ─► Compute(node, secrets) ─► bgpconfig.Config
//	                                             ├─ global: router id, AS, port, log level
//	                                             ├─ peers: mesh, global and node BGPPeers,
//	                                             │         peerSelector (both directions),
//	                                             │         route reflector clients, filters
//	                                             └─ export: pools, affine blocks, communities
package calc

import (
	"net/netip"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// State is the part of the datastore confd reads. The zero value is not
// usable; call NewState.
type State struct {
	Nodes      map[string]*v3.Node
	BGPConfigs map[string]*v3.BGPConfiguration
	Peers      map[string]*v3.BGPPeer
	Filters    map[string]*v3.BGPFilter
	Pools      map[string]*v3.IPPool
	// Affinities are this node's block affinities by block CIDR.
	Affinities map[netip.Prefix]*model.BlockAffinity
}

// NewState returns an empty State.
func NewState() *State {
	return &State{
		Nodes:      map[string]*v3.Node{},
		BGPConfigs: map[string]*v3.BGPConfiguration{},
		Peers:      map[string]*v3.BGPPeer{},
		Filters:    map[string]*v3.BGPFilter{},
		Pools:      map[string]*v3.IPPool{},
		Affinities: map[netip.Prefix]*model.BlockAffinity{},
	}
}

// Add stores a resource (as ParseManifests returns them); other kinds are
// ignored. It reports whether the resource was kept.
func (s *State) Add(r v3.Resource) bool {
	switch r := r.(type) {
	case *v3.Node:
		s.Nodes[r.Name] = r
	case *v3.BGPConfiguration:
		s.BGPConfigs[r.Name] = r
	case *v3.BGPPeer:
		s.Peers[r.Name] = r
	case *v3.BGPFilter:
		s.Filters[r.Name] = r
	case *v3.IPPool:
		s.Pools[r.Name] = r
	default:
		return false
	}
	return true
}

// Apply folds one syncer update into the state and reports whether it
// touched anything Compute reads.
func (s *State) Apply(u syncer.Update) bool {
	switch k := u.Key.(type) {
	case model.ResourceKey:
		if u.Type == syncer.UpdateDeleted || u.Value == nil {
			return s.remove(k)
		}
		r, ok := u.Value.(v3.Resource)
		return ok && s.Add(r)
	case model.BlockAffinityKey:
		if u.Type == syncer.UpdateDeleted || u.Value == nil {
			_, had := s.Affinities[k.CIDR]
			delete(s.Affinities, k.CIDR)
			return had
		}
		a, ok := u.Value.(*model.BlockAffinity)
		if ok {
			s.Affinities[k.CIDR] = a
		}
		return ok
	}
	return false
}

func (s *State) remove(k model.ResourceKey) bool {
	var had bool
	switch k.Kind {
	case v3.KindNode:
		_, had = s.Nodes[k.Name]
		delete(s.Nodes, k.Name)
	case v3.KindBGPConfiguration:
		_, had = s.BGPConfigs[k.Name]
		delete(s.BGPConfigs, k.Name)
	case v3.KindBGPPeer:
		_, had = s.Peers[k.Name]
		delete(s.Peers, k.Name)
	case v3.KindBGPFilter:
		_, had = s.Filters[k.Name]
		delete(s.Filters, k.Name)
	case v3.KindIPPool:
		_, had = s.Pools[k.Name]
		delete(s.Pools, k.Name)
	}
	return had
}

// Prefixes are the datastore prefixes confd syncs for node.
func Prefixes(node string) []model.ListOptions {
	return []model.ListOptions{
		model.ResourceListOptions{Kind: v3.KindNode},
		model.ResourceListOptions{Kind: v3.KindBGPConfiguration},
		model.ResourceListOptions{Kind: v3.KindBGPPeer},
		model.ResourceListOptions{Kind: v3.KindBGPFilter},
		model.ResourceListOptions{Kind: v3.KindIPPool},
		model.BlockAffinityListOptions{Host: node},
	}
}
