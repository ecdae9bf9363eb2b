package iptables

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the felix_iptables_* collectors, shared by the Tables of
// both IP versions.
type Metrics struct {
	restoreCalls  prometheus.Counter
	restoreErrors prometheus.Counter
	saveCalls     prometheus.Counter
	saveErrors    prometheus.Counter
	linesExecuted *prometheus.CounterVec
	chains        *prometheus.GaugeVec
	rules         *prometheus.GaugeVec
}

// NewMetrics makes unregistered collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		restoreCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felix_iptables_restore_calls", Help: "Number of iptables-restore calls."}),
		restoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felix_iptables_restore_errors", Help: "Number of iptables-restore errors."}),
		saveCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felix_iptables_save_calls", Help: "Number of iptables-save calls."}),
		saveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felix_iptables_save_errors", Help: "Number of iptables-save errors."}),
		linesExecuted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "felix_iptables_lines_executed", Help: "Number of iptables rule updates executed."},
			[]string{"ip_version", "table"}),
		chains: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "felix_iptables_chains", Help: "Number of active iptables chains."},
			[]string{"ip_version", "table"}),
		rules: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "felix_iptables_rules", Help: "Number of active iptables rules."},
			[]string{"ip_version", "table"}),
	}
}

// Collectors returns the collectors for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.restoreCalls, m.restoreErrors, m.saveCalls,
		m.saveErrors, m.linesExecuted, m.chains, m.rules}
}
