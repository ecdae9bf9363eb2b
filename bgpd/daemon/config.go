// Package daemon runs bgpd: it reads confd's config file, runs the BGP
// speaker, advertises this node's blocks and workload routes, programs the
// routes learned from peers and serves status on the control socket.
//
//	            SIGHUP / poll ──► config file ──► speaker (peers, policy) + routing.Plan
//	kernelwatch (cali* routes) ──► Plan.Export ──► speaker.Advertise / Withdraw
//	speaker.Watch (best paths) ──► Plan.Program ──► routetable (proto 12) ──► kernel
//	                 End-of-RIB ──► routetable.AllowSweep (graceful restart done)
//	control socket (bgpd.ctl) ◄── speaker.Status
//
// Everything but the status server runs on one goroutine (the loop), so
// the daemon's state needs no locks. On SIGTERM (ctx done) bgpd removes its
// pidfile and socket and exits without notifying its peers: they treat the
// lost sessions as a graceful restart and keep forwarding, and the routes
// bgpd installed stay in the kernel for the next run, which announces its
// restart (finding routes of its protocol in the kernel), replaces them and
// removes leftovers once every peer that does graceful restart has resent
// its routes (or SweepTimeout passes). A session re-created for new
// parameters keeps the routes its peer gave until the peer resends them;
// a removed session drains (speaker.Drain) before it goes.
package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/libcalico/daemonkit"
)

// Config is bgpd's configuration; flags and environment are read only in
// main.
type Config struct {
	// RunDir is CALICO_RUN_DIR; the paths below default into it.
	RunDir string
	// ConfigFile is confd's output (<run-dir>/bgpd.json).
	ConfigFile string
	// ControlSocket serves status (<run-dir>/bgpd.ctl).
	ControlSocket string
	// Pidfile is where confd finds bgpd to send SIGHUP (<run-dir>/bgpd.pid).
	Pidfile string
	// WorkloadPrefix names workload interfaces ("cali").
	WorkloadPrefix string
	// TunnelDevice is the IPIP device ("tunl0").
	TunnelDevice string
	// RouteProtocol marks bgpd's kernel routes (12, "bird").
	RouteProtocol int
	// ConnectRetry is the BGP connect retry time.
	ConnectRetry time.Duration
	// ResyncInterval re-checks the kernel tables.
	ResyncInterval time.Duration
	// ConfigPollInterval re-reads the config file even without SIGHUP.
	ConfigPollInterval time.Duration
	// SweepTimeout bounds how long routes of a previous run are kept
	// waiting for peers to resend theirs.
	SweepTimeout time.Duration
	// DrainTimeout bounds how long a session removed from the config keeps
	// running while routes are learned only over it (see speaker.Drain).
	DrainTimeout time.Duration
	// StopSessionsOnExit ends every session with a Cease notification
	// when Run returns, which defeats graceful restart: for embedding and
	// tests, where the process goes on after Run.
	StopSessionsOnExit bool
	// Notify sends a systemd notification ("READY=1", "STOPPING=1"); nil
	// means sd_notify through $NOTIFY_SOCKET (a no-op without it).
	Notify func(state string)
	// SetHostname, when set, is given the node name before any session
	// starts: gobgp advertises the process's host name in the hostname
	// capability. It changes process-wide state, so only main sets it.
	SetHostname func(name string) error
}

// Defaults.
const (
	DefaultWorkloadPrefix     = "cali"
	DefaultTunnelDevice       = "tunl0"
	DefaultRouteProtocol      = 12
	DefaultConnectRetry       = 5 * time.Second
	DefaultResyncInterval     = 90 * time.Second
	DefaultConfigPollInterval = 10 * time.Second
	DefaultSweepTimeout       = 120 * time.Second
	DefaultDrainTimeout       = 30 * time.Second
)

// WithDefaults fills empty fields.
func (c Config) WithDefaults() Config {
	c.RunDir = bgpconfig.RunDir(c.RunDir)
	if c.ConfigFile == "" {
		c.ConfigFile = bgpconfig.Path(c.RunDir)
	}
	if c.ControlSocket == "" {
		c.ControlSocket = bgpstatus.SocketPath(c.RunDir)
	}
	if c.Pidfile == "" {
		c.Pidfile = bgpconfig.PidfilePath(c.RunDir)
	}
	if c.WorkloadPrefix == "" {
		c.WorkloadPrefix = DefaultWorkloadPrefix
	}
	if c.TunnelDevice == "" {
		c.TunnelDevice = DefaultTunnelDevice
	}
	if c.RouteProtocol == 0 {
		c.RouteProtocol = DefaultRouteProtocol
	}
	if c.ConnectRetry == 0 {
		c.ConnectRetry = DefaultConnectRetry
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.ConfigPollInterval == 0 {
		c.ConfigPollInterval = DefaultConfigPollInterval
	}
	if c.SweepTimeout == 0 {
		c.SweepTimeout = DefaultSweepTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Notify == nil {
		c.Notify = daemonkit.Notify
	}
	return c
}

// Validate checks a configuration after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	for name, p := range map[string]string{"config file": c.ConfigFile, "control socket": c.ControlSocket, "pidfile": c.Pidfile} {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", name, p))
		}
	}
	if c.RouteProtocol < 1 || c.RouteProtocol > 255 {
		errs = append(errs, fmt.Errorf("route protocol %d is not 1-255", c.RouteProtocol))
	}
	for name, d := range map[string]time.Duration{"connect retry": c.ConnectRetry, "resync interval": c.ResyncInterval,
		"config poll interval": c.ConfigPollInterval, "sweep timeout": c.SweepTimeout, "drain timeout": c.DrainTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", name, d))
		}
	}
	return errors.Join(errs...)
}
