package speaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"reflect"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// SetPeers makes the configured sessions equal peers, making before
// breaking:
//
//   - new peers are added first;
//   - a session whose parameters changed is re-created in place (gobgp
//     closes it with Cease "other configuration change", which a peer that
//     negotiated RFC 8538 treats as a graceful restart: it keeps this
//     node's routes until the new session resends them). Its address is
//     returned in recreated, so the caller can keep the routes that peer
//     gave until it resends them too;
//   - a session no longer wanted is not deleted at once but drains (see
//     Drain): it keeps carrying routes until what it carries is also
//     learned over other sessions, say from a route reflector that
//     replaces the mesh.
//
// Sessions whose parameters did not change are not touched (a change of
// name, type or filter rules alone only updates bookkeeping: rules live in
// the policies). It returns every error it met, after trying every peer.
func (s *Speaker) SetPeers(ctx context.Context, peers []bgpconfig.Peer) (recreated []netip.Addr, err error) {
	want := make(map[netip.Addr]bgpconfig.Peer, len(peers))
	for _, p := range peers {
		a, err := netip.ParseAddr(p.Address)
		if err != nil {
			return nil, fmt.Errorf("peer address %q: %w", p.Address, err)
		}
		want[a] = p
	}
	s.mu.Lock()
	local := s.global.ASNumber
	restarting := s.restarting
	s.restarting = false
	have := make(map[netip.Addr]peerState, len(s.peers)+len(s.draining))
	for a, p := range s.peers {
		have[a] = p
	}
	for a, d := range s.draining {
		have[a] = d.peerState
	}
	s.mu.Unlock()

	var errs []error
	for a, p := range want {
		old, ok := have[a]
		switch {
		case !ok:
			ap := apiPeer(p, a, local, s.opts.ConnectRetry)
			ap.GracefulRestart.DeferralTime = uint32(min(s.opts.Deferral/time.Second, 0xffff))
			ap.GracefulRestart.LocalRestarting = restarting
			if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: ap}); err != nil {
				errs = append(errs, fmt.Errorf("adding peer %s: %w", a, err))
				continue
			}
			s.log.WithFields(logrus.Fields{"peer": a, "as": p.ASNumber, "type": p.Type, "passive": p.Passive, "restarting": restarting}).
				Info("Added BGP peer")
			s.setPeer(a, peerState{cfg: p, added: time.Now()})
			if restarting {
				s.mu.Lock()
				s.restartPending[a] = true
				s.mu.Unlock()
			}
		case sessionEqual(old.cfg, p):
			if !reflect.DeepEqual(old.cfg, p) || s.isDraining(a) {
				s.setPeer(a, peerState{cfg: p, added: old.added})
			}
		default:
			ap := apiPeer(p, a, local, s.opts.ConnectRetry)
			ap.GracefulRestart.DeferralTime = uint32(min(s.opts.Deferral/time.Second, 0xffff))
			if _, err := s.bgp.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: ap}); err != nil {
				errs = append(errs, fmt.Errorf("re-creating peer %s: %w", a, err))
				continue
			}
			s.log.WithFields(logrus.Fields{"peer": a, "as": p.ASNumber, "type": p.Type, "passive": p.Passive}).
				Info("BGP session parameters changed; re-created the session")
			s.setPeer(a, peerState{cfg: p, added: time.Now()})
			recreated = append(recreated, a)
		}
	}
	for a, old := range have {
		if _, ok := want[a]; !ok && !s.isDraining(a) {
			s.startDrain(a, old)
		}
	}
	return recreated, errors.Join(errs...)
}

// setPeer records a configured session (no longer draining).
func (s *Speaker) setPeer(a netip.Addr, p peerState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.draining, a)
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

// description names the session and fingerprints its parameters: gobgp
// re-creates a session on UpdatePeer only when its OPEN would change, not
// for, say, a new route reflector client flag, so the fingerprint makes
// every change of parameters one it acts on.
func description(p bgpconfig.Peer) string {
	key := p
	key.Name, key.Type, key.NextHop, key.ImportRules, key.ExportRules = "", "", "", nil, nil
	key.Password = "" // gobgp compares it itself; keep it out of the description
	b, _ := json.Marshal(key)
	h := fnv.New32a()
	h.Write(b)
	return fmt.Sprintf("%s %08x", p.Name, h.Sum32())
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
			Description:     description(p),
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
		// NotificationEnabled (RFC 8538): a Cease other than a hard reset,
		// as when a session is re-created for new parameters, is a
		// graceful restart for the peer, which keeps the routes.
		GracefulRestart: &api.GracefulRestart{Enabled: true, RestartTime: p.RestartTime, NotificationEnabled: true},
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

// SendsEndOfRIB reports whether the session with a is established (ok)
// and the peer announced graceful restart for an address family of it
// (sends): only such a peer marks the end of its initial routes with
// End-of-RIB. A peer without graceful restart never does.
func (s *Speaker) SendsEndOfRIB(ctx context.Context, a netip.Addr) (sends, ok bool) {
	_ = s.bgp.ListPeer(ctx, &api.ListPeerRequest{Address: a.String()}, func(p *api.Peer) {
		if p.State == nil || p.State.SessionState != api.PeerState_ESTABLISHED {
			return
		}
		ok = true
		for _, af := range p.AfiSafis {
			if st := af.GetMpGracefulRestart().GetState(); st != nil && st.Received {
				sends = true
			}
		}
	})
	return sends, ok
}

// KeepRestarting keeps announcing the restart to peers whose sessions are
// not up yet. gobgp ends its restart for every session as soon as the
// sessions already up have sent End-of-RIB, so a peer that connects later
// would miss the Restart and Forwarding State bits (and a BIRD peer would
// flush this node's routes). Such a peer, not connected yet, is added
// again as restarting. Call it on session events until it returns false:
// every session that started restarting has come up once.
func (s *Speaker) KeepRestarting(ctx context.Context) bool {
	s.mu.Lock()
	pending := make([]netip.Addr, 0, len(s.restartPending))
	for a := range s.restartPending {
		pending = append(pending, a)
	}
	local := s.global.ASNumber
	s.mu.Unlock()
	for _, a := range pending {
		var state api.PeerState_SessionState
		restarting, found := false, false
		_ = s.bgp.ListPeer(ctx, &api.ListPeerRequest{Address: a.String()}, func(p *api.Peer) {
			found = true
			state = p.GetState().GetSessionState()
			restarting = p.GetGracefulRestart().GetLocalRestarting()
		})
		s.mu.Lock()
		cfg, configured := s.peers[a]
		s.mu.Unlock()
		switch {
		case !found || !configured || state == api.PeerState_ESTABLISHED:
			s.mu.Lock()
			delete(s.restartPending, a)
			s.mu.Unlock()
			continue
		case restarting || (state != api.PeerState_IDLE && state != api.PeerState_CONNECT && state != api.PeerState_ACTIVE):
			continue
		}
		ap := apiPeer(cfg.cfg, a, local, s.opts.ConnectRetry)
		ap.GracefulRestart.DeferralTime = uint32(min(s.opts.Deferral/time.Second, 0xffff))
		ap.GracefulRestart.LocalRestarting = true
		if err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			s.log.WithError(err).WithField("peer", a).Warn("Cannot re-add a peer as restarting")
			continue
		}
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: ap}); err != nil {
			s.log.WithError(err).WithField("peer", a).Error("Cannot re-add a peer as restarting")
			continue
		}
		s.log.WithField("peer", a).Info("Session not up yet; announcing the restart to it again")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.restartPending) > 0
}

// EndRestart stops KeepRestarting's work (the restart is over: the
// previous run's routes were swept).
func (s *Speaker) EndRestart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.restartPending)
}
