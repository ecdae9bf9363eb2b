// Command calico-kube-controllers mirrors Kubernetes NetworkPolicies,
// Namespaces, ServiceAccounts and pod labels into Calico's etcd datastore
// and cleans up after deleted Nodes (see packages config, daemon and
// controllers). It is configured by the environment, as Calico's is.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/daemonkit"

	"github.com/calico-etcd/calico/kube-controllers/config"
	"github.com/calico-etcd/calico/kube-controllers/daemon"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	for _, a := range args {
		switch a {
		case "-v", "--version", "version":
			fmt.Fprintln(stdout, buildinfo.String("calico-kube-controllers"))
			return 0
		default:
			fmt.Fprintf(stderr, "calico-kube-controllers: unknown argument %q (configuration is by environment; see docs/kubernetes.md)\n", a)
			return 2
		}
	}
	cfg, warnings, err := config.FromEnv(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "calico-kube-controllers: %v\n", err)
		return 2
	}
	log, err := daemonkit.Logger(cfg.LogLevel.String(), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "calico-kube-controllers: %v\n", err)
		return 2
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	log.WithField("controllers", cfg.Controllers).Info("starting " + buildinfo.String("calico-kube-controllers"))
	ctx, stop := daemonkit.SignalContext()
	defer stop()
	err = daemon.Run(ctx, cfg, log)
	switch {
	case errors.Is(err, daemon.ErrLostLeadership):
		log.Warn("lost the leader lease; exiting so as to restart as a standby")
		return 1
	case err != nil:
		log.WithError(err).Error("calico-kube-controllers failed")
		return 1
	}
	return 0
}
