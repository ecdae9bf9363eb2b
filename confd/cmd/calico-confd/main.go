// Command calico-confd renders this node's BGP configuration for
// calico-bgpd from the datastore (see package confd/daemon).
//
// Flags override the environment: NODENAME, CALICO_RUN_DIR, IP, IP6,
// IP_AUTODETECTION_METHOD, IP6_AUTODETECTION_METHOD, AS, CALICO_K8S_NODE_REF,
// CALICO_SECRETS_DIR, CALICO_CONFD_LOGLEVEL and the datastore's ETCD_*
// variables. The default IP pools come from CALICO_IPV4POOL_*,
// CALICO_IPV6POOL_* and NO_DEFAULT_POOLS (package libcalico/defaultpools).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/calico-etcd/calico/confd/daemon"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/daemonkit"
	"github.com/calico-etcd/calico/libcalico/defaultpools"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("calico-confd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg daemon.Config
	env := os.Getenv
	fs.StringVar(&cfg.NodeName, "nodename", env("NODENAME"), "this node's name (default: nodename file, then hostname)")
	fs.StringVar(&cfg.NodenameFile, "nodename-file", nodeinfo.DefaultNameFile, "file remembering the node name")
	fs.StringVar(&cfg.DatastoreConfig, "config", "", "CalicoAPIConfig file (default /etc/calico/calicoctl.cfg, else ETCD_* variables)")
	fs.StringVar(&cfg.DatastoreConfig, "c", "", "shorthand for --config")
	fs.StringVar(&cfg.RunDir, "run-dir", env("CALICO_RUN_DIR"), "per-host state directory (default /var/run/calico)")
	fs.StringVar(&cfg.ConfigFile, "bgp-config", "", "bgpd config file to write (default <run-dir>/bgpd.json)")
	fs.StringVar(&cfg.BgpdPidfile, "bgpd-pidfile", "", "bgpd's pidfile, for the reload signal (default <run-dir>/bgpd.pid)")
	fs.StringVar(&cfg.SecretsDir, "secrets-dir", env("CALICO_SECRETS_DIR"), "BGP password secrets: <dir>/<secret>/<key> (default /etc/calico/secrets)")
	fs.BoolVar(&cfg.OneTime, "onetime", false, "render once after the first sync and exit")
	fs.BoolVar(&cfg.Register, "register-node", true, "create or update this node's Node resource at start")
	fs.StringVar(&cfg.Node.IPv4, "ip", env("IP"), "IPv4 address: addr[/len], autodetect, can-reach=<ip> or none (empty: keep, else autodetect)")
	fs.StringVar(&cfg.Node.IPv6, "ip6", env("IP6"), "IPv6 address: addr[/len], autodetect, can-reach=<ip> or none (empty: keep)")
	fs.StringVar(&cfg.Node.IPv4Method, "ip-autodetection-method", env("IP_AUTODETECTION_METHOD"), "first-found, can-reach=, interface=, skip-interface=")
	fs.StringVar(&cfg.Node.IPv6Method, "ip6-autodetection-method", env("IP6_AUTODETECTION_METHOD"), "as --ip-autodetection-method, for IPv6")
	fs.StringVar(&cfg.Node.ASNumber, "as", env("AS"), "this node's AS number (empty: keep)")
	fs.BoolVar(&cfg.AllocateTunnelAddrs, "allocate-tunnel-addrs", true, "give this node the IPIP/VXLAN tunnel addresses its IP pools call for, and release the others")
	fs.StringVar(&cfg.Node.K8sNodeRef, "k8s-node-ref", nodeinfo.OptionsFromEnv("", env).K8sNodeRef, "this host's Kubernetes node name, recorded in the Node's orchRefs (empty: keep)")
	logLevel := fs.String("log-level", orDefault(env("CALICO_CONFD_LOGLEVEL"), "info"), "log level")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.String("calico-confd"))
		return 0
	}
	pools, err := defaultpools.FromEnv(env)
	if err != nil {
		fmt.Fprintf(stderr, "calico-confd: %v\n", err)
		return 2
	}
	cfg.DefaultPools = pools
	log, err := daemonkit.Logger(*logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "calico-confd: %v\n", err)
		return 2
	}
	ctx, stop := daemonkit.SignalContext()
	defer stop()
	if err := daemon.Run(ctx, cfg, log); err != nil && ctx.Err() == nil {
		log.WithError(err).Error("calico-confd failed")
		return 1
	}
	return 0
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
