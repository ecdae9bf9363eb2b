// Package daemon runs felix: it reads the datastore's FelixConfiguration,
// starts the dataplane, then feeds syncer updates through the calculation
// graph and applies the resulting state in batches.
//
//	syncer ─► inbox (coalesces) ─► loop: calc.Graph ─► Dataplane.Apply (after InSync;
//	                                  │                 retried with backoff)
//	                                  ├─► health (/liveness, /readiness), metrics, sd_notify
//	                                  └─► endpoint status
//	status.Reporter ─► felix status keys (lease-backed)
//
// Nothing is applied before the syncer is first in sync, nor while it is
// resyncing after an outage or a datastore reset (etcd restored from a
// snapshot): the dataplane keeps what it has. /readiness answers success
// only while the syncer is in sync and the last state was applied, so it
// fails through both. On SIGTERM (ctx cancelled) Run returns nil and
// leaves the dataplane in place.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/config"
	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/felix/status"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/daemonkit"
	"github.com/calico-etcd/calico/libcalico/health"
	"github.com/calico-etcd/calico/libcalico/model"
)

// ErrRestartNeeded is returned by Run when the datastore changed a
// parameter that cannot be applied live; the caller should exit non-zero
// so that systemd starts felix again.
var ErrRestartNeeded = errors.New("configuration changed; restart needed")

// Dataplane is what the daemon drives (the Linux dataplane in production,
// a fake in tests). It may also implement Runner, MetricsSource and
// io.Closer; Close is called once felix stops, after Run has returned.
type Dataplane interface {
	// Apply converges the dataplane to s; see dpapi.Dataplane.
	Apply(ctx context.Context, s *dpapi.State) error
}

// Runner is a dataplane with background work (periodic refresh); Run
// blocks until ctx ends.
type Runner interface {
	Run(ctx context.Context) error
}

// MetricsSource is a dataplane with Prometheus metrics of its own.
type MetricsSource interface {
	Collectors() []prometheus.Collector
}

// Deps are what Run needs besides the config.
type Deps struct {
	// NewDataplane builds the dataplane once the configuration is final.
	NewDataplane func(dpapi.Config) (Dataplane, error)
	// Backend is the datastore; nil means etcd as the config says.
	Backend backend.Client
	// Log is the logger; its Logger's level follows LogSeverityScreen.
	Log *logrus.Entry
	// Notify sends a systemd notification; nil means sd_notify via
	// NOTIFY_SOCKET (a no-op without it).
	Notify func(state string)
	// Ready, if set, is called with the health and metrics addresses once
	// they listen (tests use port 0).
	Ready func(healthAddr, metricsAddr net.Addr)
	// ConfigureLogging, if set, is called with the configuration once it
	// is complete and after every change, to set up the log outputs
	// (LogSeverityScreen, LogFilePath, LogSeverityFile, LogSeveritySys);
	// nil sets the Logger's level from LogSeverityScreen.
	ConfigureLogging func(cfg *config.Config)
	// GoRuntime applies GoGCThreshold, GoMemoryLimitMB and GoMaxProcs
	// to the process, at start and after every change: the felix binary
	// sets it; tests that run daemons in their own process leave it off.
	GoRuntime bool
	// Collectors are more metrics to serve (the log outputs').
	Collectors []prometheus.Collector
}

// Timeouts.
const (
	datastoreTimeout = 10 * time.Second
	liveTimeout      = 90 * time.Second
)

// Run runs felix until ctx ends (returning nil), a fatal error, or a
// configuration change that needs a restart (ErrRestartNeeded).
func Run(ctx context.Context, cfg *config.Config, deps Deps) error {
	log := deps.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	if deps.NewDataplane == nil {
		return errors.New("no dataplane constructor")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	start := time.Now()
	be := deps.Backend
	if be == nil {
		ec, err := cfg.EtcdConfig(datastoreTimeout)
		if err != nil {
			return err
		}
		if be, err = etcd.New(ec); err != nil {
			return fmt.Errorf("connecting to etcd: %w", err)
		}
		defer be.Close()
	}
	notify := deps.Notify
	if notify == nil {
		notify = daemonkit.Notify
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	agg := health.NewAggregator()
	agg.Register("felix", liveTimeout)
	agg.Report("felix", true, false)
	var healthAddr net.Addr
	if cfg.HealthEnabled {
		addr := net.JoinHostPort(cfg.HealthHost, strconv.Itoa(cfg.HealthPort))
		a, err := health.Serve(ctx, addr, agg.Handler(), log)
		if err != nil {
			return fmt.Errorf("health endpoint: %w", err)
		}
		healthAddr = a
		log.WithField("addr", a).Info("Serving /liveness and /readiness")
	}

	log = log.WithField("node", cfg.FelixHostname)
	cfg, global, node, err := waitForConfig(ctx, be, cfg, log, agg)
	if err != nil || ctx.Err() != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration after merging FelixConfiguration: %w", err)
	}
	applyLogLevel(log, cfg, deps.ConfigureLogging)
	if deps.GoRuntime {
		applyGoRuntime(log, cfg)
	}
	if cfg.DataplaneWatchdogTimeout > 0 && cfg.DataplaneWatchdogTimeout != liveTimeout {
		agg.Register("felix", cfg.DataplaneWatchdogTimeout)
		agg.Report("felix", true, false)
	}
	warnRefusals(log, cfg)
	log.WithField("config", cfg.DataplaneConfig()).Info("Configuration loaded; starting dataplane")

	dcfg := cfg.DataplaneConfig()
	dcfg.Log = log.WithField("component", "dataplane")
	dp, err := deps.NewDataplane(dcfg)
	if err != nil {
		return fmt.Errorf("starting dataplane: %w", err)
	}
	if c, ok := dp.(io.Closer); ok {
		defer func() {
			if err := c.Close(); err != nil {
				log.WithError(err).Warn("Closing the dataplane failed")
			}
		}()
	}
	var extra []prometheus.Collector
	if ms, ok := dp.(MetricsSource); ok {
		extra = ms.Collectors()
	}
	extra = append(extra, deps.Collectors...)
	m := newMetrics(cfg.FelixHostname, cfg.PrometheusGoMetricsEnabled, cfg.PrometheusProcessMetricsEnabled, extra, log)
	m.setRefusals(cfg.Refusals())
	var metricsAddr net.Addr
	if cfg.PrometheusMetricsEnabled {
		a, err := serveMetrics(ctx, cfg, m.reg, log)
		if err != nil {
			return fmt.Errorf("metrics endpoint: %w", err)
		}
		metricsAddr = a
	}
	if deps.Ready != nil {
		deps.Ready(healthAddr, metricsAddr)
	}

	bg := make(chan error, 4)
	running := 0
	if r, ok := dp.(Runner); ok {
		running++
		go func() {
			err := r.Run(ctx)
			if err != nil && ctx.Err() == nil {
				log.WithError(err).Error("Dataplane stopped; stopping felix")
				cancel()
			}
			bg <- err
		}()
	}
	l := newLoop(cfg, global, node, be, dp, m, agg, notify, start, log)
	l.configureLogging = deps.ConfigureLogging
	l.goRuntime = deps.GoRuntime
	if cfg.EndpointReportingEnabled {
		l.epStatus = status.NewEndpointReporter(be, cfg.FelixHostname, cfg.EndpointReportingDelaySecs, log.WithField("component", "endpoint-status"))
		running++
		go func() { l.epStatus.Run(ctx); bg <- nil }()
	}
	err = l.run(ctx)
	cancel()
	for range running {
		if e := <-bg; e != nil && !errors.Is(e, context.Canceled) && err == nil {
			err = fmt.Errorf("dataplane: %w", e)
		}
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	notify("STOPPING=1")
	return err
}

// waitForConfig reads FelixConfiguration "default" and "node.<name>",
// retrying while the datastore is unavailable, and resolves cfg with them.
func waitForConfig(ctx context.Context, be backend.Client, cfg *config.Config, log *logrus.Entry, agg *health.Aggregator) (*config.Config, *v3.FelixConfiguration, *v3.FelixConfiguration, error) {
	delay := 100 * time.Millisecond
	for {
		global, gerr := getFelixConfig(ctx, be, "default")
		node, nerr := getFelixConfig(ctx, be, "node."+cfg.FelixHostname)
		if err := errors.Join(gerr, nerr); err == nil {
			return cfg.WithDatastore(global, node), global, node, nil
		} else if ctx.Err() == nil {
			log.WithError(err).Warn("Reading FelixConfiguration failed; will retry")
		}
		agg.Report("felix", true, false)
		select {
		case <-ctx.Done():
			return nil, nil, nil, nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// warnRefusals logs, for each parameter set that felix does not act on,
// a warning naming it and saying so.
func warnRefusals(log *logrus.Entry, cfg *config.Config) {
	for _, r := range cfg.Refusals() {
		log.WithFields(logrus.Fields{"param": r.Name(), "value": r.Value, "source": r.Source.String(), "reason": r.Reason}).
			Warn("Configuration parameter is not supported by this felix; it has no effect")
	}
}

func getFelixConfig(ctx context.Context, be backend.Client, name string) (*v3.FelixConfiguration, error) {
	k := model.ResourceKey{Kind: v3.KindFelixConfiguration, Name: name}
	kv, err := be.Get(ctx, k)
	if errors.Is(err, cerrors.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := model.Decode(k, kv.Value, kv.Revision)
	if err != nil {
		return nil, nil // an undecodable config counts as absent, as in the syncer
	}
	fc, _ := v.(*v3.FelixConfiguration)
	return fc, nil
}

// applyLogLevel hands cfg to configure, or without it sets the logger's
// level from LogSeverityScreen.
func applyLogLevel(log *logrus.Entry, cfg *config.Config, configure func(*config.Config)) {
	if configure != nil {
		configure(cfg)
		return
	}
	lvl, err := logrus.ParseLevel(cfg.LogSeverityScreen)
	if err != nil {
		return
	}
	if log.Logger.GetLevel() != lvl {
		log.Logger.SetLevel(lvl)
	}
}
