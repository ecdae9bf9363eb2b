package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
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
}

func (p *Plugin) attachment(args *skel.CmdArgs) (*attachment, error) {
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
	return &attachment{args: &ipamArgs, ids: ids, req: req, log: log}, nil
}

// Add serves ADD and returns the result in the current spec version.
//
// Datastore round trips dominate an ADD, so steps that do not depend on
// each other overlap:
//
//	┌ profile, cluster init (one read)      ┐
//	┼ IPAM assignment (etcd)                ┼─┬ endpoint write (etcd)  ┬─ result
//	└ veth pair, links up, endpoint precheck┘ └ addresses, host routes ┘
//
// The veth pair is made without a separate check first: if its names are
// taken, the addresses IPAM gave meanwhile are released. Kernel work stays
// on the calling goroutine, whose thread's namespace is the host's.
// Whatever failed, the steps that succeeded are undone.
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error) {
	start := time.Now()
	a, err := p.attachment(args)
	if err != nil {
		return nil, err
	}

	var (
		wg                 sync.WaitGroup
		profErr, ipamErr   error
		ipres              *current.Result
		ipamDone, profDone time.Duration
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Also initialises the cluster, which the endpoint write would
		// otherwise check.
		profErr = p.Endpoint.EnsureProfile(ctx, p.Conf.Name, a.ids.IsK8s())
		profDone = time.Since(start)
	}()
	go func() {
		defer wg.Done()
		ipres, ipamErr = p.IPAM.Add(ctx, &p.Conf.NetConf, a.args)
		ipamDone = time.Since(start)
	}()
	dp, dpErr := p.DP.Create(a.req)
	if errors.Is(dpErr, dataplane.ErrHostInterfaceExists) && a.ids.IsK8s() {
		// An earlier sandbox of the pod left its veth behind; Calico
		// replaces it, as kubelet runs one sandbox per pod at a time.
		a.log.WithField("hostIface", a.req.HostIfName).Info("removing the veth of an earlier sandbox")
		if dpErr = p.DP.DeleteHostVeth(a.req.HostIfName); dpErr == nil {
			dp, dpErr = p.DP.Create(a.req)
		}
	}
	if dpErr == nil {
		// The endpoint, less its addresses, checked while IPAM and the
		// datastore reads are still out (see wep.Precheck).
		wep.Precheck(wep.Build(a.ids, []string{p.Conf.Name}, dp.HostIfName, dp.PodMAC, nil))
	}
	wg.Wait()
	tStage1 := time.Now()

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
		if !ipamHeld {
			return nil, err
		}
		return nil, p.rollback(ctx, a, addrs, err)
	}

	a.req.Addrs = addrs
	w := wep.Build(a.ids, []string{p.Conf.Name}, dp.HostIfName, dp.PodMAC, addrs)
	var written *v3.WorkloadEndpoint
	var wepErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		written, wepErr = p.Endpoint.Write(ctx, w)
	}()
	cfgErr := p.DP.Configure(a.req)
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
		"profileMS": ms(profDone), "ipamMS": ms(ipamDone),
		"createMS": ms(tStage1.Sub(start)), "configureMS": sinceMS(tStage1)}).Info("workload added")
	return p.result(a, dp, addrs), nil
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
// addresses this ADD got are released, so a mistaken second ADD can never
// free the first one's; a delegated IPAM is asked to DEL.
func (p *Plugin) rollback(ctx context.Context, a *attachment, addrs []netip.Addr, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	var err error
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
		err = p.IPAM.Del(ctx, &p.Conf.NetConf, a.args)
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
			{Name: dp.HostIfName, Mac: dp.HostMAC.String(), Mtu: p.Conf.MTU},
			{Name: a.req.IfName, Mac: dp.PodMAC.String(), Mtu: p.Conf.MTU, Sandbox: a.req.NetNS},
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
