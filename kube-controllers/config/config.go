// Package config is calico-kube-controllers' configuration, read from the
// environment as Calico's is (ENABLED_CONTROLLERS, DATASTORE_TYPE,
// ETCD_*, KUBECONFIG, ...). Settings Calico has and this one does not
// support are refused out loud: FromEnv returns a warning naming each.
package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/apiconfig"
)

// Controller names, as in ENABLED_CONTROLLERS.
const (
	Policy           = "policy"
	Namespace        = "namespace"
	ServiceAccount   = "serviceaccount"
	WorkloadEndpoint = "workloadendpoint"
	Node             = "node"
)

// AllControllers is the default ENABLED_CONTROLLERS, in start order.
var AllControllers = []string{Policy, Namespace, ServiceAccount, WorkloadEndpoint, Node}

// Config is the whole configuration.
type Config struct {
	// Controllers are the enabled controllers.
	Controllers []string
	LogLevel    logrus.Level
	// Kubeconfig is a kubeconfig file; empty means in-cluster config.
	Kubeconfig string
	// Datastore is the etcd to write.
	Datastore *apiconfig.Spec
	// DatastoreTimeout bounds each etcd call.
	DatastoreTimeout time.Duration
	// ReconcilerPeriod compares everything again this often (0: only
	// at start and after etcd outages).
	ReconcilerPeriod time.Duration
	// CompactionPeriod compacts etcd's history this often, up to the
	// revision seen one period earlier, as Calico's does (0: never).
	CompactionPeriod time.Duration
	// Workers per controller.
	Workers map[string]int

	// HealthAddr serves /liveness and /readiness ("" disables).
	HealthAddr string
	// MetricsAddr serves Prometheus metrics ("" disables).
	MetricsAddr string

	// LeaderElection makes replicas take turns on a Lease.
	LeaderElection bool
	LeaseNamespace string
	LeaseName      string
	Identity       string
}

// Defaults.
const (
	DefaultReconcilerPeriod = 5 * time.Minute
	DefaultCompactionPeriod = 10 * time.Minute
	DefaultDatastoreTimeout = 10 * time.Second
	DefaultHealthPort       = 9095
	DefaultMetricsPort      = 9094
	DefaultLeaseName        = "calico-kube-controllers"
	DefaultLeaseNamespace   = "kube-system"
)

// workerEnv maps each controller to its worker-count variable.
var workerEnv = map[string]string{
	Policy:           "POLICY_WORKERS",
	Namespace:        "PROFILE_WORKERS",
	ServiceAccount:   "PROFILE_WORKERS",
	WorkloadEndpoint: "WORKLOAD_ENDPOINT_WORKERS",
	Node:             "NODE_WORKERS",
}

// FromEnv reads the configuration; getenv is os.Getenv when nil. It
// returns warnings for settings it accepts but does not act on, and an
// error naming the variable and value for anything invalid.
func FromEnv(getenv func(string) string) (*Config, []string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{Workers: map[string]int{}, LeaseName: DefaultLeaseName}
	var warnings []string

	c.Controllers = AllControllers
	if v := strings.TrimSpace(getenv("ENABLED_CONTROLLERS")); v != "" {
		c.Controllers = nil
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			switch {
			case n == "":
			case slices.Contains(AllControllers, n):
				if !slices.Contains(c.Controllers, n) {
					c.Controllers = append(c.Controllers, n)
				}
			default:
				return nil, nil, fmt.Errorf("ENABLED_CONTROLLERS: unknown controller %q (known: %s)", n, strings.Join(AllControllers, ","))
			}
		}
	}

	c.LogLevel = logrus.InfoLevel
	if v := getenv("LOG_LEVEL"); v != "" {
		l, err := logrus.ParseLevel(v)
		if err != nil {
			return nil, nil, fmt.Errorf("LOG_LEVEL=%q: %w", v, err)
		}
		c.LogLevel = l
	}

	switch v := getenv("DATASTORE_TYPE"); v {
	case "", apiconfig.DatastoreEtcdV3:
	default:
		return nil, nil, fmt.Errorf("DATASTORE_TYPE=%q is not supported: calico-kube-controllers writes etcd (etcdv3)", v)
	}
	ds, err := apiconfig.FromEnv(getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("datastore settings: %w", err)
	}
	c.Datastore = ds
	c.Kubeconfig = getenv("KUBECONFIG")

	durations := []struct {
		env string
		dst *time.Duration
		def time.Duration
	}{
		{"RECONCILER_PERIOD", &c.ReconcilerPeriod, DefaultReconcilerPeriod},
		{"COMPACTION_PERIOD", &c.CompactionPeriod, DefaultCompactionPeriod},
		{"DATASTORE_TIMEOUT", &c.DatastoreTimeout, DefaultDatastoreTimeout},
	}
	for _, d := range durations {
		*d.dst = d.def
		v := getenv(d.env)
		if v == "" {
			continue
		}
		p, err := time.ParseDuration(v)
		if err != nil || p < 0 {
			return nil, nil, fmt.Errorf("%s=%q: want a duration such as 5m (0 to disable)", d.env, v)
		}
		*d.dst = p
	}
	if c.DatastoreTimeout == 0 {
		return nil, nil, fmt.Errorf("DATASTORE_TIMEOUT=0: every etcd call needs a timeout")
	}

	for _, ctl := range AllControllers {
		env := workerEnv[ctl]
		c.Workers[ctl] = 1
		if v := getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100 {
				return nil, nil, fmt.Errorf("%s=%q: want a number of workers from 1 to 100", env, v)
			}
			c.Workers[ctl] = n
		}
	}

	health, err := boolEnv(getenv, "HEALTH_ENABLED", true)
	if err != nil {
		return nil, nil, err
	}
	if health {
		if c.HealthAddr, err = addr(getenv, "HEALTH_HOST", "HEALTH_PORT", DefaultHealthPort); err != nil {
			return nil, nil, err
		}
	}
	if c.MetricsAddr, err = addr(getenv, "PROMETHEUS_METRICS_HOST", "PROMETHEUS_METRICS_PORT", DefaultMetricsPort); err != nil {
		return nil, nil, err
	}

	if c.LeaderElection, err = boolEnv(getenv, "LEADER_ELECTION", true); err != nil {
		return nil, nil, err
	}
	c.LeaseNamespace = firstOf(getenv("LEADER_ELECTION_NAMESPACE"), getenv("POD_NAMESPACE"), DefaultLeaseNamespace)
	c.LeaseName = firstOf(getenv("LEADER_ELECTION_NAME"), DefaultLeaseName)
	c.Identity = getenv("POD_NAME")
	if c.Identity == "" {
		h, _ := os.Hostname()
		c.Identity = fmt.Sprintf("%s_%d", h, os.Getpid())
	}

	// Calico settings with no effect here.
	if v := getenv("AUTO_HOST_ENDPOINTS"); v != "" && !strings.EqualFold(v, "disabled") {
		warnings = append(warnings, fmt.Sprintf("AUTO_HOST_ENDPOINTS=%q is not supported: no host endpoints are created for nodes", v))
	}
	if v := getenv("SYNC_NODE_LABELS"); v != "" {
		warnings = append(warnings, fmt.Sprintf("SYNC_NODE_LABELS=%q is not supported: Kubernetes node labels are not copied to Calico nodes", v))
	}
	return c, warnings, nil
}

// Enabled reports whether controller name runs.
func (c *Config) Enabled(name string) bool { return slices.Contains(c.Controllers, name) }

func boolEnv(getenv func(string) string, env string, def bool) (bool, error) {
	v := getenv(env)
	if v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "true", "enabled", "yes", "1":
		return true, nil
	case "false", "disabled", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q: want true or false", env, v)
}

// addr returns host:port from the two variables; port 0 disables.
func addr(getenv func(string) string, hostEnv, portEnv string, defPort int) (string, error) {
	host := firstOf(getenv(hostEnv), "127.0.0.1")
	port := defPort
	if v := getenv(portEnv); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return "", fmt.Errorf("%s=%q: want a port from 0 (off) to 65535", portEnv, v)
		}
		port = p
	}
	if port == 0 {
		return "", nil
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
