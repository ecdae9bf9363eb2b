// Package ipamplugin is the calico-ipam CNI plugin: ADD assigns addresses
// with libcalico/ipam under the handle "<network>.<containerID>", DEL
// releases them (idempotently), CHECK verifies them, GC releases the
// node's addresses of containers the runtime no longer knows, STATUS says
// whether ADD can work. The calico plugin calls Plugin in-process; the
// calico-ipam binary calls it through Main.
package ipamplugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"

	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
)

// Plugin runs the IPAM half of CNI requests for one node.
type Plugin struct {
	IPAM     *ipam.Client
	Client   *client.Client
	Nodename string
	// LockFile serializes IPAM requests on the host ("" for no lock). It
	// is created only in an existing directory, or in RunDir.
	LockFile string
	// RunDir is the host's Calico run directory, the one directory of a
	// lock file that is created (one level, as calico-node makes it) if
	// missing; "" for none.
	RunDir string
	// AwaitConnection, when set, returns once the datastore connection
	// is up (or failed): a request that finds the lock taken calls it
	// before queueing, so the lock is never held while a connection
	// comes up, except by a request that found it free.
	AwaitConnection func(context.Context)
	Log             *logrus.Entry
}

// cniArgs are the CNI_ARGS keys the plugin reads.
type cniArgs struct {
	types.CommonArgs
	IP                net.IP                     `json:"ip,omitempty"`
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive // CNI_ARGS key
}

// lock takes the host-wide IPAM lock and primes the IPAM client with what
// the lock file keeps (block hint, warm state); the returned function
// saves what changed and releases the lock.
func (p *Plugin) lock(ctx context.Context) func() {
	if p.LockFile == "" {
		return func() {}
	}
	f, err := lockFile(p.LockFile, p.RunDir, func() {
		if p.AwaitConnection != nil {
			p.AwaitConnection(ctx)
		}
	})
	if err != nil {
		// Best effort, as Calico: IPAM is safe without it, only slower.
		p.Log.WithError(err).WithField("lockFile", p.LockFile).Warn("could not take the host-wide IPAM lock; going on without it")
		return func() {}
	}
	was := readState(f, p.Nodename)
	if was.hint.IsValid() && !p.IPAM.Hint(p.Nodename).IsValid() {
		p.IPAM.SetHint(p.Nodename, was.hint)
	}
	if len(was.warm) > 0 && p.IPAM.SaveWarm(p.Nodename) == nil {
		if err := p.IPAM.LoadWarm(was.warm); err != nil {
			p.Log.WithError(err).Debug("saved IPAM state not used")
		}
	}
	return func() {
		now := lockState{hint: p.IPAM.Hint(p.Nodename), warm: p.IPAM.SaveWarm(p.Nodename)}
		if now.hint.IsValid() && (now.hint != was.hint || !bytes.Equal(now.warm, was.warm)) {
			if err := writeState(f, p.Nodename, now); err != nil {
				p.Log.WithError(err).Debug("could not save the IPAM state")
			}
		}
		f.Close()
	}
}

// Families returns the address families Add assigns for CNI_ARGS args,
// before it runs: that of IP= when given, else the configured ones. Add
// assigns all of them or fails. Unparsable args give neither (Add then
// fails on them).
func Families(conf *netconf.NetConf, args string) (v4, v6 bool) {
	var ca cniArgs
	if err := types.LoadArgs(args, &ca); err != nil {
		return false, false
	}
	if ca.IP != nil {
		return ca.IP.To4() != nil, ca.IP.To4() == nil
	}
	return conf.WantIPv4(), conf.WantIPv6()
}

// Add assigns the configured addresses (or the one CNI_ARGS IP= names)
// and returns them as a CNI result, each with its block's prefix length
// (a given IP as /32 or /128), as Calico's calico-ipam does. If it cannot
// assign all of them it releases what it did assign.
//
// Add is idempotent per handle (<network>.<containerID>): when the handle
// already holds addresses (an earlier ADD of the container, cut off or
// retried), those are returned and only what they lack is assigned.
func (p *Plugin) Add(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) (*current.Result, error) {
	res, _, err := p.AddRiding(ctx, conf, args, nil)
	return res, err
}

// AddRiding is Add whose assignment may carry rider's writes in its
// transaction (see ipam.Rider); an address given by CNI_ARGS IP= takes
// none. It also returns which of the result's addresses the handle held
// before: a caller undoing a failed ADD leaves those to the DEL.
func (p *Plugin) AddRiding(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs, rider ipam.Rider) (*current.Result, []netip.Addr, error) {
	if err := netconf.ValidateContainerID(args.ContainerID); err != nil {
		return nil, nil, err
	}
	var ca cniArgs
	if err := types.LoadArgs(args.Args, &ca); err != nil {
		return nil, nil, fmt.Errorf("parsing CNI_ARGS: %w", err)
	}
	handle := netconf.HandleID(conf.Name, args.ContainerID)
	attrs := map[string]string{ipam.AttributeNode: p.Nodename, ipam.AttributeTimestamp: time.Now().UTC().String()}
	if ca.K8S_POD_NAME != "" {
		attrs[ipam.AttributePod] = string(ca.K8S_POD_NAME)
		attrs[ipam.AttributeNamespace] = string(ca.K8S_POD_NAMESPACE)
	}
	log := p.Log.WithFields(logrus.Fields{"handle": handle, "node": p.Nodename})
	defer p.lock(ctx)()

	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if ca.IP != nil {
		addr, ok := netip.AddrFromSlice(ca.IP)
		if !ok {
			return nil, nil, fmt.Errorf("invalid IP %s in CNI_ARGS", ca.IP)
		}
		addr = addr.Unmap()
		held, err := p.assignIP(ctx, addr, handle, attrs)
		if err != nil {
			return nil, nil, err
		}
		res.IPs = append(res.IPs, ipConfig(netip.PrefixFrom(addr, addr.BitLen())))
		log.WithFields(logrus.Fields{"ip": addr, "held": held}).Info("assigned requested address")
		if held {
			return res, []netip.Addr{addr}, nil
		}
		return res, nil, nil
	}
	num4, num6 := 0, 0
	if conf.WantIPv4() {
		num4 = 1
	}
	if conf.WantIPv6() {
		num6 = 1
	}
	if num4+num6 == 0 {
		return nil, nil, errors.New("ipam config assigns neither IPv4 nor IPv6")
	}
	v4, v6, err := p.IPAM.AutoAssign(ctx, ipam.AutoAssignArgs{
		Num4: num4, Num6: num6, HandleID: handle, Attrs: attrs, Hostname: p.Nodename,
		IPv4Pools: conf.IPAM.IPv4Pools, IPv6Pools: conf.IPAM.IPv6Pools, IntendedUse: v3.IPPoolAllowedUseWorkload,
		Rider: rider, ReuseHandle: true,
	})
	fresh4, held4 := split(v4)
	fresh6, held6 := split(v6)
	held := append(held4, held6...)
	if err != nil {
		p.rollback(ctx, log, handle, append(fresh4, fresh6...))
		return nil, nil, fmt.Errorf("assigning addresses for %s: %w", handle, err)
	}
	got := append(prefixesOf(v4), prefixesOf(v6)...)
	for _, a := range got {
		res.IPs = append(res.IPs, ipConfig(a))
	}
	if len(held) > 0 {
		log.WithFields(logrus.Fields{"ips": got, "held": held}).Info("handle already held addresses (a repeated ADD); returning them")
	} else {
		log.WithField("ips", got).Info("assigned addresses")
	}
	return res, held, nil
}

// assignIP assigns one given address; one the handle holds already (a
// repeated ADD) is success, reported as held.
func (p *Plugin) assignIP(ctx context.Context, addr netip.Addr, handle string, attrs map[string]string) (held bool, err error) {
	err = p.IPAM.AssignIP(ctx, ipam.AssignIPArgs{IP: addr, HandleID: handle, Attrs: attrs, Hostname: p.Nodename})
	if errors.Is(err, cerrors.ErrExists) {
		if owner, _, gerr := p.IPAM.GetAssignmentAttributes(ctx, addr); gerr == nil && owner == handle {
			return true, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("assigning %s: %w", addr, err)
	}
	return false, nil
}

func prefixesOf(a *ipam.Assignments) []netip.Prefix {
	if a == nil {
		return nil
	}
	return a.IPs
}

// split returns what an assignment newly assigned, and the addresses it
// returned because the handle held them already.
func split(a *ipam.Assignments) (fresh []netip.Prefix, held []netip.Addr) {
	if a == nil {
		return nil, nil
	}
	for _, p := range a.IPs[:a.Held] {
		held = append(held, p.Addr())
	}
	return a.IPs[a.Held:], held
}

// rollback releases addresses of a failed ADD, only if still ours.
func (p *Plugin) rollback(ctx context.Context, log *logrus.Entry, handle string, got []netip.Prefix) {
	if len(got) == 0 {
		return
	}
	opts := make([]ipam.ReleaseOptions, len(got))
	for i, a := range got {
		opts[i] = ipam.ReleaseOptions{Address: a.Addr(), Handle: handle}
	}
	if _, err := p.IPAM.ReleaseIPs(context.WithoutCancel(ctx), opts...); err != nil {
		log.WithError(err).Error("releasing addresses of a failed ADD")
	}
}

func ipConfig(p netip.Prefix) *current.IPConfig {
	return &current.IPConfig{Address: net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

// Del releases the container's addresses; releasing nothing is success.
func (p *Plugin) Del(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) error {
	if err := netconf.ValidateContainerID(args.ContainerID); err != nil {
		return err
	}
	handle := netconf.HandleID(conf.Name, args.ContainerID)
	defer p.lock(ctx)()
	err := p.IPAM.ReleaseByHandle(ctx, handle)
	if errors.Is(err, cerrors.ErrNotFound) {
		p.Log.WithField("handle", handle).Info("nothing to release")
		return nil
	}
	if err != nil {
		return fmt.Errorf("releasing %s: %w", handle, err)
	}
	p.Log.WithField("handle", handle).Info("released addresses")
	return nil
}

// Check verifies that the container still holds its addresses: those of
// prevResult when given, else at least one.
func (p *Plugin) Check(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) error {
	if err := netconf.ValidateContainerID(args.ContainerID); err != nil {
		return err
	}
	handle := netconf.HandleID(conf.Name, args.ContainerID)
	held, err := p.IPAM.IPsByHandle(ctx, handle)
	if err != nil {
		return fmt.Errorf("reading addresses of %s: %w", handle, err)
	}
	want, err := prevAddrs(conf)
	if err != nil {
		return err
	}
	if len(want) == 0 && len(held) == 0 {
		return fmt.Errorf("%s holds no addresses", handle)
	}
	have := map[netip.Addr]bool{}
	for _, a := range held {
		have[a] = true
	}
	for _, a := range want {
		if !have[a] {
			return fmt.Errorf("address %s of %s is not assigned to it", a, handle)
		}
	}
	return nil
}

func prevAddrs(conf *netconf.NetConf) ([]netip.Addr, error) {
	if conf.RawPrevResult == nil {
		return nil, nil
	}
	pc := types.PluginConf{CNIVersion: conf.CNIVersion, RawPrevResult: conf.RawPrevResult}
	if err := version.ParsePrevResult(&pc); err != nil {
		return nil, fmt.Errorf("parsing prevResult: %w", err)
	}
	r, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return nil, fmt.Errorf("converting prevResult: %w", err)
	}
	var out []netip.Addr
	for _, ip := range r.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

// GC releases this node's addresses on this network whose container is
// not among the valid attachments.
func (p *Plugin) GC(ctx context.Context, conf *netconf.NetConf) error {
	valid := map[string]bool{}
	for _, a := range conf.ValidAttachments {
		valid[netconf.HandleID(conf.Name, a.ContainerID)] = true
	}
	allocs, err := p.IPAM.Allocations(ctx)
	if err != nil {
		return err
	}
	stale := map[string]bool{}
	prefix := conf.Name + "."
	for _, a := range allocs {
		if len(a.Handle) > len(prefix) && a.Handle[:len(prefix)] == prefix && a.Attrs[ipam.AttributeNode] == p.Nodename && !valid[a.Handle] {
			stale[a.Handle] = true
		}
	}
	defer p.lock(ctx)()
	var errs []error
	for h := range stale {
		if err := p.IPAM.ReleaseByHandle(ctx, h); err != nil && !errors.Is(err, cerrors.ErrNotFound) {
			errs = append(errs, fmt.Errorf("releasing %s: %w", h, err))
			continue
		}
		p.Log.WithField("handle", h).Info("garbage-collected addresses")
	}
	return errors.Join(errs...)
}

// errPluginNotAvailable is the CNI STATUS code for "cannot ADD now".
const errPluginNotAvailable uint = 50

// Status reports whether ADD can succeed: the datastore answers and an
// enabled pool of a wanted IP version exists.
func (p *Plugin) Status(ctx context.Context, conf *netconf.NetConf) error {
	pools, _, err := p.Client.IPPools().List(ctx, client.ListOptions{})
	if err != nil {
		return types.NewError(errPluginNotAvailable, "datastore unavailable", err.Error())
	}
	for _, pl := range pools {
		if pl.Spec.Disabled {
			continue
		}
		if c, err := v3.ParseCIDR(pl.Spec.CIDR); err == nil && ((c.Addr().Is4() && conf.WantIPv4()) || (c.Addr().Is6() && conf.WantIPv6())) {
			return nil
		}
	}
	return types.NewError(errPluginNotAvailable, "no enabled IP pool to assign from", "")
}
