package plugin

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/cni-plugin/pkg/dataplane"
	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
)

// Main is the calico binary.
func Main() { netconf.PluginMain("calico", run) }

// run serves one verb: configuration from stdin, result to stdout, errors
// as CNI error codes.
func run(args *skel.CmdArgs, verb string) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return netconf.ConfigError(err)
	}
	p, closeAll, err := New(conf, os.Getenv, os.Stderr)
	if err != nil {
		return netconf.ConfigError(err)
	}
	defer closeAll()
	ctx, cancel := withTimeout()
	defer cancel()
	switch verb {
	case "ADD":
		res, err := p.Add(ctx, args)
		if err != nil {
			return cniError(err)
		}
		return types.PrintResult(res, conf.CNIVersion)
	case "DEL":
		return cniError(p.Del(ctx, args))
	case "CHECK":
		return cniError(p.Check(ctx, args))
	case "GC":
		return cniError(p.GC(ctx))
	case "STATUS":
		return cniError(p.Status(ctx))
	}
	return fmt.Errorf("unknown CNI command %s", verb)
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
