// Package status writes felix's reports to the datastore, as Calico does:
// the lease-backed liveness key
// /calico/felix/v2/no-region/host/<node>/status (TTL, refreshed every
// reporting interval), its durable copy last_reported_status, and, when
// enabled, one key per local workload endpoint saying "up" or "down".
package status

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Report is the value of both felix status keys (Calico's
// ActiveStatusReport).
type Report struct {
	Time        string  `json:"time"`
	Uptime      float64 `json:"uptime"`
	FirstUpdate bool    `json:"first_update"`
}

// Reporter refreshes the felix status keys of one host.
type Reporter struct {
	be       backend.Client
	host     string
	interval time.Duration
	ttl      time.Duration
	start    time.Time
	log      *logrus.Entry
}

// NewReporter returns a reporter; start is the process start time.
func NewReporter(be backend.Client, host string, interval, ttl time.Duration, start time.Time, log *logrus.Entry) *Reporter {
	return &Reporter{be: be, host: host, interval: interval, ttl: ttl, start: start, log: log}
}

// Run reports at once and then every interval until ctx ends. Failures are
// logged and retried at the next tick. An interval of 0 disables reports.
func (r *Reporter) Run(ctx context.Context) {
	if r.interval <= 0 {
		return
	}
	first := true
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if err := r.report(ctx, first); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.WithError(err).Warn("Writing felix status failed; will retry")
		} else {
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Reporter) report(ctx context.Context, first bool) error {
	now := time.Now()
	b, err := json.Marshal(Report{
		Time:        now.UTC().Format(time.RFC3339),
		Uptime:      now.Sub(r.start).Seconds(),
		FirstUpdate: first,
	})
	if err != nil {
		return err
	}
	if _, err := r.be.Apply(ctx, &backend.KVPair{Key: model.FelixStatusKey{Hostname: r.host}, Value: b, TTL: r.ttl}); err != nil {
		return err
	}
	_, err = r.be.Apply(ctx, &backend.KVPair{Key: model.FelixStatusKey{Hostname: r.host, Last: true}, Value: b})
	return err
}

// EndpointStatus is the value of an endpoint status key.
type EndpointStatus struct {
	Status string `json:"status"`
}

// EndpointKey builds the status key of a workload endpoint. Calico's
// workload ID for Kubernetes is "<namespace>/<pod>", written with the '/'
// escaped.
func EndpointKey(host, orchestrator, workload, endpoint string) model.WorkloadEndpointStatusKey {
	return model.WorkloadEndpointStatusKey{
		Hostname:       host,
		OrchestratorID: orchestrator,
		WorkloadID:     strings.ReplaceAll(workload, "/", "%2f"),
		EndpointID:     endpoint,
	}
}

// EndpointReporter keeps the endpoint status keys of one host equal to
// what Set last asked for, writing at most once per delay.
type EndpointReporter struct {
	be    backend.Client
	host  string
	delay time.Duration
	log   *logrus.Entry

	mu   sync.Mutex
	want map[model.WorkloadEndpointStatusKey]string
	kick chan struct{}
}

// NewEndpointReporter returns a reporter that writes after each Set,
// waiting delay between writes.
func NewEndpointReporter(be backend.Client, host string, delay time.Duration, log *logrus.Entry) *EndpointReporter {
	return &EndpointReporter{be: be, host: host, delay: delay, log: log, kick: make(chan struct{}, 1)}
}

// Set replaces the desired statuses ("up" or "down" per key).
func (e *EndpointReporter) Set(want map[model.WorkloadEndpointStatusKey]string) {
	e.mu.Lock()
	e.want = maps.Clone(want)
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run writes changes until ctx ends. The first pass also deletes keys
// left by an earlier run for endpoints that are gone.
func (e *EndpointReporter) Run(ctx context.Context) {
	var have map[model.WorkloadEndpointStatusKey]string // nil until listed
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-retry.C:
		}
		e.mu.Lock()
		want := e.want
		e.mu.Unlock()
		if want == nil {
			continue
		}
		var err error
		if have == nil {
			have, err = e.list(ctx)
		}
		if err == nil {
			err = e.sync(ctx, want, have)
		}
		if err != nil && ctx.Err() == nil {
			e.log.WithError(err).Warn("Writing endpoint status failed; will retry")
			retry.Reset(max(e.delay, time.Second))
		}
		if !sleep(ctx, e.delay) {
			return
		}
	}
}

func (e *EndpointReporter) list(ctx context.Context) (map[model.WorkloadEndpointStatusKey]string, error) {
	l, err := e.be.List(ctx, model.FelixStatusListOptions{Hostname: e.host})
	if err != nil {
		return nil, err
	}
	have := map[model.WorkloadEndpointStatusKey]string{}
	for _, kv := range l.KVPairs {
		if k, ok := kv.Key.(model.WorkloadEndpointStatusKey); ok {
			var s EndpointStatus
			_ = json.Unmarshal(kv.Value, &s)
			have[k] = s.Status
		}
	}
	return have, nil
}

// sync makes the datastore match want, updating have as it goes.
func (e *EndpointReporter) sync(ctx context.Context, want, have map[model.WorkloadEndpointStatusKey]string) error {
	for k, s := range want {
		if have[k] == s {
			continue
		}
		b, _ := json.Marshal(EndpointStatus{Status: s})
		if _, err := e.be.Apply(ctx, &backend.KVPair{Key: k, Value: b}); err != nil {
			return err
		}
		have[k] = s
	}
	for k := range have {
		if _, ok := want[k]; ok {
			continue
		}
		if _, err := e.be.Delete(ctx, k, 0); err != nil && !isNotFound(err) {
			return err
		}
		delete(have, k)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func isNotFound(err error) bool { return errors.Is(err, cerrors.ErrNotFound) }
