// Command calico-felix is the per-host policy and routing agent (see
// package felix/daemon). Parameters come from FELIX_* variables, the
// [global] section of the config file and the datastore's
// FelixConfiguration (package felix/config); the datastore itself from
// FELIX_ETCDENDPOINTS or the ETCD_* variables.
//
// Exit status: 0 after SIGTERM/SIGINT, 129 when a configuration change
// needs a restart (systemd starts felix again), 1 on errors.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/config"
	"github.com/calico-etcd/calico/felix/daemon"
	"github.com/calico-etcd/calico/felix/dataplane/linux"
	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/felix/logs"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/daemonkit"
)

// exitRestart tells systemd (Restart=on-failure) to start felix again.
const exitRestart = 129

func main() { os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr)) }

func run(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("calico-felix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts config.Options
	fs.StringVar(&opts.ConfigFile, "config-file", "", "felix config file (default "+config.DefaultConfigFile+" if present)")
	fs.StringVar(&opts.ConfigFile, "c", "", "shorthand for --config-file")
	fs.StringVar(&opts.NodenameFile, "nodename-file", "", "file holding the node name (default /var/lib/calico/nodename)")
	fs.StringVar(&opts.RunDir, "run-dir", "", "per-host state directory (default $CALICO_RUN_DIR or "+config.DefaultRunDir+")")
	fs.StringVar(&opts.MTUFile, "mtu-file", "", "file receiving the pod MTU for the CNI plugin (default "+config.DefaultMTUFile+")")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.String("calico-felix"))
		return 0
	}
	logger := logrus.New()
	logger.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	outs := logs.New(logger, stderr)
	defer outs.Close()
	log := logrus.NewEntry(logger).WithField("pid", os.Getpid())

	cfg, err := config.Load(opts, environ, log)
	if err != nil {
		log.WithError(err).Error("Loading configuration failed")
		return 1
	}
	// Env and file first; the daemon redoes this with the datastore's
	// FelixConfiguration merged, and after every change.
	configureLogging := func(c *config.Config) {
		if err := outs.SetFile(c.LogFilePath); err != nil {
			log.WithError(err).WithField("file", c.LogFilePath).Error("Cannot open the log file; not logging to a file")
		}
		outs.SetLevels(c.LogSeverityScreen, c.LogSeverityFile, c.LogSeveritySys)
	}
	configureLogging(cfg)
	log.WithField("version", buildinfo.Version).Info("Felix starting")

	ctx, stop := daemonkit.SignalContext()
	defer stop()
	err = daemon.Run(ctx, cfg, daemon.Deps{
		Log:              log,
		ConfigureLogging: configureLogging,
		GoRuntime:        true,
		Collectors:       outs.Collectors(),
		NewDataplane: func(c dpapi.Config) (daemon.Dataplane, error) {
			return linux.New(c, linux.WithIPSetRestores(runtime.NumCPU()))
		},
	})
	switch {
	case errors.Is(err, daemon.ErrRestartNeeded):
		log.Warn("Felix exiting for a configuration change; expecting to be restarted")
		return exitRestart
	case err != nil:
		log.WithError(err).Error("Felix stopped")
		return 1
	}
	log.Info("Felix stopped; the dataplane is left in place")
	return 0
}
