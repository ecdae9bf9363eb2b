package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, warnings, err := FromEnv(env(map[string]string{"ETCD_ENDPOINTS": "http://127.0.0.1:2379"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %v", warnings)
	}
	if !slices.Equal(c.Controllers, AllControllers) {
		t.Errorf("controllers %v", c.Controllers)
	}
	if c.ReconcilerPeriod != 5*time.Minute || c.CompactionPeriod != 10*time.Minute || c.DatastoreTimeout != 10*time.Second {
		t.Errorf("periods %v %v %v", c.ReconcilerPeriod, c.CompactionPeriod, c.DatastoreTimeout)
	}
	if c.HealthAddr != "127.0.0.1:9095" || c.MetricsAddr != "127.0.0.1:9094" {
		t.Errorf("addresses %q %q", c.HealthAddr, c.MetricsAddr)
	}
	if !c.LeaderElection || c.LeaseNamespace != "kube-system" || c.LeaseName != "calico-kube-controllers" || c.Identity == "" {
		t.Errorf("leader election %v %q %q %q", c.LeaderElection, c.LeaseNamespace, c.LeaseName, c.Identity)
	}
	if c.Workers[WorkloadEndpoint] != 1 || c.Workers[Node] != 1 {
		t.Errorf("workers %v", c.Workers)
	}
}

func TestSettings(t *testing.T) {
	c, _, err := FromEnv(env(map[string]string{
		"ENABLED_CONTROLLERS": "node, policy,node", "RECONCILER_PERIOD": "1m", "COMPACTION_PERIOD": "0",
		"WORKLOAD_ENDPOINT_WORKERS": "4", "HEALTH_ENABLED": "false", "PROMETHEUS_METRICS_HOST": "::1",
		"POD_NAMESPACE": "calico-system", "POD_NAME": "kc-1", "LOG_LEVEL": "debug",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Controllers, []string{Node, Policy}) || !c.Enabled(Node) || c.Enabled(Namespace) {
		t.Errorf("controllers %v", c.Controllers)
	}
	if c.ReconcilerPeriod != time.Minute || c.CompactionPeriod != 0 || c.Workers[WorkloadEndpoint] != 4 {
		t.Errorf("%v %v %v", c.ReconcilerPeriod, c.CompactionPeriod, c.Workers)
	}
	if c.HealthAddr != "" || c.MetricsAddr != "[::1]:9094" || c.LeaseNamespace != "calico-system" || c.Identity != "kc-1" {
		t.Errorf("%q %q %q %q", c.HealthAddr, c.MetricsAddr, c.LeaseNamespace, c.Identity)
	}
}

// Bad values are refused with the variable and value named.
func TestBadValues(t *testing.T) {
	for _, c := range []struct{ k, v, want string }{
		{"ENABLED_CONTROLLERS", "policy,bogus", `unknown controller "bogus"`},
		{"DATASTORE_TYPE", "kubernetes", `DATASTORE_TYPE="kubernetes" is not supported`},
		{"RECONCILER_PERIOD", "often", `RECONCILER_PERIOD="often"`},
		{"COMPACTION_PERIOD", "-1m", `COMPACTION_PERIOD="-1m"`},
		{"DATASTORE_TIMEOUT", "0", "DATASTORE_TIMEOUT=0"},
		{"POLICY_WORKERS", "0", `POLICY_WORKERS="0"`},
		{"HEALTH_ENABLED", "maybe", `HEALTH_ENABLED="maybe"`},
		{"HEALTH_PORT", "70000", `HEALTH_PORT="70000"`},
		{"LEADER_ELECTION", "2", `LEADER_ELECTION="2"`},
		{"LOG_LEVEL", "loud", `LOG_LEVEL="loud"`},
	} {
		_, _, err := FromEnv(env(map[string]string{c.k: c.v}))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%s: %v, want %q", c.k, c.v, err, c.want)
		}
	}
}

// Calico settings this one does not act on are named in a warning.
func TestUnsupportedWarned(t *testing.T) {
	_, warnings, err := FromEnv(env(map[string]string{"AUTO_HOST_ENDPOINTS": "enabled", "SYNC_NODE_LABELS": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "AUTO_HOST_ENDPOINTS") || !strings.Contains(warnings[1], "SYNC_NODE_LABELS") {
		t.Errorf("warnings %v", warnings)
	}
}
