package linux

import (
	"github.com/calico-etcd/calico/testutil"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/calico-etcd/calico/felix/dpapi"
)

// The collectors register cleanly and every name is one Calico uses.
func TestCollectorsUseFelixMetricNames(t *testing.T) {
	dp, err := New(dpapi.Config{Hostname: "h", Log: testLog(t)})
	must(t, err)
	reg := prometheus.NewPedanticRegistry()
	for _, c := range dp.Collectors() {
		must(t, reg.Register(c))
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(felix_[a-z_]+)"`).FindAllStringSubmatch(string(testutil.Fixture(t, "felix-metrics-names.txt")), -1) {
		known[m[1]] = true
	}
	nameRE := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for _, c := range dp.Collectors() {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			names = append(names, nameRE.FindStringSubmatch(d.String())[1])
		}
	}
	for _, want := range []string{"felix_iptables_restore_calls", "felix_iptables_restore_errors",
		"felix_int_dataplane_apply_time_seconds", "felix_ipset_calls", "felix_ipset_errors", "felix_ipsets_total",
		"felix_iptables_chains", "felix_iptables_rules", "felix_route_table_list_seconds", "felix_route_table_per_iface_sync_seconds",
		"felix_int_dataplane_iface_msg_batch_size"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("no collector named %s", want)
		}
	}
	if len(known) == 0 {
		t.Log("metric names fixture not found; skipping the name check")
		return
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s is not a Calico felix metric name", n)
		}
	}
}

// New touches nothing and rejects bad configuration.
func TestNewValidatesConfig(t *testing.T) {
	if _, err := New(dpapi.Config{IptablesMarkMask: 0x1}); err == nil {
		t.Error("a one-bit mark mask was accepted")
	}
	if _, err := New(dpapi.Config{DefaultEndpointToHostAction: "Maybe"}); err == nil {
		t.Error("a bad DefaultEndpointToHostAction was accepted")
	}
	if _, err := New(dpapi.Config{}, WithNetNS("no-such-namespace-xyz")); err == nil {
		t.Error("a missing namespace was accepted")
	}
}
