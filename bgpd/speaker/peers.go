package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// SetPeers makes the configured sessions equal peers: it deletes sessions
// no longer wanted, re-creates those whose session parameters changed and
// adds new ones. Sessions whose parameters did not change are not touched
// (a change of name, type or filter rules alone only updates bookkeeping:
// rules live in the policies). It returns every error it met, after
// trying every peer.
func (s *Speaker) SetPeers(ctx context.Context, peers []bgpconfig.Peer) error {
	want := make(map[netip.Addr]bgpconfig.Peer, len(peers))
	for _, p := range peers {
		a, err := netip.ParseAddr(p.Address)
		if err != nil {
			return fmt.Errorf("peer address %q: %w", p.Address, err)
		}
		want[a] = p
	}
	s.mu.Lock()
	have := make(map[netip.Addr]peerState, len(s.peers))
	for a, p := range s.peers {
		have[a] = p
	}
	s.mu.Unlock()

	var errs []error
	for a, old := range have {
		p, ok := want[a]
		if ok && sessionEqual(old.cfg, p) {
			if !reflect.DeepEqual(old.cfg, p) {
				s.setPeer(a, peerState{cfg: p, added: old.added})
			}
			continue
		}
		if err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("deleting peer %s: %w", a, err))
			continue
		}
		s.log.WithFields(logrus.Fields{"peer": a, "changed": ok}).Info("Removed BGP peer")
		s.setPeer(a, peerState{})
	}
	s.mu.Lock()
	for a := range want {
		if _, ok := s.peers[a]; ok {
			delete(want, a)
		}
	}
	local := s.global.ASNumber
	s.mu.Unlock()
	for a, p := range want {
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, a, local, s.opts.ConnectRetry)}); err != nil {
			errs = append(errs, fmt.Errorf("adding peer %s: %w", a, err))
			continue
		}
		s.log.WithFields(logrus.Fields{"peer": a, "as": p.ASNumber, "type": p.Type, "passive": p.Passive}).Info("Added BGP peer")
		s.setPeer(a, peerState{cfg: p, added: time.Now()})
	}
	return errors.Join(errs...)
}

// setPeer records a configured session; a zero state removes it.
func (s *Speaker) setPeer(a netip.Addr, p peerState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.cfg.Address == "" {
		delete(s.peers, a)
		return
	}
	s.peers[a] = p
}

// Peers returns the configured sessions' addresses.
func (s *Speaker) Peers() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Addr, 0, len(s.peers))
	for a := range s.peers {
		out = append(out, a)
	}
	return out
}

// sessionEqual reports whether two peers need the same gobgp session:
// everything but the fields that only feed bookkeeping or policies.
func sessionEqual(a, b bgpconfig.Peer) bool {
	for _, p := range []*bgpconfig.Peer{&a, &b} {
		p.Name, p.Type, p.NextHop, p.ImportRules, p.ExportRules = "", "", "", nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func family(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// apiPeer translates one session into gobgp's form: one address family
// (the peer address's), graceful restart on.
func apiPeer(p bgpconfig.Peer, a netip.Addr, localAS uint32, connectRetry time.Duration) *api.Peer {
	out := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: a.String(),
			PeerAsn:         p.ASNumber,
			LocalAsn:        p.LocalASNumber,
			AuthPassword:    p.Password,
			Description:     p.Name,
			AllowOwnAsn:     uint32(p.AllowOwnAS),
		},
		Transport: &api.Transport{
			PassiveMode:  p.Passive,
			LocalAddress: p.SourceAddress,
			RemotePort:   uint32(p.Port),
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           uint64(max(connectRetry/time.Second, 1)),
			IdleHoldTimeAfterReset: 1,
		}},
		GracefulRestart: &api.GracefulRestart{Enabled: true, RestartTime: p.RestartTime},
		AfiSafis: []*api.AfiSafi{{
			Config:            &api.AfiSafiConfig{Family: family(a), Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		}},
	}
	if p.KeepaliveTime > 0 {
		out.Timers.Config.KeepaliveInterval = uint64(p.KeepaliveTime)
		out.Timers.Config.HoldTime = 3 * uint64(p.KeepaliveTime)
	}
	if p.RouteReflectorClient {
		out.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: p.ClusterID}
	}
	effectiveLocal := localAS
	if p.LocalASNumber != 0 {
		effectiveLocal = p.LocalASNumber
	}
	if p.Multihop && p.ASNumber != effectiveLocal {
		out.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if p.TTLSecurity > 0 {
		out.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: uint32(256 - int(p.TTLSecurity))}
	}
	return out
}
