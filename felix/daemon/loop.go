package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/calc"
	"github.com/calico-etcd/calico/felix/config"
	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/felix/status"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/health"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// Prefixes felix syncs: everything the calculation graph reads, plus the
// FelixConfiguration it watches for changes.
func syncPrefixes() []model.ListOptions {
	var out []model.ListOptions
	for _, k := range []string{
		v3.KindWorkloadEndpoint, v3.KindHostEndpoint, v3.KindNetworkPolicy, v3.KindGlobalNetworkPolicy,
		v3.KindTier, v3.KindProfile, v3.KindNetworkSet, v3.KindGlobalNetworkSet, v3.KindIPPool, v3.KindNode,
		v3.KindFelixConfiguration, v3.KindBGPConfiguration,
	} {
		out = append(out, model.ResourceListOptions{Kind: k})
	}
	return append(out, model.BlockListOptions{}, model.BlockAffinityListOptions{})
}

// event is one syncer callback, queued in order.
type event struct {
	ups    []syncer.Update
	status syncer.Status
	isStat bool
}

// inbox takes the syncer's callbacks without blocking it on the loop:
// everything queued while the loop is busy is handled as one batch.
type inbox struct {
	mu   sync.Mutex
	evs  []event
	wake chan struct{}
}

func newInbox() *inbox { return &inbox{wake: make(chan struct{}, 1)} }

func (b *inbox) push(e event) {
	b.mu.Lock()
	b.evs = append(b.evs, e)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *inbox) take() []event {
	b.mu.Lock()
	defer b.mu.Unlock()
	evs := b.evs
	b.evs = nil
	return evs
}

// OnStatusUpdated implements syncer.Callbacks.
func (b *inbox) OnStatusUpdated(s syncer.Status) { b.push(event{status: s, isStat: true}) }

// OnUpdates implements syncer.Callbacks.
func (b *inbox) OnUpdates(ups []syncer.Update) { b.push(event{ups: ups}) }

var _ syncer.Callbacks = (*inbox)(nil)

// loop owns the calculation graph and drives the dataplane.
type loop struct {
	cfg              *config.Config
	global, node     *v3.FelixConfiguration
	be               backend.Client
	dp               Dataplane
	m                *metrics
	agg              *health.Aggregator
	notify           func(string)
	start            time.Time
	log              *logrus.Entry
	graph            *calc.Graph
	in               *inbox
	epStatus         *status.EndpointReporter
	configureLogging func(*config.Config)
	goRuntime        bool
	// pending counts the updates taken in since the last Apply.
	pending int
	// local workload endpoints' status keys, for endpoint status.
	epKeys map[dpapi.WorkloadID]model.WorkloadEndpointStatusKey
}

func newLoop(cfg *config.Config, global, node *v3.FelixConfiguration, be backend.Client, dp Dataplane, m *metrics,
	agg *health.Aggregator, notify func(string), start time.Time, log *logrus.Entry) *loop {
	return &loop{
		cfg: cfg, global: global, node: node, be: be, dp: dp, m: m, agg: agg, notify: notify, start: start, log: log,
		graph:  calc.New(cfg.FelixHostname, log.WithField("component", "calc")),
		in:     newInbox(),
		epKeys: map[dpapi.WorkloadID]model.WorkloadEndpointStatusKey{},
	}
}

// Apply retry backoff.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 10 * time.Second
)

func (l *loop) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: defers run last-in first-out
	defer cancel()

	sy := syncer.New(l.be, syncer.Config{Prefixes: syncPrefixes(), Unmarshal: gojson.Unmarshal}, l.in, l.log.WithField("component", "syncer"))
	syncDone := make(chan error, 1)
	wg.Go(func() { syncDone <- sy.Run(ctx) })

	rep := status.NewReporter(l.be, l.cfg.FelixHostname, l.cfg.ReportingIntervalSecs, l.cfg.ReportingTTLSecs, l.start,
		l.log.WithField("component", "status"))
	repStarted := false

	var (
		st         = syncer.WaitForDatastore
		dirty      = true  // graph changed since the last successful Apply (the first InSync always applies)
		applied    = false // some Apply succeeded
		ready      = false
		retryDelay time.Duration
		retryAt    time.Time
		retry      = time.NewTimer(time.Hour)
		heartbeat  = time.NewTicker(heartbeatInterval(l.cfg.DataplaneWatchdogTimeout))
	)
	retry.Stop()
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			l.log.Info("Stopping; the dataplane is left as it is")
			return nil
		case err := <-syncDone:
			syncDone <- err
			if ctx.Err() == nil {
				return fmt.Errorf("syncer stopped: %w", err)
			}
			return nil
		case <-l.in.wake:
		case <-retry.C:
		case <-heartbeat.C:
		}
		for _, ev := range l.in.take() {
			if ev.isStat {
				st = ev.status
				l.graph.OnStatusUpdated(st)
				l.m.setStatus(st)
				l.log.WithField("status", st).Info("Datastore status changed")
				continue
			}
			if err := l.onUpdates(ev.ups); err != nil {
				return err
			}
			dirty = true
		}
		if st == syncer.InSync && !repStarted {
			repStarted = true
			wg.Go(func() { rep.Run(ctx) })
		}
		if st == syncer.InSync && dirty && !time.Now().Before(retryAt) {
			if err := l.apply(ctx); err != nil {
				if ctx.Err() != nil {
					continue // stopping
				}
				retryDelay = min(max(2*retryDelay, retryFirst), retryMax)
				l.log.WithError(err).WithField("retryIn", retryDelay).Warn("Applying dataplane state failed; will retry")
				l.m.applyFailures.Inc()
				retryAt = time.Now().Add(retryDelay)
				retry.Reset(retryDelay)
			} else {
				dirty, applied, retryDelay, retryAt = false, true, 0, time.Time{}
			}
		}
		nowReady := applied && st == syncer.InSync
		// Health first, so that whoever hears READY=1 finds /readiness
		// agreeing.
		l.agg.Report("felix", true, nowReady)
		if nowReady && !ready {
			l.log.Info("Dataplane in sync with the datastore; felix is ready")
			l.notify("READY=1")
		}
		ready = nowReady
	}
}

// heartbeatInterval reports liveness often enough for the watchdog
// timeout: every 10 s, or a third of a shorter timeout.
func heartbeatInterval(timeout time.Duration) time.Duration {
	if timeout > 0 && timeout/3 < 10*time.Second {
		return max(timeout/3, 100*time.Millisecond)
	}
	return 10 * time.Second
}

// onUpdates feeds a batch to the graph and watches felix's own config.
func (l *loop) onUpdates(ups []syncer.Update) error {
	t := time.Now()
	l.graph.OnUpdates(ups)
	l.m.calcTime.Observe(time.Since(t).Seconds())
	l.m.updates.Add(float64(len(ups)))
	l.pending += len(ups)
	for i := range ups {
		l.m.messages.WithLabelValues(messageType(ups[i])).Inc()
	}
	cfgChanged := false
	for i := range ups {
		k, ok := ups[i].Key.(model.ResourceKey)
		if !ok {
			continue
		}
		switch k.Kind {
		case v3.KindFelixConfiguration:
			fc, _ := ups[i].Value.(*v3.FelixConfiguration)
			switch k.Name {
			case "default":
				l.global, cfgChanged = fc, true
			case "node." + l.cfg.FelixHostname:
				l.node, cfgChanged = fc, true
			}
		case v3.KindWorkloadEndpoint:
			id := dpapi.WorkloadID(k.Namespace + "/" + k.Name)
			w, ok := ups[i].Value.(*v3.WorkloadEndpoint)
			if !ok || w.Spec.Node != l.cfg.FelixHostname {
				delete(l.epKeys, id)
				continue
			}
			wl := w.Spec.Workload
			if w.Spec.Orchestrator == v3.OrchestratorKubernetes {
				wl = k.Namespace + "/" + w.Spec.Pod
			}
			l.epKeys[id] = status.EndpointKey(l.cfg.FelixHostname, w.Spec.Orchestrator, firstNonEmpty(wl, w.Spec.ContainerID, k.Name), firstNonEmpty(w.Spec.Endpoint, "eth0"))
		}
	}
	if !cfgChanged {
		return nil
	}
	next := l.cfg.WithDatastore(l.global, l.node)
	warnRefusals(l.log, next)
	l.m.setRefusals(next.Refusals())
	if diff := config.RestartNeeded(l.cfg, next); len(diff) > 0 {
		l.log.WithField("params", diff).Warn("FelixConfiguration changed parameters that need a restart; exiting so that felix restarts")
		return ErrRestartNeeded
	}
	applyLogLevel(l.log, next, l.configureLogging)
	if l.goRuntime {
		applyGoRuntime(l.log, next)
	}
	l.cfg = next
	return nil
}

// messageType names an update for felix_int_dataplane_messages:
// "<Kind>Update" or "<Kind>Remove".
func messageType(u syncer.Update) string {
	kind := "Unknown"
	switch k := u.Key.(type) {
	case model.ResourceKey:
		kind = k.Kind
	case model.BlockKey:
		kind = "IPAMBlock"
	case model.BlockAffinityKey:
		kind = "BlockAffinity"
	}
	if u.Value == nil {
		return kind + "Remove"
	}
	return kind + "Update"
}

// apply computes the state and hands it to the dataplane.
func (l *loop) apply(ctx context.Context) error {
	l.m.batchSize.Observe(float64(l.pending))
	l.pending = 0
	t := time.Now()
	s := l.graph.State()
	l.m.calcTime.Observe(time.Since(t).Seconds())
	l.m.setStats(l.graph.Stats())
	l.m.outputEvents.Inc()
	t = time.Now()
	if err := l.dp.Apply(ctx, s); err != nil {
		return err
	}
	l.log.WithFields(logrus.Fields{"workloads": len(s.Workloads), "policies": len(s.Policies), "ipsets": len(s.IPSets),
		"took": time.Since(t).Round(time.Millisecond)}).Debug("Dataplane state applied")
	if l.epStatus != nil {
		want := map[model.WorkloadEndpointStatusKey]string{}
		for id, k := range l.epKeys {
			if _, ok := s.Workloads[id]; ok {
				want[k] = "up"
			}
		}
		l.epStatus.Set(want)
	}
	return nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
