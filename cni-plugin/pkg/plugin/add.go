package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/ipam"

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
	// held are the addresses IPAM returned because the handle held them
	// before this ADD (an earlier ADD of the container): a rollback
	// leaves them to the DEL.
	held []netip.Addr
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

// Add serves ADD and returns the result in the current spec version.
//
// Datastore round trips dominate an ADD, so steps that do not depend on
// each other overlap. With calico-ipam warm (its state in the lock file)
// an ADD makes one round trip to etcd:
//
//	IPAM: choose ─ assignment + endpoint, one etcd transaction ─┐
//	veth pair, links up ──── pod addresses (once chosen) ───────┴─ host routes ─ result
//
// The endpoint rides in IPAM's transaction (see endpointRider), guarded
// by its network's profile and the cluster's initialisation. When it
// cannot (IPAM cold, profile missing, endpoint name taken, delegated
// IPAM) the profile is ensured and the endpoint written beside the last
// kernel step; with delegated IPAM the profile is ensured beside IPAM.
// The veth pair is made without a separate check first: if its names are
// taken, the addresses IPAM gave meanwhile are released. Kernel work stays
// on the calling goroutine, whose thread's namespace is the host's.
// Whatever failed, the steps that succeeded are undone.
//
// An ADD repeated for the same container (the runtime retrying one that
// was cut off, even by SIGKILL at any point) finishes the attachment and
// duplicates nothing: IPAM returns the addresses the handle holds, the
// pair the earlier ADD made is deleted and made again, and the endpoint
// it wrote is replaced (wep.Store.Write).
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error) {
	start := time.Now()
	a, err := p.attachment(args)
	if err != nil {
		return nil, err
	}
	if a.req.MTU, err = p.Conf.PodMTU(); err != nil {
		return nil, err
	}
	if err := p.forPod(ctx, a); err != nil {
		return nil, err
	}

	var (
		wg               sync.WaitGroup
		profErr, ipamErr error
		ipres            *current.Result
		ipamDone         time.Duration
		profiled         bool
	)
	ip, inProcess := p.IPAM.(*ipamplugin.Plugin)
	var rider *endpointRider
	wg.Add(1)
	ipamOut := make(chan struct{})
	if inProcess && a.addressing.requested == nil && a.addressing.fixed == nil {
		rider = &endpointRider{ctx: ctx, p: p, a: a, created: make(chan struct{}), chosen: make(chan []netip.Addr, 1)}
		go func() {
			defer wg.Done()
			defer close(ipamOut)
			ipres, a.held, ipamErr = ip.AddRiding(ctx, a.conf, a.args, rider)
			ipamDone = time.Since(start)
		}()
	} else {
		go func() {
			defer wg.Done()
			ipres, ipamErr = p.assign(ctx, a)
			ipamDone = time.Since(start)
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			profErr, profiled = p.Endpoint.EnsureProfile(ctx, a.network, a.ids.IsK8s()), true
		}()
	}
	dp, dpErr := p.DP.Create(a.req)
	if errors.Is(dpErr, dataplane.ErrInterfaceExists) {
		// An earlier ADD of this attachment left its pair (it was cut
		// off, or this is a retry): start again from nothing.
		if gone, err := p.DP.DeletePair(a.req); err != nil {
			dpErr = errors.Join(dpErr, err)
		} else if gone {
			a.log.WithField("hostIface", a.req.HostIfName).Info("replaced the veth an earlier ADD of this container left")
			dp, dpErr = p.DP.Create(a.req)
		}
	}
	if errors.Is(dpErr, dataplane.ErrHostInterfaceExists) {
		// The host name is the workload's: an earlier sandbox of the pod
		// left its veth behind (Calico replaces it, as kubelet runs one
		// sandbox per pod at a time), or, for another workload, an
		// earlier ADD of this very container ID into another namespace.
		a.log.WithField("hostIface", a.req.HostIfName).Info("removing the veth of an earlier sandbox")
		if dpErr = p.DP.DeleteHostVeth(a.req.HostIfName); dpErr == nil {
			dp, dpErr = p.DP.Create(a.req)
		}
	}
	// The pod's addresses go on as soon as IPAM has chosen them, while
	// its transaction is out; they are replaced if it ends up with others.
	var early []netip.Addr
	earlyTried := false
	if rider != nil {
		rider.dp = dp
		close(rider.created)
		if p.Prime != nil {
			// Idle until IPAM has chosen, and the connection is usually
			// not up yet: set up the first request's protobuf now.
			p.Prime()
		}
		if dpErr == nil {
			select {
			case early = <-rider.chosen:
				earlyTried = true
				if err := p.DP.SetPodAddrs(a.req, early); err != nil {
					a.log.WithError(err).Debug("pod addresses not set early")
					early = nil
				}
			case <-ipamOut:
			}
		}
	}
	wg.Wait()
	tStage1 := time.Now()
	var written *v3.WorkloadEndpoint
	if rider != nil {
		written = rider.written
	}

	var addrs []netip.Addr
	ipamHeld := ipamErr == nil
	if ipamErr != nil {
		ipamErr = fmt.Errorf("assigning addresses: %w", ipamErr)
	} else if addrs = addrsOf(ipres); len(addrs) == 0 {
		ipamErr = errors.New("ipam returned no addresses")
	}
	if dpErr != nil {
		dpErr = fmt.Errorf("creating %s: %w", a.req.IfName, dpErr)
	}
	if err := errors.Join(dpErr, ipamErr, profErr); err != nil {
		if dpErr == nil {
			if terr := p.DP.Teardown(a.req.NetNS, a.req.IfName, nil); terr != nil {
				err = errors.Join(err, fmt.Errorf("rolling back the interface: %w", terr))
			}
		}
		if written != nil {
			if derr := p.deleteEndpoint(ctx, written, a.args.ContainerID); derr != nil {
				err = errors.Join(err, fmt.Errorf("rolling back the endpoint: %w", derr))
			}
		}
		if !ipamHeld {
			return nil, err
		}
		return nil, p.rollback(ctx, a, addrs, err)
	}

	a.req.Addrs = addrs
	var wepErr error
	if written == nil {
		w := wep.Build(a.ids, a.meta, dp.HostIfName, dp.PodMAC, addrs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !profiled {
				// Also initialises the cluster, which the write would
				// otherwise check.
				if wepErr = p.Endpoint.EnsureProfile(ctx, a.network, a.ids.IsK8s()); wepErr != nil {
					return
				}
			}
			written, wepErr = p.Endpoint.Write(ctx, w)
		}()
	}
	var cfgErr error
	if earlyTried && !slices.Equal(early, addrs) {
		if cfgErr = p.DP.SetPodAddrs(a.req, addrs); cfgErr != nil {
			if terr := p.DP.Teardown(a.req.NetNS, a.req.IfName, nil); terr != nil {
				cfgErr = errors.Join(cfgErr, fmt.Errorf("rolling back the interface: %w", terr))
			}
		}
	}
	a.req.PodAddrsSet = earlyTried
	if cfgErr == nil {
		cfgErr = p.DP.Configure(a.req)
	}
	wg.Wait()
	if cfgErr != nil || wepErr != nil {
		var errs []error
		if cfgErr != nil {
			errs = append(errs, fmt.Errorf("setting up %s: %w", a.req.IfName, cfgErr))
		} else if terr := p.DP.Teardown(a.req.NetNS, a.req.IfName, nil); terr != nil {
			errs = append(errs, fmt.Errorf("rolling back the interface: %w", terr))
		}
		if wepErr != nil {
			errs = append(errs, wepErr)
		} else if err := p.deleteEndpoint(ctx, written, a.args.ContainerID); err != nil {
			errs = append(errs, fmt.Errorf("rolling back the endpoint: %w", err))
		}
		return nil, p.rollback(ctx, a, addrs, errors.Join(errs...))
	}
	a.log.WithFields(logrus.Fields{"addrs": addrs, "hostIface": dp.HostIfName, "ms": sinceMS(start),
		"ipamMS": ms(ipamDone), "endpointWithIPAM": rider != nil && rider.written != nil,
		"createMS": ms(tStage1.Sub(start)), "configureMS": sinceMS(tStage1)}).Info("workload added")
	return p.result(a, dp, addrs), nil
}

// endpointRider puts the WorkloadEndpoint into IPAM's transaction (an
// ipam.Rider), so that address and endpoint are written in one round
// trip, or neither. It waits for the veth pair (the endpoint names its
// MAC) and declines if that failed: Add then rolls back as usual.
type endpointRider struct {
	ctx context.Context
	p   *Plugin
	a   *attachment
	// created is closed once dp is set (nil if the pair failed).
	created chan struct{}
	dp      *dataplane.Result
	// chosen gets the addresses once the endpoint rides with them.
	chosen chan []netip.Addr
	// pending is the prepared endpoint; written is it once committed.
	pending, written *v3.WorkloadEndpoint
}

var _ ipam.Rider = (*endpointRider)(nil)

// Ops implements ipam.Rider.
func (r *endpointRider) Ops(v4, v6 []netip.Prefix) []backend.TxnOp {
	select {
	case <-r.created:
	case <-r.ctx.Done():
		return nil
	}
	if r.dp == nil {
		return nil
	}
	var addrs []netip.Addr
	for _, p := range append(slices.Clone(v4), v6...) {
		addrs = append(addrs, p.Addr())
	}
	w := wep.Build(r.a.ids, r.a.meta, r.dp.HostIfName, r.dp.PodMAC, addrs)
	pending, ops, err := r.p.Endpoint.CreateOps(r.ctx, w, r.a.network)
	if err != nil {
		// Written on its own later, where the error is reported.
		r.a.log.WithError(err).Debug("endpoint not written with the addresses")
		return nil
	}
	r.pending = pending
	select {
	case r.chosen <- addrs:
	default:
	}
	return ops
}

// Committed implements ipam.Rider.
func (r *endpointRider) Committed(rev int64) {
	r.p.Endpoint.Committed(r.pending, rev)
	r.written = r.pending
}

// deleteEndpoint removes an endpoint a failed ADD wrote, even after the
// request's deadline.
func (p *Plugin) deleteEndpoint(ctx context.Context, w *v3.WorkloadEndpoint, containerID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_, err := p.Endpoint.DeleteOwned(ctx, w, containerID)
	return err
}

// rollback releases the addresses a failed ADD was given and returns
// cause, joined with any error of the release. With calico-ipam only the
// addresses this ADD got are released, not those the handle held before
// it (a.held: the DEL the runtime sends after a failed ADD releases
// them); a delegated IPAM is asked to DEL.
func (p *Plugin) rollback(ctx context.Context, a *attachment, addrs []netip.Addr, cause error) error {
	addrs = slices.DeleteFunc(slices.Clone(addrs), func(ad netip.Addr) bool { return slices.Contains(a.held, ad) })
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	var err error
	if len(a.addressing.fixed) > 0 {
		a.log.WithError(cause).Warn("ADD failed; rolled back (its addresses were not from IPAM)")
		return cause
	}
	if ip, ok := p.IPAM.(*ipamplugin.Plugin); ok {
		handle := netconf.HandleID(p.Conf.Name, a.args.ContainerID)
		opts := make([]ipam.ReleaseOptions, len(addrs))
		for i, ad := range addrs {
			opts[i] = ipam.ReleaseOptions{Address: ad, Handle: handle}
		}
		if len(opts) > 0 {
			_, err = ip.IPAM.ReleaseIPs(ctx, opts...)
		}
	} else {
		err = p.IPAM.Del(ctx, a.conf, a.args)
	}
	if err != nil {
		a.log.WithError(err).Error("could not release the addresses of a failed ADD; the runtime's DEL will retry")
		return errors.Join(cause, fmt.Errorf("releasing addresses %v: %w", addrs, err))
	}
	a.log.WithError(cause).Warn("ADD failed; rolled back")
	return cause
}

// addrsOf returns a result's addresses.
func addrsOf(r *current.Result) []netip.Addr {
	var out []netip.Addr
	for _, ip := range r.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			out = append(out, a.Unmap())
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
		res.IPs = append(res.IPs, &current.IPConfig{Interface: current.Int(1), Address: *ipNet(netip.PrefixFrom(ad, ad.BitLen()))})
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
		res.Routes = append(res.Routes, &types.Route{Dst: *ipNet(r), GW: net.IP(gw.AsSlice())})
	}
	return res
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
