package plugin

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/libcalico/cerrors"

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
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	p, closeAll, err := New(conf, os.Getenv, os.Stderr)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
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
// gone, 11 ("try again later") when etcd does not answer, the code of a
// CNI error inside it (a delegated plugin's, STATUS's 50), else 999.
func cniError(err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	code := uint(types.ErrInternal)
	switch {
	case errors.As(err, &te):
		if te.Error() == err.Error() {
			return te
		}
		code = te.Code
	case errors.Is(err, dataplane.ErrNetNSNotFound):
		code = types.ErrUnknownContainer
	case errors.Is(err, cerrors.ErrUnavailable):
		code = types.ErrTryAgainLater
	}
	return types.NewError(code, err.Error(), "")
}
