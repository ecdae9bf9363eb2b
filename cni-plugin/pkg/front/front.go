// Package front is the calico binary: a small program that hands each
// CNI request to calico-cni-agent (package agent) and, when no agent
// listens, runs calico-direct, the whole plugin, from its own directory.
// It links neither the etcd nor the Kubernetes client, so that it starts
// as fast as the reference plugins.
package front

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/libcalico/buildinfo"

	"github.com/calico-etcd/calico/cni-plugin/pkg/agent"
)

// DirectBinary is the whole plugin, run when no agent answers.
const DirectBinary = "calico-direct"

// replyTimeout bounds the wait for the agent, which bounds each request
// by 90 s itself.
const replyTimeout = 100 * time.Second

// Main is the calico binary.
func Main() {
	for _, a := range os.Args[1:] {
		if a == "-v" || a == "--version" || a == "version" {
			fmt.Println(buildinfo.String("calico"))
			return
		}
	}
	verb := func(v string) func(*skel.CmdArgs) error {
		return func(a *skel.CmdArgs) error { return forward(v, a) }
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: verb("ADD"), Del: verb("DEL"), Check: verb("CHECK"), GC: verb("GC"), Status: verb("STATUS"),
	}, agent.SupportedVersions, buildinfo.String("calico"))
}

// forward sends the request to the agent named by the configuration's
// agent_socket (agent.DefaultSocket when unset) and prints its answer.
func forward(verb string, args *skel.CmdArgs) error {
	var conf struct {
		AgentSocket string `json:"agent_socket"`
	}
	if err := json.Unmarshal(args.StdinData, &conf); err != nil || (conf.AgentSocket != "" && !filepath.IsAbs(conf.AgentSocket)) {
		return direct(args) // which refuses it, naming the field
	}
	socket := cmp.Or(conf.AgentSocket, agent.DefaultSocket)
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	// The namespace is passed open: the runtime may have pinned it in a
	// mount namespace the agent does not share. One that cannot be opened
	// (gone, at DEL) is left for the agent to find so.
	var netns *os.File
	if args.Netns != "" {
		if f, err := os.Open(args.Netns); err == nil {
			defer f.Close()
			netns = f
		}
	}
	resp, err := agent.Call(ctx, socket, &agent.Request{
		Version: agent.ProtocolVersion, Command: verb, ContainerID: args.ContainerID, Netns: args.Netns,
		IfName: args.IfName, Args: args.Args, Path: args.Path, Env: os.Environ(), Stdin: args.StdinData,
	}, netns)
	switch {
	case errors.Is(err, agent.ErrNoAgent):
		return direct(args)
	case err != nil:
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	case resp.Direct:
		return direct(args)
	}
	_, _ = os.Stderr.Write(resp.Stderr)
	if resp.Error != nil {
		return resp.Error
	}
	_, err = os.Stdout.Write(resp.Stdout)
	return err
}

// direct runs calico-direct on the same request and exits as it does. It
// dies with this process, as it would had the runtime run it.
func direct(args *skel.CmdArgs) error {
	self, err := os.Executable()
	if err != nil {
		return types.NewError(types.ErrInternal, "finding "+DirectBinary+": "+err.Error(), "")
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(self), DirectBinary))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(args.StdinData), os.Stdout, os.Stderr
	// Pdeathsig follows the thread that starts the child: keep it.
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		os.Exit(ee.ExitCode()) // its error is printed already
	}
	if err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("no calico-cni-agent answered, and running %s failed: %v", cmd.Path, err), "")
	}
	os.Exit(0)
	return nil
}
