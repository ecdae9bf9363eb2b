package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/calc"
	"github.com/calico-etcd/calico/felix/config"
	"github.com/calico-etcd/calico/libcalico/health"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// metrics are felix's own Prometheus metrics, named as Calico's.
type metrics struct {
	reg *prometheus.Registry

	calcTime        prometheus.Summary
	updates         prometheus.Counter
	localEndpoints  prometheus.Gauge
	activePolicies  prometheus.Gauge
	activeSelectors prometheus.Gauge
	numHosts        prometheus.Gauge
	numPolicies     prometheus.Gauge
	numProfiles     prometheus.Gauge
	numWorkloads    prometheus.Gauge
	numHostEPs      prometheus.Gauge
	resyncState     prometheus.Gauge
	resyncsStarted  prometheus.Counter
	// applyFailures counts Apply errors; it is registered only when the
	// dataplane does not export felix_int_dataplane_failures itself.
	applyFailures prometheus.Counter
	outputEvents  prometheus.Counter
	// batchSize observes how many datastore updates each Apply took in;
	// messages counts them by kind and update or removal.
	batchSize prometheus.Summary
	messages  *prometheus.CounterVec
	// unsupported is 1 for each parameter set that felix does not act on.
	unsupported *prometheus.GaugeVec
}

func newMetrics(host string, goMetrics, processMetrics bool, extra []prometheus.Collector, log *logrus.Entry) *metrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		calcTime: prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_calc_graph_update_time_seconds",
			Help: "Seconds to update calculation graph for each datastore OnUpdate call."}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_calc_graph_updates_processed",
			Help: "Number of datastore updates processed by the calculation graph."}),
		outputEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_calc_graph_output_events",
			Help: "Number of events emitted by the calculation graph."}),
		localEndpoints:  g("felix_active_local_endpoints", "Number of active endpoints on this host."),
		activePolicies:  g("felix_active_local_policies", "Number of active policies on this host."),
		activeSelectors: g("felix_active_local_selectors", "Number of active selectors on this host."),
		numHosts:        g("felix_cluster_num_hosts", "Total number of calico hosts in the cluster."),
		numPolicies:     g("felix_cluster_num_policies", "Total number of policies cluster-wide."),
		numProfiles:     g("felix_cluster_num_profiles", "Total number of profiles cluster-wide."),
		numWorkloads:    g("felix_cluster_num_workload_endpoints", "Total number of workload endpoints cluster-wide."),
		numHostEPs:      g("felix_cluster_num_host_endpoints", "Total number of host endpoints cluster-wide."),
		resyncState:     g("felix_resync_state", "Current datastore state."),
		resyncsStarted: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_resyncs_started",
			Help: "Number of times Felix has started resyncing with the datastore."}),
		applyFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_int_dataplane_failures",
			Help: "Number of times dataplane updates failed and will be retried."}),
	}
	m.batchSize = prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_int_dataplane_msg_batch_size",
		Help:       "Number of messages processed in each batch. Higher values indicate we're doing more batching to try to keep up.",
		Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_int_dataplane_messages",
		Help: "Number dataplane messages by type."}, []string{"type"})
	m.unsupported = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_config_unsupported",
		Help: "Configuration parameters that are set but that this felix does not act on (1 each), by parameter and source."},
		[]string{"param", "source"})
	// Tags are gone from Calico's v3 API; Calico still exports the gauge.
	tags := g("felix_active_local_tags", "Number of active tags on this host.")
	m.reg.MustRegister(m.batchSize, m.messages, m.unsupported, tags)
	hostGauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_host",
		Help: "Configured Felix hostname (as a label), typically used in grouping/aggregating stats; the label defaults to the hostname of the host but can be overridden by configuration. The value of the gauge is always set to 1."},
		[]string{"host"})
	hostGauge.WithLabelValues(host).Set(1)
	m.reg.MustRegister(m.calcTime, m.updates, m.outputEvents, m.localEndpoints, m.activePolicies, m.activeSelectors,
		m.numHosts, m.numPolicies, m.numProfiles, m.numWorkloads, m.numHostEPs, m.resyncState, m.resyncsStarted, hostGauge)
	if goMetrics {
		m.reg.MustRegister(collectors.NewGoCollector())
	}
	if processMetrics {
		m.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range extra {
		if err := m.reg.Register(c); err != nil {
			log.WithError(err).Warn("Skipping a dataplane metric that clashes with another")
		}
	}
	if err := m.reg.Register(m.applyFailures); err != nil {
		log.Debug("The dataplane counts apply failures itself")
	}
	return m
}

// setRefusals sets felix_config_unsupported to the parameters refused now.
func (m *metrics) setRefusals(rs []config.Refusal) {
	m.unsupported.Reset()
	for _, r := range rs {
		m.unsupported.WithLabelValues(r.Name(), r.Source.String()).Set(1)
	}
}

// setStatus records a syncer status the way Calico numbers it
// (1 wait-for-datastore, 2 resync-in-progress, 3 in-sync).
func (m *metrics) setStatus(s syncer.Status) {
	m.resyncState.Set(float64(s) + 1)
	if s == syncer.ResyncInProgress {
		m.resyncsStarted.Inc()
	}
}

func (m *metrics) setStats(s calc.Stats) {
	m.localEndpoints.Set(float64(s.LocalEndpoints))
	m.activePolicies.Set(float64(s.ActivePolicies))
	m.activeSelectors.Set(float64(s.ActiveSelectors))
	m.numHosts.Set(float64(s.ClusterHosts))
	m.numPolicies.Set(float64(s.ClusterPolicies))
	m.numProfiles.Set(float64(s.ClusterProfiles))
	m.numWorkloads.Set(float64(s.ClusterWorkloads))
	m.numHostEPs.Set(float64(s.ClusterHostEndpoints))
}

// serveMetrics serves reg on PrometheusMetricsHost:PrometheusMetricsPort
// (loopback unless configured otherwise) until ctx ends, over TLS when
// the certificate files are set (see metricsTLS), and returns the address
// it listens on.
func serveMetrics(ctx context.Context, cfg *config.Config, reg *prometheus.Registry, log *logrus.Entry) (net.Addr, error) {
	tlsCfg, err := metricsTLS(cfg)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(cfg.PrometheusMetricsHost, strconv.Itoa(cfg.PrometheusMetricsPort))
	a, err := health.ServeTLS(ctx, addr, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), tlsCfg, log)
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"addr": a, "tls": tlsCfg != nil, "clientCerts": tlsCfg != nil && tlsCfg.ClientCAs != nil}).
		Info("Serving Prometheus metrics")
	return a, nil
}

// metricsTLS is the metrics endpoint's TLS, as Calico's: nil without
// PrometheusMetricsCertFile and KeyFile; PrometheusMetricsClientAuth says
// how client certificates are checked (against PrometheusMetricsCAFile),
// and when it is unset a CA file means they are required. The files are
// read once, at start.
func metricsTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.PrometheusMetricsCertFile == "" && cfg.PrometheusMetricsKeyFile == "" {
		if cfg.PrometheusMetricsCAFile != "" || cfg.PrometheusMetricsClientAuth != "" {
			return nil, errors.New("PrometheusMetricsCAFile or PrometheusMetricsClientAuth is set without PrometheusMetricsCertFile and PrometheusMetricsKeyFile")
		}
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cfg.PrometheusMetricsCertFile, cfg.PrometheusMetricsKeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading PrometheusMetricsCertFile and PrometheusMetricsKeyFile: %w", err)
	}
	out := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if cfg.PrometheusMetricsCAFile != "" {
		pem, err := os.ReadFile(cfg.PrometheusMetricsCAFile)
		if err != nil {
			return nil, fmt.Errorf("loading PrometheusMetricsCAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("loading PrometheusMetricsCAFile: no PEM certificate in %s", cfg.PrometheusMetricsCAFile)
		}
		out.ClientCAs, out.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	switch cfg.PrometheusMetricsClientAuth {
	case "":
	case "NoClientCert":
		out.ClientAuth = tls.NoClientCert
	case "RequireAnyClientCert":
		out.ClientAuth = tls.RequireAnyClientCert
	case "VerifyClientCertIfGiven", "RequireAndVerifyClientCert":
		if out.ClientCAs == nil {
			return nil, fmt.Errorf("PrometheusMetricsClientAuth %s needs PrometheusMetricsCAFile", cfg.PrometheusMetricsClientAuth)
		}
		out.ClientAuth = tls.VerifyClientCertIfGiven
		if cfg.PrometheusMetricsClientAuth == "RequireAndVerifyClientCert" {
			out.ClientAuth = tls.RequireAndVerifyClientCert
		}
	default:
		return nil, fmt.Errorf("unknown PrometheusMetricsClientAuth %q", cfg.PrometheusMetricsClientAuth)
	}
	return out, nil
}
