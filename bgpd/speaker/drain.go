package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/sirupsen/logrus"
)

// drainState is a session removed from the configuration that still runs
// until it is no longer needed.
type drainState struct {
	peerState
	deadline time.Time
}

func (s *Speaker) isDraining(a netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.draining[a]
	return ok
}

func (s *Speaker) startDrain(a netip.Addr, p peerState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.peers, a)
	s.draining[a] = drainState{peerState: p, deadline: time.Now().Add(s.opts.DrainTimeout)}
	s.log.WithFields(logrus.Fields{"peer": a, "timeout": s.opts.DrainTimeout}).
		Info("BGP peer removed; draining the session until its routes are learned elsewhere")
}

// Draining reports whether removed sessions are still draining.
func (s *Speaker) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.draining) > 0
}

// Drain deletes the removed sessions that are no longer needed: every
// route learned over one is also learned over another session (or
// originated here), or it has drained for DrainTimeout. The session ends
// with Cease "other configuration change", which a peer that negotiated
// RFC 8538 treats as a graceful restart, so it keeps this node's routes
// until its own configuration drops the session in turn. It returns whether sessions
// are left draining; call it again a little later then.
func (s *Speaker) Drain(ctx context.Context) (more bool, err error) {
	s.mu.Lock()
	drains := make(map[netip.Addr]drainState, len(s.draining))
	for a, d := range s.draining {
		drains[a] = d
	}
	local := s.global.ASNumber
	s.mu.Unlock()
	if len(drains) == 0 {
		return false, nil
	}
	only, err := s.soleSources(ctx)
	if err != nil {
		return true, err
	}
	now := time.Now()
	var errs []error
	for a, d := range drains {
		expired := now.After(d.deadline)
		if only[a] > 0 && !expired {
			more = true
			continue
		}
		// DeletePeer alone would send Cease "peer de-configured", a hard
		// reset under RFC 8538: first end the session by re-creating it
		// (Cease "other configuration change", a graceful restart for the
		// peer), passive so that it stays down, then delete it.
		ap := apiPeer(d.cfg, a, local, s.opts.ConnectRetry)
		ap.Conf.Description += " removed"
		ap.Transport.PassiveMode = true
		if _, err := s.bgp.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: ap}); err != nil {
			s.log.WithError(err).WithField("peer", a).Warn("Cannot end a drained session gracefully")
		}
		if err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("deleting peer %s: %w", a, err))
			more = true
			continue
		}
		s.mu.Lock()
		if cur, ok := s.draining[a]; ok && cur.deadline.Equal(d.deadline) {
			delete(s.draining, a)
		}
		s.mu.Unlock()
		s.log.WithFields(logrus.Fields{"peer": a, "routesOnlyThere": only[a], "timedOut": expired}).Info("Removed BGP peer")
	}
	return more, errors.Join(errs...)
}

// soleSources counts, per peer, the prefixes only that peer gave a path
// to.
func (s *Speaker) soleSources(ctx context.Context) (map[netip.Addr]int, error) {
	out := map[netip.Addr]int{}
	for _, fam := range []*api.Family{
		{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
		{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
	} {
		err := s.bgp.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
			var src netip.Addr
			n := 0
			for _, p := range d.Paths {
				if p.IsWithdraw {
					continue
				}
				n++
				if a, err := netip.ParseAddr(p.NeighborIp); err == nil && !a.IsUnspecified() {
					src = a
				} else {
					src = netip.Addr{}
				}
			}
			if n == 1 && src.IsValid() {
				out[src]++
			}
		})
		if err != nil {
			return nil, fmt.Errorf("listing bgp paths: %w", err)
		}
	}
	return out, nil
}
