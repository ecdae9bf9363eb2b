// Package plugin is the calico CNI plugin: it ties IPAM, the dataplane and
// the WorkloadEndpoint together for each CNI verb.
//
//	ADD    IPAM with the WorkloadEndpoint in its transaction ∥ veth
//	       pair, links up, pod addresses → host routes → result.
//	       A failure at any step undoes the steps that succeeded:
//	       endpoint, veth, this ADD's addresses. Repeated for a
//	       container (a retry, even of an ADD killed midway), it
//	       finishes the attachment: the handle's addresses, its own
//	       earlier veth made again, the endpoint replaced.
//	DEL    pod interface (and with it the host veth) ∥ the endpoint, only
//	       if this container owns it; IPAM release by handle once the host
//	       no longer routes to the pod. Anything already gone is success.
//	CHECK  IPAM, then endpoint, then interfaces and routes against
//	       prevResult.
//	STATUS datastore reachable and a pool with free addresses (error 50).
//	GC     IPAM GC, then this node's endpoints of this network whose
//	       attachment is not among cni.dev/valid-attachments.
//
// With ipam type calico-ipam the allocation runs in-process (package
// ipamplugin); any other type is executed through the CNI invoke library.
package plugin

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"

	"github.com/calico-etcd/calico/cni-plugin/pkg/dataplane"
	"github.com/calico-etcd/calico/cni-plugin/pkg/ipamplugin"
	"github.com/calico-etcd/calico/cni-plugin/pkg/k8s"
	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
	"github.com/calico-etcd/calico/cni-plugin/pkg/wep"
)

// IPAM is the address side of a request: the in-process calico-ipam
// (*ipamplugin.Plugin) or a delegated plugin.
type IPAM interface {
	// Add assigns the attachment's addresses, each with its subnet's or
	// block's prefix length. On error it has released what it assigned.
	Add(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) (*current.Result, error)
	// Del releases the attachment's addresses; none is success.
	Del(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) error
	// Check verifies the attachment still holds its addresses.
	Check(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) error
	// GC releases addresses of attachments not in conf.ValidAttachments.
	GC(ctx context.Context, conf *netconf.NetConf) error
	// Status reports whether Add can succeed, as a CNI error when not.
	Status(ctx context.Context, conf *netconf.NetConf) error
}

var _ IPAM = (*ipamplugin.Plugin)(nil)

// Plugin serves the CNI verbs of one request.
type Plugin struct {
	Conf *Config
	// Node is this host's Calico node name.
	Node   string
	Client *client.Client
	// Pools answers STATUS's "is there room"; nil skips that check.
	Pools    *ipam.Client
	IPAM     IPAM
	Endpoint *wep.Store
	DP       dataplane.Dataplane
	Log      *logrus.Entry
	// Prime, when set, readies the datastore client's first request
	// (see etcd.Client.Prime); ADD calls it while it would wait.
	Prime func()
	// Kube reads pods in Kubernetes mode; nil in etcd mode.
	Kube *k8s.Client
}

// RequestTimeout bounds one CNI request, as Calico's plugin does.
const RequestTimeout = ipamplugin.RequestTimeout

// KubeTimeout bounds each request to the Kubernetes API server.
const KubeTimeout = 10 * time.Second

// New builds the Plugin for a configuration: logger, node name, etcd
// client, IPAM and the kernel dataplane. The returned function releases
// what New opened.
func New(conf *Config, getenv func(string) string, stderr io.Writer) (*Plugin, func(), error) {
	o, closeAll, err := conf.Open(getenv, stderr)
	if err != nil {
		return nil, nil, err
	}
	log, node, be := o.Log, o.Node, o.Backend
	log = log.WithFields(logrus.Fields{"node": node, "network": conf.Name})
	for _, w := range conf.Warnings {
		log.Warn(w)
	}
	var kube *k8s.Client
	if kc := conf.KubeConfig(); kc.Enabled() {
		if kube, err = k8s.NewClient(kc, KubeTimeout); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	ic, err := ipam.New(be, log, ipam.Options{})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	c := client.New(be)
	p := &Plugin{
		Conf: conf, Node: node, Client: c, Pools: ic,
		Endpoint: wep.NewStore(c, log), DP: dataplane.NewKernel(log), Log: log, Prime: be.Prime, Kube: kube,
	}
	if conf.IPAM.Type == CalicoIPAM {
		p.IPAM = &ipamplugin.Plugin{IPAM: ic, Client: c, Nodename: node, LockFile: conf.LockFile(getenv),
			RunDir: netconf.RunDir(getenv), AwaitConnection: be.AwaitConnection, Log: log}
	} else {
		p.IPAM = &Delegated{Type: conf.IPAM.Type, Stdin: conf.Raw}
	}
	return p, closeAll, nil
}

// Delegated runs another IPAM plugin (host-local, ...) through the CNI
// invoke library, with the request's configuration and environment.
type Delegated struct {
	Type string
	// Stdin is the configuration passed on.
	Stdin []byte
	// Exec runs the plugin; nil for the real one.
	Exec invoke.Exec
}

var _ IPAM = (*Delegated)(nil)

// Add implements IPAM.
func (d *Delegated) Add(ctx context.Context, _ *netconf.NetConf, _ *skel.CmdArgs) (*current.Result, error) {
	r, err := invoke.DelegateAdd(ctx, d.Type, d.Stdin, d.Exec)
	if err != nil {
		return nil, fmt.Errorf("ipam plugin %s: %w", d.Type, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		_ = invoke.DelegateDel(context.WithoutCancel(ctx), d.Type, d.Stdin, d.Exec)
		return nil, fmt.Errorf("converting the result of ipam plugin %s: %w", d.Type, err)
	}
	return res, nil
}

// Del implements IPAM.
func (d *Delegated) Del(ctx context.Context, _ *netconf.NetConf, _ *skel.CmdArgs) error {
	if err := invoke.DelegateDel(ctx, d.Type, d.Stdin, d.Exec); err != nil {
		return fmt.Errorf("ipam plugin %s: %w", d.Type, err)
	}
	return nil
}

// Check implements IPAM.
func (d *Delegated) Check(ctx context.Context, _ *netconf.NetConf, _ *skel.CmdArgs) error {
	if err := invoke.DelegateCheck(ctx, d.Type, d.Stdin, d.Exec); err != nil {
		return fmt.Errorf("ipam plugin %s: %w", d.Type, err)
	}
	return nil
}

// GC implements IPAM.
func (d *Delegated) GC(ctx context.Context, _ *netconf.NetConf) error {
	if err := invoke.DelegateGC(ctx, d.Type, d.Stdin, d.Exec); err != nil {
		return fmt.Errorf("ipam plugin %s: %w", d.Type, err)
	}
	return nil
}

// Status implements IPAM.
func (d *Delegated) Status(ctx context.Context, _ *netconf.NetConf) error {
	return invoke.DelegateStatus(ctx, d.Type, d.Stdin, d.Exec)
}

// withTimeout bounds a request.
func withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), RequestTimeout)
}

// sinceMS and ms are for log fields.
func sinceMS(t time.Time) float64 { return ms(time.Since(t)) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
