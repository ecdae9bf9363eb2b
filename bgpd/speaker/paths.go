package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// Advertise originates prefix with next hop nh and the given communities
// ("aa:nn" or "aa:nn:mm"), replacing an earlier advertisement of it.
func (s *Speaker) Advertise(ctx context.Context, prefix netip.Prefix, nh netip.Addr, communities []string) error {
	p, err := newPath(prefix, nh, communities, false)
	if err != nil {
		return err
	}
	if _, err := s.bgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
		return fmt.Errorf("advertising %s: %w", prefix, err)
	}
	s.mu.Lock()
	s.adverts[prefix] = p
	s.mu.Unlock()
	return nil
}

// Withdraw stops advertising prefix; withdrawing what is not advertised
// does nothing.
func (s *Speaker) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	s.mu.Lock()
	p, ok := s.adverts[prefix]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	if err := s.bgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p}); err != nil {
		return fmt.Errorf("withdrawing %s: %w", prefix, err)
	}
	s.mu.Lock()
	delete(s.adverts, prefix)
	s.mu.Unlock()
	return nil
}

// Advertised returns the prefixes this speaker originates.
func (s *Speaker) Advertised() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Prefix, 0, len(s.adverts))
	for p := range s.adverts {
		out = append(out, p)
	}
	return out
}

func newPath(prefix netip.Prefix, nh netip.Addr, communities []string, withdraw bool) (*api.Path, error) {
	prefix = prefix.Masked()
	var nlri bgp.AddrPrefixInterface
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if prefix.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop(nh.String()))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(nh.String(), []bgp.AddrPrefixInterface{nlri}))
	}
	var std []uint32
	var large []*bgp.LargeCommunity
	for _, c := range communities {
		parts, isLarge, err := bgpconfig.ParseCommunity(c)
		if err != nil {
			return nil, err
		}
		if isLarge {
			large = append(large, bgp.NewLargeCommunity(parts[0], parts[1], parts[2]))
		} else {
			std = append(std, parts[0]<<16|parts[1])
		}
	}
	if len(std) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(std))
	}
	if len(large) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(large))
	}
	return apiutil.NewPath(nlri, withdraw, attrs, time.Now())
}

// Path is one best path as the speaker's table changed it.
type Path struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	// Peer sent the path; invalid for locally originated paths.
	Peer netip.Addr
	// Withdrawn: there is no longer any path to Prefix.
	Withdrawn bool
}

// Local reports whether this node originated the path.
func (p Path) Local() bool { return !p.Peer.IsValid() }

// Event is one notification from Watch; exactly one field is set.
type Event struct {
	// Paths are best path changes (the current table first).
	Paths []Path
	// EndOfRIB names a peer that finished sending its routes.
	EndOfRIB netip.Addr
	// PeerState is a session state change.
	PeerState *PeerState
}

// PeerState is a session's new state.
type PeerState struct {
	Address     netip.Addr
	Established bool
}

// Watch calls fn for best path changes (starting with the current best
// paths), End-of-RIB markers and session state changes until ctx ends.
// fn is called from one goroutine at a time and must not block for long.
func (s *Speaker) Watch(ctx context.Context, fn func(Event)) error {
	req := &api.WatchEventRequest{
		Peer: &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{
			{Type: api.WatchEventRequest_Table_Filter_BEST, Init: true},
			{Type: api.WatchEventRequest_Table_Filter_EOR},
		}},
	}
	err := s.bgp.WatchEvent(ctx, req, func(r *api.WatchEventResponse) {
		if pe := r.GetPeer(); pe != nil && pe.Peer != nil && pe.Peer.State != nil {
			if pe.Type != api.WatchEventResponse_PeerEvent_STATE {
				return
			}
			a, err := netip.ParseAddr(pe.Peer.State.NeighborAddress)
			if err != nil {
				return
			}
			fn(Event{PeerState: &PeerState{Address: a, Established: pe.Peer.State.SessionState == api.PeerState_ESTABLISHED}})
			return
		}
		t := r.GetTable()
		if t == nil {
			return
		}
		var paths []Path
		for _, p := range t.Paths {
			if p.Nlri == nil { // End-of-RIB
				if a, err := netip.ParseAddr(p.NeighborIp); err == nil {
					fn(Event{EndOfRIB: a})
				}
				continue
			}
			if bp, ok := toPath(p); ok {
				paths = append(paths, bp)
			}
		}
		if len(paths) > 0 {
			fn(Event{Paths: paths})
		}
	})
	if err != nil {
		return fmt.Errorf("watching bgp table: %w", err)
	}
	return nil
}

func toPath(p *api.Path) (Path, bool) {
	nlri, err := apiutil.GetNativeNlri(p)
	if err != nil {
		return Path{}, false
	}
	prefix, err := netip.ParsePrefix(nlri.String())
	if err != nil {
		return Path{}, false
	}
	out := Path{Prefix: prefix, Withdrawn: p.IsWithdraw}
	if a, err := netip.ParseAddr(p.NeighborIp); err == nil && !a.IsUnspecified() {
		out.Peer = a
	}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return out, true
	}
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			out.NextHop, _ = netaddr.Addr(a.Value)
		case *bgp.PathAttributeMpReachNLRI:
			out.NextHop, _ = netaddr.Addr(a.Nexthop)
		}
	}
	return out, true
}
