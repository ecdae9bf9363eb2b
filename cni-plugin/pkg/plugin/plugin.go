// Package plugin is the calico CNI plugin: it ties IPAM, the dataplane and
// the WorkloadEndpoint together for each CNI verb.
//
// ADD (Plugin.Add) is a straight sequence with one fork: the veth pair is
// made beside the datastore's steps. Each step that changes something has
// its own undo, and a failure runs the undos of the steps before it, last
// first:
//
//	  ┌ 1 veth pair made, links up (pod MAC chosen beforehand) ────────────┐
//	──┤                                                                    ├─ 5 configure ─ route ── result
//	  └ 2 plan: IPAM picks ─ 3 endpoint ─ 4 commit: addresses and         ┘    pod            host
//	        the addresses      built         endpoint, one etcd transaction     addresses      /32 routes
//	undo: delete the pair; release this ADD's addresses;  delete the endpoint   (a failed configure
//	                                                                             deletes the pair)
//
// IPAM plans under the host-wide lock from the state the lock file keeps,
// without reading etcd; the plan names the addresses, the endpoint is built
// from them, the host veth's name and the pod MAC, and Assignment.Commit
// writes both in one transaction (or, when it cannot, the addresses and
// then the endpoint). Neither side waits on the other until step 5, and
// IPAM never calls back into the plugin. Repeated for a container (a
// retry, even of an ADD killed midway), ADD finishes the attachment: the
// handle's addresses, its own earlier veth made again, the endpoint
// replaced.
//
//	DEL    pod interface (and with it the host veth) ∥ the endpoint, only
//	       if this container owns it; IPAM release by handle once the host
//	       no longer routes to the pod. Anything already gone is success.
//	CHECK  IPAM, then endpoint, then interfaces and routes against
//	       prevResult.
//	STATUS datastore reachable and a pool with free addresses (error 50).
//	GC     IPAM GC, then this node's endpoints of this network whose
//	       attachment is not among cni.dev/valid-attachments.
//
// With ipam type calico-ipam the allocation runs in-process
// (InProcessIPAM, over package ipamplugin); any other type is executed
// through the CNI invoke library (Delegated).
package plugin

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"

	"github.com/calico-etcd/calico/cni-plugin/pkg/dataplane"
	"github.com/calico-etcd/calico/cni-plugin/pkg/ipamplugin"
	"github.com/calico-etcd/calico/cni-plugin/pkg/k8s"
	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
	"github.com/calico-etcd/calico/cni-plugin/pkg/wep"
)

// IPAM is the address side of a request: calico-ipam in-process
// (InProcessIPAM) or a delegated plugin (Delegated).
type IPAM interface {
	// Plan starts an ADD's assignment of the attachment's addresses; the
	// caller must Commit or Undo the returned Assignment.
	Plan(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) (Assignment, error)
	// Del releases the attachment's addresses; none is success.
	Del(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) error
	// Check verifies the attachment still holds its addresses.
	Check(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) error
	// GC releases addresses of attachments not in conf.ValidAttachments.
	GC(ctx context.Context, conf *netconf.NetConf) error
	// Status reports whether an ADD can succeed, as a CNI error when not.
	Status(ctx context.Context, conf *netconf.NetConf) error
}

// Assignment is an ADD's addresses, planned but not yet written.
type Assignment interface {
	// Addrs returns the addresses Commit will write, when it can write
	// the caller's ops in the same transaction; nil when it cannot (it
	// then chooses the addresses as it writes them, and writes no ops).
	Addrs() []netip.Addr
	// Commit writes the addresses and, when Addrs returned them and their
	// guards hold, ops in the same transaction, whose revision rev is;
	// rev is 0 when ops were not written (the caller writes them
	// itself). On error it holds nothing it assigned.
	Commit(ctx context.Context, ops ...backend.TxnOp) (addrs []netip.Addr, rev int64, err error)
	// Undo gives back what Commit assigned, except addresses the
	// attachment held before this ADD (an earlier ADD of the container:
	// the DEL runtimes send after a failed ADD releases them); before
	// Commit it only gives up the plan.
	Undo(ctx context.Context) error
}

// InProcessIPAM is calico-ipam, run in-process: its plan names the
// addresses before anything is written, so that ADD can commit the
// WorkloadEndpoint with them in one transaction.
type InProcessIPAM struct{ *ipamplugin.Plugin }

var (
	_ IPAM       = InProcessIPAM{}
	_ Assignment = (*ipamplugin.Plan)(nil)
)

// Plan implements IPAM.
func (c InProcessIPAM) Plan(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) (Assignment, error) {
	pl, err := c.Plugin.Plan(ctx, conf, args)
	if err != nil {
		return nil, err
	}
	return pl, nil
}

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
	// Kube reads pods in Kubernetes mode; nil in etcd mode.
	Kube *k8s.Client
}

// RequestTimeout bounds one CNI request, as Calico's plugin does.
const RequestTimeout = ipamplugin.RequestTimeout

// KubeTimeout bounds each request to the Kubernetes API server.
const KubeTimeout = 10 * time.Second

// New builds the Plugin for a configuration: logger, node name, etcd
// client (one of backends' when set), IPAM and the kernel dataplane. The
// returned function releases what New opened.
func New(conf *Config, getenv func(string) string, stderr io.Writer, backends *netconf.Backends) (*Plugin, func(), error) {
	o, closeAll, err := conf.Open(getenv, stderr, backends)
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
	// The process's IPAM cache, loaded from and saved to the lock file
	// (ipamplugin), so that each plugin process assigns in one round trip.
	ic, err := ipam.New(be, log, ipam.Options{Cache: ipam.NewCache()})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	c := client.New(be)
	p := &Plugin{
		Conf: conf, Node: node, Client: c, Pools: ic,
		Endpoint: wep.NewStore(c, log), DP: dataplane.NewKernel(log), Log: log, Kube: kube,
	}
	if conf.IPAM.Type == CalicoIPAM {
		p.IPAM = InProcessIPAM{&ipamplugin.Plugin{IPAM: ic, Client: c, Nodename: node, LockFile: conf.LockFile(getenv),
			RunDir: netconf.RunDir(getenv), AwaitConnection: be.AwaitConnection, Log: log}}
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

// Plan implements IPAM: the delegated plugin assigns when the plan is
// committed, and no ops are written with its addresses.
func (d *Delegated) Plan(context.Context, *netconf.NetConf, *skel.CmdArgs) (Assignment, error) {
	return &delegatedAdd{d: d}, nil
}

// delegatedAdd is a delegated plugin's ADD, as an Assignment.
type delegatedAdd struct {
	d     *Delegated
	added bool
}

func (a *delegatedAdd) Addrs() []netip.Addr { return nil }

func (a *delegatedAdd) Commit(ctx context.Context, _ ...backend.TxnOp) ([]netip.Addr, int64, error) {
	r, err := invoke.DelegateAdd(ctx, a.d.Type, a.d.Stdin, a.d.Exec)
	if err != nil {
		return nil, 0, fmt.Errorf("ipam plugin %s: %w", a.d.Type, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		_ = invoke.DelegateDel(context.WithoutCancel(ctx), a.d.Type, a.d.Stdin, a.d.Exec)
		return nil, 0, fmt.Errorf("converting the result of ipam plugin %s: %w", a.d.Type, err)
	}
	a.added = true
	return addrsOf(res), 0, nil
}

// Undo asks the delegated plugin to DEL: it knows no other release.
func (a *delegatedAdd) Undo(ctx context.Context) error {
	if !a.added {
		return nil
	}
	return a.d.Del(ctx, nil, nil)
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

// ErrNotReady is ADD's and DEL's answer, as Calico's plugin's, while
// ClusterInformation has datastoreReady false ('calicoctl datastore
// migrate lock'): CNI error 11, try again later.
var ErrNotReady = types.NewError(types.ErrTryAgainLater, "Calico is currently not ready to process requests",
	"ClusterInformation default has datastoreReady false (calicoctl datastore migrate lock); retry once it is unlocked")

// checkReady returns ErrNotReady while the datastore is locked, or the
// error reading ClusterInformation.
func (p *Plugin) checkReady(ctx context.Context) error {
	ready, err := p.Client.DatastoreReady(ctx)
	switch {
	case err != nil:
		return err
	case !ready:
		return ErrNotReady
	}
	return nil
}

// sinceMS and ms are for log fields.
func sinceMS(t time.Time) float64 { return ms(time.Since(t)) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
