package daemon

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/bgpd/kernelwatch"
	"github.com/calico-etcd/calico/bgpd/routing"
	"github.com/calico-etcd/calico/bgpd/speaker"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// setPlan adopts c: new decisions, blackholes for the new block set and
// every learned route re-decided (pools may have changed).
func (d *daemon) setPlan(c *bgpconfig.Config) error {
	plan, err := routing.NewPlan(c, routing.Options{WorkloadPrefix: d.cfg.WorkloadPrefix, TunnelDevice: d.cfg.TunnelDevice})
	if err != nil {
		return err
	}
	if c.LogLevel != "" {
		if lvl, err := logrus.ParseLevel(c.LogLevel); err == nil && d.log.Logger.GetLevel() != lvl {
			d.log.Logger.SetLevel(lvl)
		}
	}
	old := d.blocks
	d.cur, d.plan = c, plan
	d.blocks = map[netip.Prefix]bool{}
	for _, b := range plan.Blocks() {
		d.blocks[b] = true
	}
	for b := range old {
		d.refresh(b)
	}
	for b := range d.blocks {
		d.refresh(b)
	}
	for dst := range d.learned {
		d.refresh(dst)
	}
	return nil
}

// refresh decides the kernel route to dst: the blackhole of an own block,
// else the learned path unless felix has a local workload route there,
// else none.
func (d *daemon) refresh(dst netip.Prefix) {
	if d.blocks[dst] {
		d.table.Set(d.plan.Blackhole(dst))
		return
	}
	if p, ok := d.learned[dst]; ok {
		if _, local := d.kernel[dst]; !local {
			r, ok, err := d.plan.Program(dst, p.NextHop, d.nl.Lookup)
			if err != nil {
				if !d.unresolved[dst] {
					d.log.WithError(err).WithField("dst", dst).Warn("Cannot program learned route yet; retrying")
				}
				d.unresolved[dst] = true
				d.retry.Reset(time.Second)
				d.table.Delete(dst)
				return
			}
			delete(d.unresolved, dst)
			if ok {
				d.table.Set(r)
				return
			}
		}
	}
	delete(d.unresolved, dst)
	d.table.Delete(dst)
}

// wantAdvert returns what dst should be advertised with, if anything.
func (d *daemon) wantAdvert(dst netip.Prefix) (advert, bool) {
	exported := false
	if d.blocks[dst] {
		exported = slices.Contains(d.plan.ExportedBlocks(), dst)
	} else if iface, ok := d.kernel[dst]; ok {
		exported = d.plan.Export(dst, iface)
	}
	if !exported {
		return advert{}, false
	}
	nh, ok := d.plan.NextHop(dst)
	if !ok {
		return advert{}, false
	}
	return advert{nh: nh, comms: d.plan.Communities(dst)}, true
}

// reconcileOne advertises or withdraws dst as wantAdvert says.
func (d *daemon) reconcileOne(ctx context.Context, dst netip.Prefix) {
	sp := d.currentSpeaker()
	want, ok := d.wantAdvert(dst)
	have, had := d.adverts[dst]
	switch {
	case ok && had && have.nh == want.nh && slices.Equal(have.comms, want.comms):
	case ok:
		if err := sp.Advertise(ctx, dst, want.nh, want.comms); err != nil {
			d.log.WithError(err).Error("Cannot advertise route")
			return
		}
		d.adverts[dst] = want
		d.log.WithField("dst", dst).Debug("Advertised")
	case had:
		if err := sp.Withdraw(ctx, dst); err != nil {
			d.log.WithError(err).Error("Cannot withdraw route")
			return
		}
		delete(d.adverts, dst)
		d.log.WithField("dst", dst).Debug("Withdrew")
	}
}

// reconcileAdverts brings every advertisement in line with the plan.
func (d *daemon) reconcileAdverts(ctx context.Context) {
	all := map[netip.Prefix]bool{}
	for dst := range d.adverts {
		all[dst] = true
	}
	for dst := range d.blocks {
		all[dst] = true
	}
	for dst := range d.kernel {
		all[dst] = true
	}
	for dst := range all {
		d.reconcileOne(ctx, dst)
	}
}

// onKernel follows felix's workload routes.
func (d *daemon) onKernel(ctx context.Context, batch []kernelwatch.Event) {
	for _, e := range batch {
		if e.Deleted {
			delete(d.kernel, e.Dst)
		} else {
			d.kernel[e.Dst] = e.Iface
		}
		d.reconcileOne(ctx, e.Dst)
		d.refresh(e.Dst)
	}
}

// onSpeaker follows the BGP table and the peers' resync progress.
func (d *daemon) onSpeaker(ev speaker.Event) {
	if d.restarting && (ev.EndOfRIB.IsValid() || ev.PeerState != nil) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		d.restarting = d.currentSpeaker().KeepRestarting(ctx)
		cancel()
	}
	switch {
	case len(ev.Paths) > 0:
		for _, p := range ev.Paths {
			switch {
			case p.Withdrawn && d.heldWithdrawal(p.Prefix):
				continue
			case p.Local() || p.Withdrawn:
				delete(d.learned, p.Prefix)
			default:
				d.learned[p.Prefix] = p
			}
			delete(d.stale, p.Prefix)
			d.refresh(p.Prefix)
		}
	case ev.EndOfRIB.IsValid():
		d.log.WithField("peer", ev.EndOfRIB).Debug("Peer sent End-of-RIB")
		d.eor[ev.EndOfRIB] = true
		d.release(ev.EndOfRIB, "End-of-RIB")
		d.checkSweep()
	case ev.PeerState != nil:
		a := ev.PeerState.Address
		d.log.WithFields(logrus.Fields{"peer": a, "established": ev.PeerState.Established}).
			Info("BGP session state changed")
		_, held := d.held[a]
		if ev.PeerState.Established && (held || (!d.swept && !d.eor[a])) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			sends, ok := d.currentSpeaker().SendsEndOfRIB(ctx, a)
			cancel()
			if ok && !sends {
				d.log.WithField("peer", a).Info("Peer has no graceful restart; not waiting for its End-of-RIB")
				d.eor[a] = true
				d.release(a, "no graceful restart")
				d.checkSweep()
			}
		}
	}
}

// checkSweep allows removing the previous run's routes once every
// configured peer that does graceful restart has sent End-of-RIB (a peer
// without it counts once its session is up; peers that never come up are
// waited for until the sweep timer, the restart time, runs out).
func (d *daemon) checkSweep() {
	if d.swept {
		return
	}
	for _, a := range d.currentSpeaker().Peers() {
		if !d.eor[a] {
			return
		}
	}
	d.allowSweep("all peers resynced")
}

func (d *daemon) allowSweep(why string) {
	if d.swept {
		return
	}
	d.swept = true
	d.sweep.Stop()
	d.restarting = false
	d.currentSpeaker().EndRestart()
	d.log.WithField("reason", why).Info("Removing routes left by a previous run")
	d.table.AllowSweep()
}
