package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"

	"github.com/calico-etcd/calico/cni-plugin/pkg/wep"
)

// Del serves DEL. Every step runs even if another failed, and what is
// already gone counts as done, so a repeated DEL succeeds; the errors of
// the steps that failed are returned together for the runtime to retry.
//
// Deleting a veth takes the kernel an RCU grace period (10-20 ms), so the
// rest overlaps it: the endpoint is removed meanwhile, and the addresses
// are released as soon as the host no longer routes to the pod (never
// before, so a new pod given them cannot find old routes in its way).
func (p *Plugin) Del(ctx context.Context, args *skel.CmdArgs) error {
	a, err := p.attachment(args)
	if err != nil {
		return err
	}
	// A locked datastore stops DEL before it changes anything, as in
	// Calico's plugin; one that cannot be read does not: the steps below
	// report their own errors.
	if err := p.checkReady(ctx); errors.Is(err, ErrNotReady) {
		return err
	}
	t0 := time.Now()
	var (
		wg      sync.WaitGroup
		w       *v3.WorkloadEndpoint
		wepErrs []error
		wepDone time.Duration
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { wepDone = time.Since(t0) }()
		var err error
		if w, err = p.Endpoint.Get(ctx, a.ids.Namespace, a.ids.Name()); err != nil {
			wepErrs = append(wepErrs, err)
			return
		}
		if w == nil {
			return
		}
		if w.Spec.ContainerID != args.ContainerID {
			a.log.WithField("owner", w.Spec.ContainerID).Info("endpoint belongs to a newer sandbox; leaving it")
			return
		}
		if _, err := p.Endpoint.DeleteOwned(ctx, w, args.ContainerID); err != nil {
			wepErrs = append(wepErrs, err)
		}
	}()

	var (
		ipamErr  error
		ipamDone = make(chan struct{})
		release  sync.Once
		tRelease time.Time
	)
	startRelease := func() {
		release.Do(func() {
			tRelease = time.Now()
			go func() {
				defer close(ipamDone)
				ipamErr = p.IPAM.Del(ctx, &p.Conf.NetConf, a.args)
			}()
		})
	}
	var errs []error
	if err := p.DP.Teardown(args.Netns, args.IfName, startRelease); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", args.IfName, err))
	}
	tTeardown := time.Now()
	wg.Wait()
	errs = append(errs, wepErrs...)
	if w != nil && w.Spec.ContainerID == args.ContainerID && w.Spec.InterfaceName != "" {
		// Deleting the pod side took the host side with it, unless the
		// namespace outlived its path; make sure.
		if err := p.DP.DeleteHostVeth(w.Spec.InterfaceName); err != nil {
			errs = append(errs, err)
		}
	}
	startRelease()
	<-ipamDone
	if ipamErr != nil {
		errs = append(errs, fmt.Errorf("releasing addresses: %w", ipamErr))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.log.WithFields(logrus.Fields{"ms": sinceMS(t0), "teardownMS": ms(tTeardown.Sub(t0)),
		"endpointMS": ms(wepDone), "releaseStartMS": ms(tRelease.Sub(t0))}).Info("workload deleted")
	return nil
}

// GC serves GC: this node's endpoints on this network (see wep.OfNetwork)
// whose
// attachment the runtime no longer lists lose their endpoint and host
// veth; then IPAM releases their addresses. It carries on past errors and
// returns them all.
func (p *Plugin) GC(ctx context.Context) error {
	type key struct{ cid, ifname string }
	valid := map[key]bool{}
	for _, a := range p.Conf.ValidAttachments {
		valid[key{a.ContainerID, a.IfName}] = true
	}
	var errs []error
	weps, err := p.Endpoint.ListNode(ctx, p.Node)
	if err != nil {
		errs = append(errs, err)
	}
	for _, w := range weps {
		if !wep.OfNetwork(w, p.Conf.Name) || valid[key{w.Spec.ContainerID, w.Spec.Endpoint}] {
			continue
		}
		log := p.Log.WithFields(logrus.Fields{"endpoint": w.Name, "containerID": w.Spec.ContainerID})
		if w.Spec.InterfaceName != "" {
			if err := p.DP.DeleteHostVeth(w.Spec.InterfaceName); err != nil {
				errs = append(errs, err)
			}
		}
		if _, err := p.Endpoint.DeleteOwned(ctx, w, w.Spec.ContainerID); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("garbage-collected endpoint")
	}
	if err := p.IPAM.GC(ctx, &p.Conf.NetConf); err != nil {
		errs = append(errs, fmt.Errorf("ipam gc: %w", err))
	}
	return errors.Join(errs...)
}

// statusNotAvailable is STATUS's "cannot service ADD" code.
const statusNotAvailable = 50

// Status serves STATUS: error 50 unless the datastore answers, is not
// locked (ErrNotReady) and, for each IP version the network assigns, an
// enabled pool it may use has a free address. (Pool node selectors and
// reservations are not weighed: STATUS is advice, ADD has the last word.)
func (p *Plugin) Status(ctx context.Context) error {
	if err := p.IPAM.Status(ctx, &p.Conf.NetConf); err != nil {
		var te *types.Error
		if errors.As(err, &te) {
			return err
		}
		return types.NewError(statusNotAvailable, "ipam not available", err.Error())
	}
	if err := p.checkReady(ctx); errors.Is(err, ErrNotReady) {
		return types.NewError(statusNotAvailable, ErrNotReady.Msg, ErrNotReady.Details)
	}
	if p.Pools == nil || p.Conf.IPAM.Type != CalicoIPAM {
		return nil
	}
	usage, err := p.Pools.Usage(ctx)
	if err != nil {
		return types.NewError(statusNotAvailable, "datastore unavailable", err.Error())
	}
	for _, fam := range []struct {
		want  bool
		v4    bool
		pools []string
	}{{p.Conf.WantIPv4(), true, p.Conf.IPAM.IPv4Pools}, {p.Conf.WantIPv6(), false, p.Conf.IPAM.IPv6Pools}} {
		if !fam.want {
			continue
		}
		room := false
		for _, u := range usage {
			if u.Disabled || !u.CIDR.IsValid() || u.CIDR.Addr().Is4() != fam.v4 {
				continue
			}
			if len(fam.pools) > 0 && !slices.Contains(fam.pools, u.Name) && !slices.Contains(fam.pools, u.CIDR.String()) {
				continue
			}
			if uint64(u.InUse) < u.Capacity {
				room = true
				break
			}
		}
		if !room {
			v := "IPv6"
			if fam.v4 {
				v = "IPv4"
			}
			return types.NewError(statusNotAvailable, "no free "+v+" address in any usable pool", "")
		}
	}
	return nil
}
