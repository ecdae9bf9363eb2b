package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/netaddr"

	"github.com/calico-etcd/calico/cni-plugin/pkg/dataplane"
	"github.com/calico-etcd/calico/cni-plugin/pkg/ipamplugin"
	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
	"github.com/calico-etcd/calico/cni-plugin/pkg/wep"
)

// rollbackTimeout bounds the undoing of a failed ADD, which runs even when
// the request's own deadline has passed.
const rollbackTimeout = 30 * time.Second

// attachment is what one request is about.
type attachment struct {
	args *skel.CmdArgs
	ids  wep.IDs
	req  *dataplane.Request
	log  *logrus.Entry
	// conf is the network configuration, with a pod's IPAM annotations
	// applied (Kubernetes mode).
	conf *netconf.NetConf
	// network names the profile the endpoint is guarded by and that ADD
	// ensures; "" in Kubernetes mode.
	network string
	// meta is what the endpoint carries besides identity and interface.
	meta wep.Meta
	// addressing overrides automatic assignment (Kubernetes mode).
	addressing addressing
}

func (p *Plugin) attachment(args *skel.CmdArgs) (*attachment, error) {
	if err := netconf.ValidateContainerID(args.ContainerID); err != nil {
		return nil, err
	}
	ns, pod, err := parseArgs(args.Args)
	if err != nil {
		return nil, err
	}
	ids := wep.NewIDs(p.Node, args.ContainerID, args.IfName, ns, pod)
	req := &dataplane.Request{
		NetNS: args.Netns, IfName: args.IfName, HostIfName: dataplane.HostVethName(ids.WorkloadID()),
		Routes: p.Conf.Routes, MTU: p.Conf.MTU, AllowIPForwarding: p.Conf.ContainerSettings.AllowIPForwarding,
	}
	if p.Conf.IPAM.Type == CalicoIPAM {
		// Known now, so the links come up while IPAM runs.
		req.Families.V4, req.Families.V6 = ipamplugin.Families(&p.Conf.NetConf, withIgnoreUnknown(args.Args))
	}
	log := p.Log.WithFields(logrus.Fields{"containerID": args.ContainerID, "iface": args.IfName, "endpoint": ids.Name()})
	// calico-ipam refuses CNI_ARGS keys it does not know unless told to
	// ignore them; runtimes pass several (K8S_POD_UID, ...).
	ipamArgs := *args
	ipamArgs.Args = withIgnoreUnknown(args.Args)
	conf := p.Conf.NetConf
	return &attachment{args: &ipamArgs, ids: ids, req: req, log: log, conf: &conf,
		network: p.Conf.Name, meta: wep.Meta{Profiles: []string{p.Conf.Name}}}, nil
}

// Add serves ADD and returns the result in the current spec version. The
// steps, as in the package doc:
//
//  1. Veth, and beside it steps 2-4. A goroutine makes the veth pair,
//     with the pod MAC chosen beforehand so that nothing the datastore's
//     side writes waits on it. Undo: the pair deleted.
//  2. Plan. IPAM picks the addresses. Undo: this ADD's addresses
//     released (before the commit, only the plan given up).
//  3. Endpoint. The WorkloadEndpoint is built from the planned addresses,
//     the host veth's name and the pod MAC.
//  4. Commit, once ClusterInformation's datastoreReady, read since the
//     start of ADD, is not false (else ErrNotReady, nothing written).
//     Addresses and endpoint are written in one etcd transaction,
//     guarded by the network's profile and the cluster's initialisation.
//     When the plan has no addresses yet or the endpoint cannot go with
//     them (no saved IPAM state, profile missing, endpoint name taken by
//     an earlier sandbox or an earlier ADD of the container, delegated
//     IPAM, a pod's own addresses), the addresses are written first, then
//     the profile ensured and the endpoint written. Undo: the endpoint
//     deleted if it is still this container's.
//  5. Configure and route (Dataplane.Configure), once both sides are
//     done: the pod's addresses, then the host's routes to them; on
//     failure it deletes the pair.
//
// An ADD repeated for the same container (the runtime retrying one that
// was cut off, even by SIGKILL at any point) finishes the attachment and
// duplicates nothing: IPAM returns the addresses the handle holds (which
// an undo leaves to the DEL), the pair the earlier ADD made is deleted and
// made again (createPair), and the endpoint it wrote is replaced
// (wep.Store.Write).
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs) (_ *current.Result, err error) {
	start := time.Now()
	a, err := p.attachment(args)
	if err != nil {
		return nil, err
	}
	if a.req.MTU, err = p.Conf.PodMTU(); err != nil {
		return nil, err
	}
	if a.req.PodMAC, err = dataplane.NewPodMAC(); err != nil {
		return nil, err
	}
	// The datastore's lock flag is read meanwhile: the read waits for the
	// connection, which nothing before the commit needs.
	ready := make(chan error, 1)
	go func() { ready <- p.checkReady(ctx) }()
	if err := p.forPod(ctx, a); err != nil {
		return nil, err
	}
	var undo undoStack
	defer func() {
		if err != nil {
			err = undo.run(ctx, a.log, err)
		}
	}()

	// 1. The veth pair; beside it, 2-4 plan, endpoint and commit. The
	// datastore's side is the longer, so it keeps this goroutine.
	type made struct {
		dp  *dataplane.Result
		err error
		ms  float64
	}
	pair := make(chan made, 1)
	go func() {
		t := time.Now()
		dp, err := p.createPair(a)
		pair <- made{dp, err, sinceMS(t)}
	}()
	c := p.commit(ctx, a, ready)
	m := <-pair
	dp, dpErr := m.dp, m.err
	if c.plan != nil {
		undo.push("releasing the addresses", c.plan.Undo)
	}
	if c.endpoint != nil {
		undo.push("removing the endpoint", func(ctx context.Context) error {
			_, err := p.Endpoint.DeleteOwned(ctx, c.endpoint, a.args.ContainerID)
			return err
		})
	}
	if dpErr == nil {
		undo.push("removing the interface", func(context.Context) error { return p.DP.Teardown(a.req.NetNS, a.req.IfName, nil) })
	}
	if dpErr != nil || c.err != nil {
		return nil, errors.Join(wrapErr("creating "+a.req.IfName, dpErr), c.err)
	}
	tCommitted := time.Now()

	// 5. Configure the pod's addresses and route to them.
	a.req.Addrs = c.addrs
	if err := p.DP.Configure(a.req); err != nil {
		return nil, fmt.Errorf("setting up %s: %w", a.req.IfName, err)
	}
	a.log.WithFields(logrus.Fields{"addrs": c.addrs, "hostIface": dp.HostIfName, "ms": sinceMS(start),
		"planMS": c.planMS, "commitMS": c.commitMS, "pairMS": m.ms, "endpointWithIPAM": c.together,
		"configureMS": sinceMS(tCommitted)}).Info("workload added")
	return p.result(a, dp, c.addrs), nil
}

// commitment is what commit did, for Add to undo on failure.
type commitment struct {
	// plan is the assignment once planned; its Undo releases what the
	// commit assigned.
	plan  Assignment
	addrs []netip.Addr
	// endpoint is the WorkloadEndpoint once written.
	endpoint *v3.WorkloadEndpoint
	// together: the endpoint went in the addresses' transaction.
	together         bool
	planMS, commitMS float64
	err              error
}

// commit plans the attachment's addresses, builds its endpoint and
// writes both, in one transaction when it can (steps 2-4 of Add); while
// the datastore is locked it writes nothing (ErrNotReady).
func (p *Plugin) commit(ctx context.Context, a *attachment, ready <-chan error) (c commitment) {
	t0 := time.Now()
	c.plan, c.err = p.plan(ctx, a)
	if c.err != nil {
		c.err = errors.Join(<-ready, wrapErr("assigning addresses", c.err))
		return c
	}
	t1 := time.Now()
	c.planMS = ms(t1.Sub(t0))
	defer func() { c.commitMS = sinceMS(t1) }()

	var pending *v3.WorkloadEndpoint
	var ops []backend.TxnOp
	if addrs := c.plan.Addrs(); addrs != nil {
		pending, ops = p.endpointOps(ctx, a, addrs)
	}
	if c.err = <-ready; c.err != nil {
		return c // the plan is given up by Add's undo
	}
	addrs, rev, err := c.plan.Commit(ctx, ops...)
	switch {
	case err != nil:
		c.err = fmt.Errorf("assigning addresses: %w", err)
		return c
	case len(addrs) == 0:
		c.err = errors.New("ipam returned no addresses")
		return c
	}
	c.addrs = addrs
	if rev != 0 {
		p.Endpoint.Committed(pending, rev)
		c.endpoint, c.together = pending, true
		return c
	}
	c.endpoint, c.err = p.writeEndpoint(ctx, a, addrs)
	return c
}

// plan starts the attachment's assignment: IPAM's choice, or in
// Kubernetes mode the pod's own addresses (see addressing).
func (p *Plugin) plan(ctx context.Context, a *attachment) (Assignment, error) {
	switch {
	case len(a.addressing.fixed) > 0:
		return fixedAddrs(a.addressing.fixed), nil
	case len(a.addressing.requested) > 0:
		return &requestedAddrs{ipam: p.IPAM, conf: a.conf, args: a.args, ips: a.addressing.requested}, nil
	}
	return p.IPAM.Plan(ctx, a.conf, a.args)
}

// createPair makes the attachment's veth pair. A pair an earlier ADD of
// the attachment left (it was cut off, or this is a retry) is deleted and
// made again; so is the host side an earlier sandbox of the pod left
// (Calico replaces it, as kubelet runs one sandbox per pod at a time) or,
// for another workload, an earlier ADD of this container ID into another
// namespace. Anything else of the pod's interface name is refused.
func (p *Plugin) createPair(a *attachment) (*dataplane.Result, error) {
	dp, err := p.DP.Create(a.req)
	if errors.Is(err, dataplane.ErrInterfaceExists) {
		gone, derr := p.DP.DeletePair(a.req)
		switch {
		case derr != nil:
			return nil, errors.Join(err, derr)
		case !gone:
			return nil, err
		}
		a.log.WithField("hostIface", a.req.HostIfName).Info("replaced the veth an earlier ADD of this container left")
		dp, err = p.DP.Create(a.req)
	}
	if errors.Is(err, dataplane.ErrHostInterfaceExists) {
		a.log.WithField("hostIface", a.req.HostIfName).Info("removing the veth of an earlier sandbox")
		if err = p.DP.DeleteHostVeth(a.req.HostIfName); err == nil {
			dp, err = p.DP.Create(a.req)
		}
	}
	return dp, err
}

// endpointOps builds the attachment's endpoint and the ops that create
// it in the assignment's transaction, guarded by the network's profile
// (see wep.Store.CreateOps). Ops it cannot prepare are left out: the
// endpoint is then written after the addresses, where the error shows.
func (p *Plugin) endpointOps(ctx context.Context, a *attachment, addrs []netip.Addr) (*v3.WorkloadEndpoint, []backend.TxnOp) {
	w := wep.Build(a.ids, a.meta, a.req.HostIfName, a.req.PodMAC, addrs)
	pending, ops, err := p.Endpoint.CreateOps(ctx, w, a.network)
	if err != nil {
		a.log.WithError(err).Debug("endpoint not written with the addresses")
		return nil, nil
	}
	return pending, ops
}

// writeEndpoint writes the attachment's endpoint on its own, after its
// network's profile is ensured (which also initialises the cluster).
func (p *Plugin) writeEndpoint(ctx context.Context, a *attachment, addrs []netip.Addr) (*v3.WorkloadEndpoint, error) {
	if err := p.Endpoint.EnsureProfile(ctx, a.network, a.ids.IsK8s()); err != nil {
		return nil, err
	}
	return p.Endpoint.Write(ctx, wep.Build(a.ids, a.meta, a.req.HostIfName, a.req.PodMAC, addrs))
}

// undoStack holds the undo of each step of an ADD that succeeded.
type undoStack []undoStep

type undoStep struct {
	what string
	do   func(context.Context) error
}

func (u *undoStack) push(what string, do func(context.Context) error) {
	*u = append(*u, undoStep{what, do})
}

// run undoes the steps, last first, even after the request's deadline,
// and returns cause joined with the errors of any undo that failed.
func (u undoStack) run(ctx context.Context, log *logrus.Entry, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	errs := []error{cause}
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i].do(ctx); err != nil {
			log.WithError(err).Error("could not undo a step of a failed ADD (" + u[i].what + "); the runtime's DEL will retry")
			errs = append(errs, fmt.Errorf("rolling back: %s: %w", u[i].what, err))
		}
	}
	if len(errs) == 1 {
		log.WithError(cause).Warn("ADD failed; rolled back")
	}
	return errors.Join(errs...)
}

// wrapErr is fmt.Errorf("what: %w"), or nil for no error.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// addrsOf returns a result's addresses.
func addrsOf(r *current.Result) []netip.Addr {
	var out []netip.Addr
	for _, ip := range r.IPs {
		if a, ok := netaddr.Addr(ip.Address.IP); ok {
			out = append(out, a)
		}
	}
	return out
}

// result describes the attachment for the runtime and chained plugins:
// interface 0 is the host veth, 1 the pod's; addresses are /32 and /128
// on the pod interface; routes are the pod's, via its gateway.
func (p *Plugin) result(a *attachment, dp *dataplane.Result, addrs []netip.Addr) *current.Result {
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: dp.HostIfName, Mac: dp.HostMAC.String(), Mtu: a.req.MTU},
			{Name: a.req.IfName, Mac: dp.PodMAC.String(), Mtu: a.req.MTU, Sandbox: a.req.NetNS},
		},
		DNS: p.Conf.DNS,
	}
	var has4, has6 bool
	for _, ad := range addrs {
		res.IPs = append(res.IPs, &current.IPConfig{Interface: current.Int(1), Address: *netaddr.IPNet(netip.PrefixFrom(ad, ad.BitLen()))})
		has4, has6 = has4 || ad.Is4(), has6 || ad.Is6()
	}
	routes := p.Conf.Routes
	if len(routes) == 0 {
		routes = dataplane.DefaultRoutes
	}
	for _, r := range routes {
		gw := dataplane.IPv4Gateway
		if !r.Addr().Is4() {
			if !has6 {
				continue
			}
			gw = dataplane.IPv6Gateway
		} else if !has4 {
			continue
		}
		res.Routes = append(res.Routes, &types.Route{Dst: *netaddr.IPNet(r), GW: net.IP(gw.AsSlice())})
	}
	return res
}
