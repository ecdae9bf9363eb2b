package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/confd/calc"
	"github.com/calico-etcd/calico/confd/output"
	"github.com/calico-etcd/calico/confd/secrets"
	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// Run runs confd until ctx ends (nil) or, with OneTime, until the first
// render (its error).
func Run(ctx context.Context, cfg Config, log *logrus.Entry) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("confd config: %w", err)
	}
	if cfg.NodeName == "" {
		name, err := nodeinfo.ResolveName(nodeinfo.NameSource{File: cfg.NodenameFile})
		if err != nil {
			return err
		}
		cfg.NodeName = name
	}
	if err := nodeinfo.WriteNameFile(cfg.NodenameFile, cfg.NodeName); err != nil {
		log.WithError(err).Warn("Cannot record the node name")
	}
	log = log.WithField("node", cfg.NodeName)
	spec, err := apiconfig.Load(cfg.DatastoreConfig)
	if err != nil {
		return err
	}
	c, err := client.NewFromSpec(spec, cfg.DatastoreTimeout)
	if err != nil {
		return fmt.Errorf("connecting to the datastore: %w", err)
	}
	defer c.Close()

	if err := ensurePools(ctx, c, cfg, log); err != nil {
		return err
	}
	if cfg.Register {
		if err := register(ctx, c, cfg, log); err != nil {
			return err
		}
	}
	var tun *tunnels
	if cfg.AllocateTunnelAddrs {
		if tun, err = newTunnels(c, cfg.NodeName, log.WithField("component", "tunnel-addrs")); err != nil {
			return err
		}
		if cfg.OneTime {
			if err := tun.once(ctx); err != nil {
				return fmt.Errorf("tunnel addresses: %w", err)
			}
			tun = nil
		}
	}
	r := &renderer{
		cfg:     cfg,
		log:     log,
		writer:  &output.Writer{Path: cfg.ConfigFile},
		reload:  output.Pidfile{Path: cfg.BgpdPidfile, Process: cfg.BgpdProcessName},
		secrets: secrets.Dir(cfg.SecretsDir),
		state:   calc.NewState(),
		kick:    make(chan struct{}, 1),
	}
	ctx, cancel := context.WithCancel(ctx)
	var consumer syncer.Callbacks = r
	var wg sync.WaitGroup
	if tun != nil {
		consumer = fanout{r, tun}
		wg.Go(func() { tun.run(ctx, cfg.ResyncInterval) })
	}
	s := syncer.New(c.Backend(), syncer.Config{Prefixes: calc.Prefixes(cfg.NodeName), Unmarshal: gojson.Unmarshal}, consumer, log.WithField("component", "syncer"))
	wg.Go(func() { _ = s.Run(ctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	if cfg.OneTime {
		return r.once(ctx)
	}
	r.loop(ctx)
	return nil
}

// register retries until the Node is written or ctx ends: the datastore
// may not be up yet.
func register(ctx context.Context, c *client.Client, cfg Config, log *logrus.Entry) error {
	reg := nodeinfo.Registrar{Client: c, Log: log}
	o := cfg.Node
	o.Name = cfg.NodeName
	backoff := 500 * time.Millisecond
	for {
		_, err := reg.Register(ctx, o)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, nodeinfo.ErrNoAddress) || cfg.OneTime {
			return fmt.Errorf("registering node: %w", err)
		}
		log.WithError(err).Warn("Cannot register the node yet; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// renderer is the syncer's consumer and the render loop.
type renderer struct {
	cfg     Config
	log     *logrus.Entry
	writer  *output.Writer
	reload  output.Pidfile
	secrets calc.Secrets

	mu       sync.Mutex
	state    *calc.State
	inSync   bool
	kick     chan struct{}
	warnings []string
	notReady bool
}

var _ syncer.Callbacks = (*renderer)(nil)

// OnStatusUpdated implements syncer.Callbacks.
func (r *renderer) OnStatusUpdated(st syncer.Status) {
	r.mu.Lock()
	first := st == syncer.InSync && !r.inSync
	if st == syncer.InSync {
		r.inSync = true
	}
	r.mu.Unlock()
	if first {
		r.poke()
	}
}

// OnUpdates implements syncer.Callbacks.
func (r *renderer) OnUpdates(ups []syncer.Update) {
	r.mu.Lock()
	changed := false
	for _, u := range ups {
		changed = r.state.Apply(u) || changed
	}
	r.mu.Unlock()
	if changed {
		r.poke()
	}
}

func (r *renderer) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// once waits for the first complete sync and renders.
func (r *renderer) once(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.kick:
			r.mu.Lock()
			ready := r.inSync
			r.mu.Unlock()
			if ready {
				return r.render()
			}
		}
	}
}

// loop renders after each burst of changes (once in sync) and on a timer.
// It tells systemd it is ready once the first complete sync has arrived
// (whether or not the node is ready for BGP yet).
func (r *renderer) loop(ctx context.Context) {
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	resync := time.NewTicker(r.cfg.ResyncInterval)
	defer resync.Stop()
	ready := false
	defer r.cfg.Notify("STOPPING=1")
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			debounce.Reset(r.cfg.Debounce)
		case <-debounce.C:
			r.renderLogged()
		case <-resync.C:
			r.renderLogged()
		}
		if !ready && r.synced() {
			ready = true
			r.cfg.Notify("READY=1")
		}
	}
}

func (r *renderer) synced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inSync
}

func (r *renderer) renderLogged() {
	if err := r.render(); err != nil {
		r.log.WithError(err).Error("Cannot render the BGP configuration")
	}
}

// render computes, writes on change and signals bgpd. A node that is not
// ready yet is not an error: the previous file (if any) stays.
func (r *renderer) render() error {
	r.mu.Lock()
	if !r.inSync {
		r.mu.Unlock()
		return nil
	}
	res, err := calc.Compute(r.state, r.cfg.NodeName, r.secrets)
	r.mu.Unlock()
	if errors.Is(err, calc.ErrNodeNotReady) && !r.cfg.OneTime {
		if !r.notReady {
			r.log.WithError(err).Warn("Node is not ready for BGP; waiting")
		}
		r.notReady = true
		return nil
	}
	if err != nil {
		return err
	}
	r.notReady = false
	if !slices.Equal(res.Warnings, r.warnings) {
		for _, w := range res.Warnings {
			r.log.WithField("problem", w).Warn("BGP configuration incomplete")
		}
		r.warnings = res.Warnings
	}
	changed, err := r.writer.Write(res.Config)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	r.log.WithFields(logrus.Fields{"file": r.cfg.ConfigFile, "peers": len(res.Config.Peers), "blocks": len(res.Config.Blocks)}).
		Info("Wrote BGP configuration")
	if err := r.reload.Reload(); err != nil {
		if errors.Is(err, output.ErrNotRunning) {
			r.log.WithError(err).Info("bgpd not running; it reads the file when it starts")
			return nil
		}
		return err
	}
	r.log.Debug("Told bgpd to reload")
	return nil
}
