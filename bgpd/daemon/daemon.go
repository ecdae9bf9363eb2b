package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/bgpd/kernelwatch"
	"github.com/calico-etcd/calico/bgpd/routetable"
	"github.com/calico-etcd/calico/bgpd/routing"
	"github.com/calico-etcd/calico/bgpd/speaker"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
)

// Run runs bgpd in the calling process's network namespace until ctx
// ends. reload delivers SIGHUP. It returns an error only when bgpd cannot
// run at all (pidfile, socket, netlink, starting BGP).
func Run(ctx context.Context, cfg Config, reload <-chan struct{}, log *logrus.Entry) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bgpd config: %w", err)
	}
	nl, err := routetable.NewKernel()
	if err != nil {
		return err
	}
	defer nl.Close()
	w := kernelwatch.New(kernelwatch.Options{
		IfacePrefix: cfg.WorkloadPrefix, IgnoreProtocol: cfg.RouteProtocol,
		ResyncInterval: cfg.ResyncInterval, Log: log.WithField("component", "kernelwatch"),
	})
	return run(ctx, cfg, reload, log, nl, w.Run)
}

// watchFunc is kernelwatch.Watcher.Run, or a test double.
type watchFunc func(ctx context.Context, out chan<- []kernelwatch.Event) error

type advert struct {
	nh    netip.Addr
	comms []string
}

// daemon is the loop's state; only the loop goroutine touches it, except
// sp (read by the status server under spMu).
type daemon struct {
	cfg   Config
	log   *logrus.Entry
	nl    routetable.Netlink
	table *routetable.Table

	cur    *bgpconfig.Config
	plan   *routing.Plan
	blocks map[netip.Prefix]bool

	spMu     sync.Mutex
	sp       *speaker.Speaker
	gen      int
	spCancel context.CancelFunc
	events   chan genEvent

	kernel  map[netip.Prefix]string // workload routes: interface
	adverts map[netip.Prefix]advert
	learned map[netip.Prefix]speaker.Path
	eor     map[netip.Addr]bool
	// unresolved are learned routes whose next hop could not be resolved;
	// they are retried with the retry timer.
	unresolved map[netip.Prefix]bool
	swept      bool
	sweep      *time.Timer
	retry      *time.Timer
	loadErr    string
	// held are peers whose sessions this bgpd re-created (their
	// parameters changed), until they resend their routes or the restart
	// time passes: like a graceful restart helper, the routes they gave
	// stay meanwhile. stale are those routes, withdrawn by the re-creation.
	held  map[netip.Addr]time.Time
	stale map[netip.Prefix]speaker.Path
	hold  *time.Timer
	// drain paces Speaker.Drain while removed sessions drain.
	drain *time.Timer
	// hostname is the node name last given to cfg.SetHostname.
	hostname string
	// restarting: bgpd started on its previous run's routes and some
	// sessions have not come up since (see Speaker.KeepRestarting).
	restarting bool
}

type genEvent struct {
	gen int
	ev  speaker.Event
}

func run(ctx context.Context, cfg Config, reload <-chan struct{}, log *logrus.Entry, nl routetable.Netlink, watch watchFunc) error {
	d := &daemon{
		cfg: cfg, log: log, nl: nl,
		table:      routetable.New(nl, cfg.RouteProtocol, log.WithField("component", "routetable")),
		blocks:     map[netip.Prefix]bool{},
		events:     make(chan genEvent, 4096),
		kernel:     map[netip.Prefix]string{},
		adverts:    map[netip.Prefix]advert{},
		learned:    map[netip.Prefix]speaker.Path{},
		eor:        map[netip.Addr]bool{},
		unresolved: map[netip.Prefix]bool{},
		retry:      stoppedTimer(),
		sweep:      stoppedTimer(),
		held:       map[netip.Addr]time.Time{},
		stale:      map[netip.Prefix]speaker.Path{},
		hold:       stoppedTimer(),
		drain:      stoppedTimer(),
	}
	if err := writePidfile(cfg.Pidfile); err != nil {
		return err
	}
	defer removePidfile(cfg.Pidfile)
	l, err := bgpstatus.Listen(cfg.ControlSocket)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		if sp := d.currentSpeaker(); sp != nil && cfg.StopSessionsOnExit {
			sp.Stop()
		}
	}()
	wg.Go(func() {
		if err := bgpstatus.Serve(ctx, l, d.status); err != nil {
			log.WithError(err).Error("Control socket failed")
		}
	})
	// Ready as soon as confd can find us (pidfile) and calicoctl can ask
	// (socket): confd starts after bgpd and writes the config bgpd waits for.
	cfg.Notify("READY=1")
	defer cfg.Notify("STOPPING=1")

	c := d.waitForConfig(ctx, reload)
	if c == nil {
		return nil
	}
	kernelCh := make(chan []kernelwatch.Event, 64)
	wg.Go(func() {
		if err := watch(ctx, kernelCh); err != nil {
			log.WithError(err).Error("Kernel route watch failed")
		}
	})
	if err := d.start(ctx, c, kernelCh); err != nil {
		return err
	}
	return d.loop(ctx, reload, kernelCh)
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// waitForConfig returns the first valid config, or nil when ctx ends.
func (d *daemon) waitForConfig(ctx context.Context, reload <-chan struct{}) *bgpconfig.Config {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if c := d.load(); c != nil {
			return c
		}
		select {
		case <-ctx.Done():
			return nil
		case <-reload:
		case <-tick.C:
		}
	}
}

// load reads the config file, logging problems once each.
func (d *daemon) load() *bgpconfig.Config {
	c, err := bgpconfig.Load(d.cfg.ConfigFile)
	if err != nil {
		if msg := err.Error(); msg != d.loadErr {
			d.loadErr = msg
			if errors.Is(err, fs.ErrNotExist) {
				d.log.WithField("file", d.cfg.ConfigFile).Info("Waiting for confd to write the BGP configuration")
			} else {
				d.log.WithError(err).Error("Cannot use the BGP configuration; keeping the current one")
			}
		}
		return nil
	}
	d.loadErr = ""
	return c
}

// start brings up the speaker: routes of this node first (blackholes,
// advertisements of what the kernel holds), then the peers, so the first
// update every peer gets is complete.
func (d *daemon) start(ctx context.Context, c *bgpconfig.Config, kernelCh <-chan []kernelwatch.Event) error {
	// Routes of our protocol in the kernel before we program any are the
	// previous run's forwarding state: this start is a graceful restart.
	left, err := d.nl.List(d.cfg.RouteProtocol)
	if err != nil {
		d.log.WithError(err).Warn("Cannot list the kernel's routes; starting as if for the first time")
	}
	restarting := len(left) > 0
	d.restarting = restarting
	if err := d.setPlan(c); err != nil {
		return err
	}
	d.apply()
	if err := d.startSpeaker(ctx, c, restarting); err != nil {
		return err
	}
	select {
	case b := <-kernelCh:
		d.onKernel(ctx, b)
	case <-time.After(5 * time.Second):
		d.log.Warn("No initial kernel route listing after 5s; advertising blocks only for now")
	case <-ctx.Done():
		return nil
	}
	d.reconcileAdverts(ctx)
	d.setPeers(ctx, c)
	d.sweep.Reset(d.cfg.SweepTimeout)
	d.checkSweep()
	d.log.WithFields(logrus.Fields{"as": c.ASNumber, "routerID": c.RouterID, "peers": len(c.Peers), "blocks": len(c.Blocks)}).
		Info("bgpd started")
	return nil
}

func (d *daemon) loop(ctx context.Context, reload <-chan struct{}, kernelCh <-chan []kernelwatch.Event) error {
	resync := time.NewTicker(d.cfg.ResyncInterval)
	defer resync.Stop()
	poll := time.NewTicker(d.cfg.ConfigPollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			d.log.Info("bgpd stopping; sessions and routes left for graceful restart")
			return nil
		case <-reload:
			if err := d.reload(ctx); err != nil {
				return err
			}
		case <-poll.C:
			if err := d.reload(ctx); err != nil {
				return err
			}
		case b := <-kernelCh:
			d.onKernel(ctx, b)
		case e := <-d.events:
			if e.gen == d.gen {
				d.onSpeaker(e.ev)
			}
		case <-resync.C:
			d.table.QueueResync()
			for dst := range d.learned {
				d.refresh(dst)
			}
		case <-d.sweep.C:
			d.allowSweep("sweep timeout")
		case <-d.retry.C:
			for dst := range d.unresolved {
				d.refresh(dst)
			}
		case <-d.hold.C:
			d.releaseHeld(time.Now())
		case <-d.drain.C:
			d.drainSessions(ctx)
		}
		d.apply()
	}
}

// apply converges the kernel; failures (and unresolved next hops) are
// retried in a second.
func (d *daemon) apply() {
	if err := d.table.Apply(); err != nil {
		d.log.WithError(err).Warn("Some routes could not be programmed; retrying")
		d.retry.Reset(time.Second)
	}
}

// reload re-reads the config and applies what changed.
func (d *daemon) reload(ctx context.Context) error {
	c := d.load()
	if c == nil || reflect.DeepEqual(c, d.cur) {
		return nil
	}
	d.log.WithFields(logrus.Fields{"peers": len(c.Peers), "blocks": len(c.Blocks)}).Info("BGP configuration changed")
	if !speaker.GlobalOf(c).Equal(speaker.GlobalOf(d.cur)) {
		d.log.Warn("AS, router ID or listen address changed; restarting the BGP speaker")
		if err := d.setPlan(c); err != nil {
			return err
		}
		if err := d.startSpeaker(ctx, c, false); err != nil {
			return err
		}
		d.reconcileAdverts(ctx)
		d.setPeers(ctx, c)
		return nil
	}
	d.adoptNodeName(c.NodeName)
	sp := d.currentSpeaker()
	if err := sp.SetPolicy(ctx, c.Pools, c.Peers); err != nil {
		d.log.WithError(err).Error("Cannot apply BGP policies")
	}
	d.setPeers(ctx, c)
	if err := d.setPlan(c); err != nil {
		return err
	}
	d.reconcileAdverts(ctx)
	return nil
}

func (d *daemon) currentSpeaker() *speaker.Speaker {
	d.spMu.Lock()
	defer d.spMu.Unlock()
	return d.sp
}

// startSpeaker replaces the speaker (if any) with a new one started with
// c's global settings and policies. Advertisements and learned routes of
// the old one are dropped. restarting: the kernel still holds the routes
// of a previous run (see speaker.Options.Restarting).
func (d *daemon) startSpeaker(ctx context.Context, c *bgpconfig.Config, restarting bool) error {
	if old := d.currentSpeaker(); old != nil {
		d.spCancel()
		old.Stop()
	}
	d.adoptNodeName(c.NodeName)
	sp := speaker.New(speaker.Options{
		ConnectRetry: d.cfg.ConnectRetry, Restarting: restarting, Deferral: d.cfg.SweepTimeout, DrainTimeout: d.cfg.DrainTimeout,
		Log: d.log.WithField("component", "speaker"),
	})
	if err := sp.Start(ctx, speaker.GlobalOf(c)); err != nil {
		sp.Stop()
		return err
	}
	if err := sp.SetPolicy(ctx, c.Pools, c.Peers); err != nil {
		d.log.WithError(err).Error("Cannot apply BGP policies")
	}
	d.gen++
	gen := d.gen
	wctx, cancel := context.WithCancel(ctx)
	err := sp.Watch(wctx, func(ev speaker.Event) {
		select {
		case d.events <- genEvent{gen: gen, ev: ev}:
		case <-wctx.Done():
		}
	})
	if err != nil {
		cancel()
		sp.Stop()
		return err
	}
	d.spMu.Lock()
	d.sp = sp
	d.spMu.Unlock()
	d.spCancel = cancel
	d.adverts = map[netip.Prefix]advert{}
	d.held, d.stale = map[netip.Addr]time.Time{}, map[netip.Prefix]speaker.Path{}
	old := d.learned
	d.learned = map[netip.Prefix]speaker.Path{}
	for dst := range old {
		d.refresh(dst)
	}
	return nil
}

// adoptNodeName makes the node name the host name gobgp advertises in the
// OPENs it sends from now on.
func (d *daemon) adoptNodeName(name string) {
	if d.cfg.SetHostname == nil || name == "" || name == d.hostname {
		return
	}
	d.hostname = name
	if err := d.cfg.SetHostname(name); err != nil {
		d.log.WithError(err).Warn("Cannot advertise the node name in the hostname capability; peers see the machine's name")
		return
	}
	d.log.WithField("hostname", name).Info("Advertising the node name in the hostname capability")
}

// status answers the control socket.
func (d *daemon) status() bgpstatus.Status {
	sp := d.currentSpeaker()
	if sp == nil {
		return bgpstatus.Status{Version: buildinfo.Version}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st := sp.Status(ctx)
	st.Version = buildinfo.Version
	return st
}

func writePidfile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing pidfile: %w", err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing pidfile: %w", err)
	}
	return nil
}

// removePidfile removes the pidfile if it still names this process.
func removePidfile(path string) {
	data, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(path)
	}
}
