package linux

import (
	"context"
	"sync"
	"time"

	"github.com/calico-etcd/calico/felix/dataplane/ifaces"
	"github.com/calico-etcd/calico/felix/dataplane/routes"
)

// Run performs the periodic refreshes until ctx ends: every
// IptablesRefreshInterval it reads iptables back and repairs it, every
// IPSetsRefreshInterval the IP sets, every RouteRefreshInterval the
// routes; it re-applies routes and sysctls soon after a workload or tunnel
// interface appears or changes, and retries a failed Apply every second.
// Refreshes do nothing before the first InSync Apply.
func (d *Dataplane) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	links := make(chan ifaces.Update, 256)
	var wg sync.WaitGroup
	if !d.noLinkWatch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.watchLinks(ctx, links)
		}()
	}
	defer wg.Wait()
	defer cancel()

	// InterfaceRefreshInterval: list the interfaces again, in case a
	// netlink notification was lost (0: notifications only).
	var ifaceC <-chan time.Time
	if d.cfg.InterfaceRefreshInterval > 0 {
		ifaceT := time.NewTicker(d.cfg.InterfaceRefreshInterval)
		defer ifaceT.Stop()
		ifaceC = ifaceT.C
	}
	linkBatch := 0

	iptT := time.NewTicker(d.cfg.IptablesRefreshInterval)
	defer iptT.Stop()
	setT := time.NewTicker(d.cfg.IPSetsRefreshInterval)
	defer setT.Stop()
	rtT := time.NewTicker(d.cfg.RouteRefreshInterval)
	defer rtT.Stop()
	retryT := time.NewTicker(time.Second)
	defer retryT.Stop()
	// Link updates come in bursts (a veth pair is several messages);
	// coalesce them.
	linkT := time.NewTimer(time.Hour)
	linkT.Stop()
	linkPending := false

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-iptT.C:
			d.refresh(ctx, "iptables", func() {
				d.ipt4.Invalidate()
				if d.ipt6 != nil {
					d.ipt6.Invalidate()
				}
			})
		case <-setT.C:
			d.refresh(ctx, "ipsets", d.ipsets.Invalidate)
		case <-rtT.C:
			d.refresh(ctx, "routes", func() {
				d.routes.Invalidate()
				d.mtu.invalidate()
			})
		case <-retryT.C:
			d.mu.Lock()
			retry := d.failed
			d.mu.Unlock()
			if retry {
				d.refresh(ctx, "retry", func() {})
			}
		case <-ifaceC:
			d.refresh(ctx, "interfaces", d.routes.Invalidate)
		case u := <-links:
			linkBatch++
			if d.relevantLink(u) && !linkPending {
				linkPending = true
				linkT.Reset(20 * time.Millisecond)
			}
		case <-linkT.C:
			linkPending = false
			d.ifaceBatch.Observe(float64(linkBatch))
			linkBatch = 0
			d.refresh(ctx, "link", d.routes.Invalidate)
		}
	}
}

func (d *Dataplane) relevantLink(u ifaces.Update) bool {
	if d.excluded(u.Name) {
		return false
	}
	if u.Name == routes.VXLANDevice || u.Name == routes.VXLANV6Device || u.Name == routes.IPIPDevice {
		return true
	}
	if routes.IsWorkloadIface(u.Name, d.cfg.InterfacePrefixes) {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last != nil {
		for _, h := range d.last.HostEndpoints {
			if h != nil && (h.Iface == "" || h.Iface == u.Name) {
				return true
			}
		}
	}
	return false
}

// refresh invalidates part of the kernel view and re-applies the last
// State, if the kernel has been touched at all.
func (d *Dataplane) refresh(ctx context.Context, what string, invalidate func()) {
	if d.mu.lockCtx(ctx) != nil {
		return
	}
	defer d.mu.Unlock()
	if !d.started || d.last == nil {
		return
	}
	invalidate()
	if err := d.applyLocked(ctx); err != nil && ctx.Err() == nil {
		d.log.WithError(err).WithField("refresh", what).Warn("dataplane refresh failed; will retry")
	}
}

func (d *Dataplane) watchLinks(ctx context.Context, out chan<- ifaces.Update) {
	for {
		err := ifaces.Watch(ctx, d.nsh, out, d.log)
		if ctx.Err() != nil {
			return
		}
		d.log.WithError(err).Warn("interface watch failed; restarting")
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
