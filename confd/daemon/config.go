// Package daemon runs confd: carry out calico-node's start-up duties
// (default IP pools, this host's Node, its tunnel addresses), sync the
// BGP resources from the datastore, compute the node's BGP configuration
// on every change (debounced), write it when it changed and tell bgpd.
//
//	defaultpools.Ensure ─► nodeinfo.Register ─► syncer ─┬─► calc.State ─(debounce)─► calc.Compute ─► output.Writer ─► output.Pidfile (SIGHUP bgpd)
//	                                                    └─► (IPPool or own Node changed) tunneladdr.Reconcile
//
// With OneTime it renders once, after the first complete sync, and
// returns.
package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/calico-etcd/calico/confd/secrets"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/daemonkit"
	"github.com/calico-etcd/calico/libcalico/defaultpools"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
)

// Config is confd's whole configuration; flags and environment are read
// only in main.
type Config struct {
	// NodeName is this node; empty means resolve it (NODENAME, the
	// nodename file, the hostname).
	NodeName string
	// NodenameFile remembers the node name.
	NodenameFile string
	// DatastoreConfig is a CalicoAPIConfig file; empty means
	// /etc/calico/calicoctl.cfg if present, else ETCD_* variables.
	DatastoreConfig string
	// DatastoreTimeout bounds every datastore call.
	DatastoreTimeout time.Duration
	// RunDir is CALICO_RUN_DIR; ConfigFile and BgpdPidfile default into it.
	RunDir      string
	ConfigFile  string
	BgpdPidfile string
	// BgpdProcessName is the name (/proc/<pid>/comm) the pidfile's
	// process must have to be signalled.
	BgpdProcessName string
	// SecretsDir holds BGP password secrets (package confd/secrets).
	SecretsDir string

	// Register creates or updates this node's Node resource at start
	// with Node (addresses and AS; package libcalico/nodeinfo).
	Register bool
	Node     nodeinfo.Options
	// DefaultPools are created at start when the cluster has no pool of
	// their IP version (package libcalico/defaultpools).
	DefaultPools defaultpools.Options
	// AllocateTunnelAddrs keeps this node's IPIP and VXLAN tunnel
	// addresses in line with the IP pools (package libcalico/tunneladdr).
	AllocateTunnelAddrs bool

	// OneTime renders once and exits.
	OneTime bool
	// Debounce waits for more changes before rendering.
	Debounce time.Duration
	// ResyncInterval re-renders even without datastore changes, which
	// picks up changed secret files.
	ResyncInterval time.Duration
	// Notify sends a systemd notification ("READY=1", "STOPPING=1"); nil
	// means sd_notify through $NOTIFY_SOCKET (a no-op without it).
	Notify func(state string)
}

// Defaults.
const (
	DefaultDebounce         = 20 * time.Millisecond
	DefaultResyncInterval   = time.Minute
	DefaultDatastoreTimeout = 10 * time.Second
	bgpdProcessName         = "calico-bgpd"
)

// WithDefaults fills empty fields.
func (c Config) WithDefaults() Config {
	c.RunDir = bgpconfig.RunDir(c.RunDir)
	if c.ConfigFile == "" {
		c.ConfigFile = bgpconfig.Path(c.RunDir)
	}
	if c.BgpdPidfile == "" {
		c.BgpdPidfile = bgpconfig.PidfilePath(c.RunDir)
	}
	if c.BgpdProcessName == "" {
		c.BgpdProcessName = bgpdProcessName
	}
	if c.NodenameFile == "" {
		c.NodenameFile = nodeinfo.DefaultNameFile
	}
	if c.SecretsDir == "" {
		c.SecretsDir = secrets.DefaultDir
	}
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.DatastoreTimeout == 0 {
		c.DatastoreTimeout = DefaultDatastoreTimeout
	}
	if c.Notify == nil {
		c.Notify = daemonkit.Notify
	}
	return c
}

// Validate checks a configuration after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	if c.Debounce < 0 || c.ResyncInterval < 0 || c.DatastoreTimeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	for name, p := range map[string]string{"config file": c.ConfigFile, "bgpd pidfile": c.BgpdPidfile} {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", name, p))
		}
	}
	return errors.Join(errs...)
}
