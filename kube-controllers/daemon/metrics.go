package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the controllers' Prometheus metrics.
type metrics struct {
	reg        *prometheus.Registry
	writes     *prometheus.CounterVec
	reconcile  *prometheus.HistogramVec
	queue      *prometheus.GaugeVec
	leader     prometheus.Gauge
	etcdInSync prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "calico_kube_controllers_writes_total",
			Help: "etcd writes by controller, operation (create, update, delete) and result (ok, error)."},
			[]string{"controller", "op", "result"}),
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "calico_kube_controllers_reconcile_seconds",
			Help: "Time to reconcile one key.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)},
			[]string{"controller"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "calico_kube_controllers_queue_length",
			Help: "Keys waiting to be reconciled."}, []string{"controller"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "calico_kube_controllers_is_leader",
			Help: "1 while this replica holds the leader lease."}),
		etcdInSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "calico_kube_controllers_etcd_in_sync",
			Help: "1 while the view of etcd is complete."}),
	}
	m.reg.MustRegister(m.writes, m.reconcile, m.queue, m.leader, m.etcdInSync,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Wrote implements mirror.Observer.
func (m *metrics) Wrote(controller, op string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.writes.WithLabelValues(controller, op, result).Inc()
}

// Reconciled implements mirror.Observer.
func (m *metrics) Reconciled(controller string, d time.Duration) {
	m.reconcile.WithLabelValues(controller).Observe(d.Seconds())
}
