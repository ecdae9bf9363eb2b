package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/cni-plugin/pkg/agent"
	"github.com/calico-etcd/calico/cni-plugin/pkg/dataplane"
	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
)

// Main is the calico-direct binary: the whole plugin in one process.
func Main() {
	netconf.PluginMain("calico", func(args *skel.CmdArgs, verb string) error {
		ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
		defer cancel()
		out, err := serve(ctx, args, verb, os.Getenv, os.Stderr, nil)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(out)
		return err
	})
}

// Handler serves calico-cni-agent's requests as calico-direct would,
// each with the etcd connection backends keeps for its datastore. It
// logs a failed request as a warning and each at debug level to log (the
// request's own log goes back to the plugin binary's stderr). Requests
// whose IPAM is delegated to another plugin are sent back to be run
// directly: that plugin reads its settings from the process's
// environment.
func Handler(backends *netconf.Backends, log *logrus.Entry) agent.Handler {
	return func(ctx context.Context, req *agent.Request) *agent.Response {
		t0 := time.Now()
		resp := handle(ctx, req, backends)
		if resp.Error == nil && !log.Logger.IsLevelEnabled(logrus.DebugLevel) {
			return resp
		}
		l := log.WithFields(logrus.Fields{"command": req.Command, "container": req.ContainerID, "ms": sinceMS(t0), "direct": resp.Direct})
		if resp.Error != nil {
			l = l.WithFields(logrus.Fields{"code": resp.Error.Code, "error": resp.Error.Msg})
			l.Warn("Request failed")
		}
		l.Debug("Served")
		return resp
	}
}

// handle runs one request; see Handler.
func handle(ctx context.Context, req *agent.Request, backends *netconf.Backends) *agent.Response {
	args := &skel.CmdArgs{ContainerID: req.ContainerID, Netns: req.Netns, IfName: req.IfName,
		Args: req.Args, Path: req.Path, StdinData: req.Stdin}
	conf, err := ParseConfig(req.Stdin)
	if err == nil && conf.IPAM.Type != CalicoIPAM {
		return &agent.Response{Direct: true, Reason: "ipam type " + conf.IPAM.Type + " is delegated"}
	}
	env := make(map[string]string, len(req.Env))
	for _, kv := range req.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	var stderr bytes.Buffer
	var out []byte
	if err != nil {
		err = netconf.ConfigError(err)
	} else {
		out, err = serveConf(ctx, conf, args, req.Command, func(k string) string { return env[k] }, &stderr, backends)
	}
	resp := &agent.Response{Stdout: out, Stderr: stderr.Bytes()}
	if err != nil {
		// As skel reports a plugin's error.
		resp.Stdout = nil
		te, ok := err.(*types.Error)
		if !ok {
			te = types.NewError(types.ErrInternal, err.Error(), "")
		}
		resp.Error = te
	}
	return resp
}

// serve runs one verb: configuration from args, the result to print
// returned, errors as CNI error codes.
func serve(ctx context.Context, args *skel.CmdArgs, verb string, getenv func(string) string, stderr io.Writer, backends *netconf.Backends) ([]byte, error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, netconf.ConfigError(err)
	}
	return serveConf(ctx, conf, args, verb, getenv, stderr, backends)
}

// serveConf is serve with the configuration parsed.
func serveConf(ctx context.Context, conf *Config, args *skel.CmdArgs, verb string, getenv func(string) string, stderr io.Writer, backends *netconf.Backends) ([]byte, error) {
	p, closeAll, err := New(conf, getenv, stderr, backends)
	if err != nil {
		return nil, netconf.ConfigError(err)
	}
	defer closeAll()
	switch verb {
	case "ADD":
		res, err := p.Add(ctx, args)
		if err != nil {
			return nil, cniError(err)
		}
		r, err := res.GetAsVersion(conf.CNIVersion)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		if err := r.PrintTo(&out); err != nil {
			return nil, err
		}
		return out.Bytes(), nil
	case "DEL":
		return nil, cniError(p.Del(ctx, args))
	case "CHECK":
		return nil, cniError(p.Check(ctx, args))
	case "GC":
		return nil, cniError(p.GC(ctx))
	case "STATUS":
		return nil, cniError(p.Status(ctx))
	}
	return nil, fmt.Errorf("unknown CNI command %s", verb)
}

// cniError gives err a CNI error code: 3 when the pod's namespace is
// gone, else as calico-ipam's (netconf.CNIError): the code of a CNI error
// inside it (a delegated plugin's, STATUS's 50), 11 ("try again later")
// when etcd does not answer, else 999.
func cniError(err error) error {
	var te *types.Error
	if err != nil && !errors.As(err, &te) && errors.Is(err, dataplane.ErrNetNSNotFound) {
		return types.NewError(types.ErrUnknownContainer, err.Error(), "")
	}
	return netconf.CNIError(err)
}
