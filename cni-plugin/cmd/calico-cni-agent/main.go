// Command calico-cni-agent serves the calico CNI binary's requests on a
// unix socket, with etcd connections it keeps open (see package agent).
//
// Flags override the environment: CALICO_CNI_AGENT_SOCKET and
// CALICO_CNI_AGENT_LOGLEVEL.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/daemonkit"

	"github.com/calico-etcd/calico/cni-plugin/pkg/agent"
	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
	"github.com/calico-etcd/calico/cni-plugin/pkg/plugin"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("calico-cni-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", cmp.Or(os.Getenv("CALICO_CNI_AGENT_SOCKET"), agent.DefaultSocket),
		"unix socket to serve (the network configuration's agent_socket)")
	level := fs.String("log-level", cmp.Or(os.Getenv("CALICO_CNI_AGENT_LOGLEVEL"), "info"), "log level")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.String("calico-cni-agent"))
		return 0
	}
	log, err := daemonkit.Logger(*level, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "calico-cni-agent:", err)
		return 2
	}
	ctx, stop := daemonkit.SignalContext()
	defer stop()
	l, err := agent.Listen(*socket)
	if err != nil {
		log.WithError(err).Error("Cannot listen")
		return 1
	}
	backends := &netconf.Backends{}
	defer backends.Close()
	srv := &agent.Server{Handler: plugin.Handler(backends, log), Logf: log.Warnf}
	log.WithField("socket", *socket).Info("Serving CNI requests")
	daemonkit.Notify("READY=1")
	err = srv.Serve(ctx, l)
	daemonkit.Notify("STOPPING=1")
	if err != nil {
		log.WithError(err).Error("Serving stopped")
		return 1
	}
	log.Info("Stopped")
	return 0
}
