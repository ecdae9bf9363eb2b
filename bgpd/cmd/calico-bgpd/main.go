// Command calico-bgpd is the per-host BGP daemon: gobgp embedded, driven
// by the config file calico-confd writes (see package bgpd/daemon).
//
// Every path is a flag so several hosts can run on one machine in
// different network namespaces. SIGHUP reloads the config file; SIGTERM
// stops bgpd and leaves its routes and its peers' routes in place
// (graceful restart).
//
// Multipath TCP is off for the whole process (the go:debug line below):
// since Go 1.24 listeners are MPTCP sockets by default, and the kernel
// refuses TCP_MD5SIG, IP_TTL and IP_MINTTL on them, so the side of a
// session that listens (the passive side) could use neither a BGP password
// nor TTL security. gobgp creates its listening sockets itself with no way
// to pass a net.ListenConfig, so the setting cannot be narrower; bgpd has
// no other TCP listener.
//
//go:debug multipathtcp=0
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/calico-etcd/calico/bgpd/daemon"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/daemonkit"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("calico-bgpd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := daemon.Config{SetHostname: setHostname}
	fs.StringVar(&cfg.RunDir, "run-dir", os.Getenv("CALICO_RUN_DIR"), "per-host state directory (default /var/run/calico)")
	fs.StringVar(&cfg.ConfigFile, "config", "", "BGP config written by calico-confd (default <run-dir>/bgpd.json)")
	fs.StringVar(&cfg.ControlSocket, "control-socket", "", "status socket for calicoctl node status (default <run-dir>/bgpd.ctl)")
	fs.StringVar(&cfg.Pidfile, "pidfile", "", "pidfile calico-confd signals (default <run-dir>/bgpd.pid)")
	fs.StringVar(&cfg.WorkloadPrefix, "workload-iface-prefix", daemon.DefaultWorkloadPrefix, "workload interface name prefix")
	fs.StringVar(&cfg.TunnelDevice, "ipip-device", daemon.DefaultTunnelDevice, "IPIP tunnel device for IPIP pools")
	fs.IntVar(&cfg.RouteProtocol, "route-protocol", daemon.DefaultRouteProtocol, "kernel protocol number of bgpd's routes")
	fs.DurationVar(&cfg.ConnectRetry, "connect-retry", daemon.DefaultConnectRetry, "BGP connect retry time")
	fs.DurationVar(&cfg.ResyncInterval, "resync-interval", daemon.DefaultResyncInterval, "kernel route resync interval")
	fs.DurationVar(&cfg.ConfigPollInterval, "config-poll-interval", daemon.DefaultConfigPollInterval, "re-read the config file this often even without SIGHUP")
	fs.DurationVar(&cfg.SweepTimeout, "sweep-timeout", daemon.DefaultSweepTimeout, "after a restart, keep the previous run's routes at most this long")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", daemon.DefaultDrainTimeout, "keep a removed session at most this long while routes are learned only over it")
	logLevel := fs.String("log-level", "info", "log level (the config's logLevel, if set, overrides it)")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.String("calico-bgpd"))
		return 0
	}
	log, err := daemonkit.Logger(*logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "calico-bgpd: %v\n", err)
		return 2
	}
	reload := daemonkit.Reloads()
	ctx, stop := daemonkit.SignalContext()
	defer stop()
	if err := daemon.Run(ctx, cfg, reload, log); err != nil {
		log.WithError(err).Error("calico-bgpd failed")
		return 1
	}
	return 0
}
