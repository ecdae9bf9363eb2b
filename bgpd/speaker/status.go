package speaker

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// Status reports every configured session as calicoctl prints it.
func (s *Speaker) Status(ctx context.Context) bgpstatus.Status {
	s.mu.Lock()
	st := bgpstatus.Status{RouterID: s.global.RouterID, ASNumber: s.global.ASNumber, Since: s.started}
	cfgs := make(map[netip.Addr]peerState, len(s.peers))
	for a, p := range s.peers {
		cfgs[a] = p
	}
	s.mu.Unlock()

	live := map[netip.Addr]*api.Peer{}
	_ = s.bgp.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf == nil {
			return
		}
		if a, err := netip.ParseAddr(p.Conf.NeighborAddress); err == nil {
			live[a] = p
		}
	})
	now := time.Now()
	for a, cfg := range cfgs {
		peer := bgpstatus.Peer{Address: a.String(), Type: cfg.cfg.Type, State: "start", Info: "Idle", Since: sinceString(cfg.added, now)}
		if p := live[a]; p != nil && p.State != nil {
			peer.State, peer.Info = stateOf(p, cfg.cfg.Passive)
			if t := p.Timers.GetState(); t != nil {
				changed := cfg.added
				if p.State.SessionState == api.PeerState_ESTABLISHED && t.Uptime != nil {
					changed = t.Uptime.AsTime()
				} else if t.Downtime != nil && t.Downtime.AsTime().After(changed) {
					changed = t.Downtime.AsTime()
				}
				peer.Since = sinceString(changed, now)
			}
		}
		if a.Is4() {
			st.Peers4 = append(st.Peers4, peer)
		} else {
			st.Peers6 = append(st.Peers6, peer)
		}
	}
	byAddr := func(x, y bgpstatus.Peer) int {
		return netip.MustParseAddr(x.Address).Compare(netip.MustParseAddr(y.Address))
	}
	slices.SortFunc(st.Peers4, byAddr)
	slices.SortFunc(st.Peers6, byAddr)
	return st
}

// stateOf maps gobgp's session state to BIRD's State and Info columns.
func stateOf(p *api.Peer, passive bool) (state, info string) {
	if p.State.AdminState == api.PeerState_DOWN {
		return "down", "Idle"
	}
	switch p.State.SessionState {
	case api.PeerState_ESTABLISHED:
		return "up", "Established"
	case api.PeerState_ACTIVE:
		if passive {
			return "start", "Passive"
		}
		return "start", "Active"
	case api.PeerState_CONNECT:
		return "start", "Connect"
	case api.PeerState_OPENSENT:
		return "start", "OpenSent"
	case api.PeerState_OPENCONFIRM:
		return "start", "OpenConfirm"
	}
	return "start", "Idle"
}

// sinceString formats like BIRD: a time today, else a date.
func sinceString(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04:05")
	}
	return strings.TrimSpace(t.Format("2006-01-02"))
}
