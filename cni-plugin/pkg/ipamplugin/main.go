package ipamplugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"

	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
)

// RequestTimeout bounds one CNI request, as Calico's 90 s.
const RequestTimeout = 90 * time.Second

// Main is the calico-ipam binary.
func Main() { netconf.PluginMain("calico-ipam", run) }

// run serves one verb of the binary: config from stdin, datastore and node
// name from it (and the environment), result to stdout.
func run(args *skel.CmdArgs, verb string) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return netconf.ConfigError(err)
	}
	p, closeAll, err := New(conf, os.Getenv, os.Stderr)
	if err != nil {
		return netconf.ConfigError(err)
	}
	defer closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
	defer cancel()
	switch verb {
	case "ADD":
		res, err := p.Add(ctx, conf, args)
		if err != nil {
			return netconf.CNIError(err)
		}
		return types.PrintResult(res, conf.CNIVersion)
	case "DEL":
		return netconf.CNIError(p.Del(ctx, conf, args))
	case "CHECK":
		return netconf.CNIError(p.Check(ctx, conf, args))
	case "GC":
		return netconf.CNIError(p.GC(ctx, conf))
	case "STATUS":
		return netconf.CNIError(p.Status(ctx, conf))
	}
	return fmt.Errorf("unknown CNI command %s", verb)
}

// New builds a Plugin from a network configuration: node name, logger,
// etcd client (timeouts bounded by RequestTimeout) and lock file. The
// returned function closes what it opened.
func New(conf *netconf.NetConf, getenv func(string) string, stderr io.Writer) (*Plugin, func(), error) {
	o, closeAll, err := conf.Open(getenv, stderr, nil)
	if err != nil {
		return nil, nil, err
	}
	log, node, be := o.Log, o.Node, o.Backend
	// The process's IPAM cache, loaded from and saved to the lock file
	// (ipamplugin), so that each plugin process assigns in one round trip.
	ic, err := ipam.New(be, log, ipam.Options{Cache: ipam.NewCache()})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return &Plugin{IPAM: ic, Client: client.New(be), Nodename: node, LockFile: conf.LockFile(getenv),
		RunDir: netconf.RunDir(getenv), AwaitConnection: be.AwaitConnection, Log: log.WithField("node", node)}, closeAll, nil
}
