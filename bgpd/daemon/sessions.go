package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// drainPoll is how often removed sessions are checked while they drain.
const drainPoll = 200 * time.Millisecond

// setPeers applies c's sessions. Routes learned from a peer whose session
// is re-created stay until it resends them (see held); removed sessions
// drain (see speaker.Drain).
func (d *daemon) setPeers(ctx context.Context, c *bgpconfig.Config) {
	sp := d.currentSpeaker()
	recreated, err := sp.SetPeers(ctx, c.Peers)
	if err != nil {
		d.log.WithError(err).Error("Cannot configure some BGP peers")
	}
	restart := map[netip.Addr]time.Duration{}
	for _, p := range c.Peers {
		if a, err := netip.ParseAddr(p.Address); err == nil {
			restart[a] = time.Duration(max(p.RestartTime, 1)) * time.Second
		}
	}
	for _, a := range recreated {
		d.held[a] = time.Now().Add(restart[a])
		d.log.WithField("peer", a).Info("Keeping the routes of a re-created session until the peer resends them")
	}
	d.armHold()
	if sp.Draining() {
		d.drain.Reset(drainPoll)
	}
}

// drainSessions deletes the removed sessions that are no longer needed.
func (d *daemon) drainSessions(ctx context.Context) {
	more, err := d.currentSpeaker().Drain(ctx)
	if err != nil {
		d.log.WithError(err).Warn("Cannot remove some BGP peers yet")
	}
	if more {
		d.drain.Reset(drainPoll)
	}
}

// heldWithdrawal reports whether the withdrawal of dst must wait: its path
// came from a held peer. The kernel route stays and dst is remembered.
func (d *daemon) heldWithdrawal(dst netip.Prefix) bool {
	old, ok := d.learned[dst]
	if !ok || !old.Peer.IsValid() {
		return false
	}
	if _, held := d.held[old.Peer]; !held {
		return false
	}
	d.stale[dst] = old
	return true
}

// release ends the hold of peer a: the routes it gave that it did not
// resend go.
func (d *daemon) release(a netip.Addr, why string) {
	if _, ok := d.held[a]; !ok {
		return
	}
	delete(d.held, a)
	n := 0
	for dst, p := range d.stale {
		if p.Peer == a {
			delete(d.stale, dst)
			delete(d.learned, dst)
			d.refresh(dst)
			n++
		}
	}
	d.log.WithFields(logrus.Fields{"peer": a, "reason": why, "removed": n}).Info("Re-created session resynced")
	d.armHold()
}

// releaseHeld releases the peers whose hold expired.
func (d *daemon) releaseHeld(now time.Time) {
	for a, deadline := range d.held {
		if !now.Before(deadline) {
			d.release(a, "restart time passed")
		}
	}
	d.armHold()
}

// armHold sets the hold timer to the earliest deadline.
func (d *daemon) armHold() {
	d.hold.Stop()
	var first time.Time
	for _, t := range d.held {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	if !first.IsZero() {
		d.hold.Reset(max(time.Until(first), time.Millisecond))
	}
}
