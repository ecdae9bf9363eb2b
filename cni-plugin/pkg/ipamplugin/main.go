package ipamplugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"

	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
)

// SupportedVersions are the CNI spec versions the plugins speak.
var SupportedVersions = version.PluginSupports("0.3.1", "0.4.0", "1.0.0", "1.1.0")

// RequestTimeout bounds one CNI request, as Calico's 90 s.
const RequestTimeout = 90 * time.Second

// Main is the calico-ipam binary: it answers -v/--version and otherwise
// hands the CNI verbs to skel.
func Main() {
	netconf.TuneForShortLife()
	for _, a := range os.Args[1:] {
		if a == "-v" || a == "--version" || a == "version" {
			fmt.Println(buildinfo.String("calico-ipam"))
			return
		}
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    func(a *skel.CmdArgs) error { return run(a, "ADD") },
		Del:    func(a *skel.CmdArgs) error { return run(a, "DEL") },
		Check:  func(a *skel.CmdArgs) error { return run(a, "CHECK") },
		GC:     func(a *skel.CmdArgs) error { return run(a, "GC") },
		Status: func(a *skel.CmdArgs) error { return run(a, "STATUS") },
	}, SupportedVersions, buildinfo.String("calico-ipam"))
}

// run serves one verb of the binary: config from stdin, datastore and node
// name from it (and the environment), result to stdout.
func run(args *skel.CmdArgs, verb string) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	p, closeAll, err := New(conf, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
	defer cancel()
	switch verb {
	case "ADD":
		res, err := p.Add(ctx, conf, args)
		if err != nil {
			return err
		}
		return types.PrintResult(res, conf.CNIVersion)
	case "DEL":
		return p.Del(ctx, conf, args)
	case "CHECK":
		return p.Check(ctx, conf, args)
	case "GC":
		return p.GC(ctx, conf)
	case "STATUS":
		return p.Status(ctx, conf)
	}
	return fmt.Errorf("unknown CNI command %s", verb)
}

// New builds a Plugin from a network configuration: node name, logger,
// etcd client (timeouts bounded by RequestTimeout) and lock file. The
// returned function closes what it opened.
func New(conf *netconf.NetConf, getenv func(string) string, stderr io.Writer) (*Plugin, func(), error) {
	o, closeAll, err := conf.Open(getenv, stderr)
	if err != nil {
		return nil, nil, err
	}
	log, node, be := o.Log, o.Node, o.Backend
	ic, err := ipam.New(be, log, ipam.Options{})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return &Plugin{IPAM: ic, Client: client.New(be), Nodename: node, LockFile: conf.LockFile(getenv),
		Log: log.WithField("node", node)}, closeAll, nil
}
