// Package ipamplugin is the calico-ipam CNI plugin: ADD assigns addresses
// with libcalico/ipam under the handle "<network>.<containerID>", DEL
// releases them (idempotently), CHECK verifies them, GC releases the
// node's addresses of containers the runtime no longer knows, STATUS says
// whether ADD can work. The calico-ipam binary calls Plugin through Main;
// the calico plugin calls it in-process, and splits ADD in two (Plan, then
// Plan.Commit) so that its WorkloadEndpoint is written in the same etcd
// transaction as the addresses.
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
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/netaddr"

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
//
// Add is Plan, then Commit with no writes of the caller's.
func (p *Plugin) Add(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) (*current.Result, error) {
	pl, err := p.Plan(ctx, conf, args)
	if err != nil {
		return nil, err
	}
	if _, _, err := pl.Commit(ctx); err != nil {
		return nil, err
	}
	return pl.Result(), nil
}

// Plan is an ADD's assignment, decided but not yet written, so that the
// calico plugin can write its WorkloadEndpoint in the same etcd
// transaction (see Commit). It holds the host-wide IPAM lock from
// Plugin.Plan until Commit or Undo: the requests of a host assign one at
// a time, each starting from the IPAM state the previous one saved in
// the lock file.
type Plan struct {
	p      *Plugin
	log    *logrus.Entry
	handle string
	attrs  map[string]string
	// ip is the address CNI_ARGS IP= names; invalid when IPAM chooses,
	// as auto planned.
	ip   netip.Addr
	auto *ipam.Plan
	// unlock releases the lock; nil once released.
	unlock func()
	// Once committed: the result, and of its addresses those newly
	// assigned (what Undo releases) and those the handle held before.
	result      *current.Result
	fresh, held []netip.Addr
}

// Plan takes the host-wide IPAM lock and decides the addresses of an ADD
// (see Add), writing nothing: from the IPAM state the lock file holds,
// without reading etcd, when that state can serve the request (Addrs
// then returns the addresses), else Commit decides. The caller must
// Commit or Undo the plan.
func (p *Plugin) Plan(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) (*Plan, error) {
	if err := netconf.ValidateContainerID(args.ContainerID); err != nil {
		return nil, err
	}
	var ca cniArgs
	if err := types.LoadArgs(args.Args, &ca); err != nil {
		return nil, fmt.Errorf("parsing CNI_ARGS: %w", err)
	}
	pl := &Plan{p: p, handle: netconf.HandleID(conf.Name, args.ContainerID),
		attrs: map[string]string{ipam.AttributeNode: p.Nodename, ipam.AttributeTimestamp: time.Now().UTC().String()}}
	if ca.K8S_POD_NAME != "" {
		pl.attrs[ipam.AttributePod] = string(ca.K8S_POD_NAME)
		pl.attrs[ipam.AttributeNamespace] = string(ca.K8S_POD_NAMESPACE)
	}
	pl.log = p.Log.WithFields(logrus.Fields{"handle": pl.handle, "node": p.Nodename})
	if ca.IP != nil {
		addr, ok := netaddr.Addr(ca.IP)
		if !ok {
			return nil, fmt.Errorf("invalid IP %s in CNI_ARGS", ca.IP)
		}
		pl.ip = addr
		pl.unlock = p.lock(ctx)
		return pl, nil
	}
	num4, num6 := 0, 0
	if conf.WantIPv4() {
		num4 = 1
	}
	if conf.WantIPv6() {
		num6 = 1
	}
	if num4+num6 == 0 {
		return nil, errors.New("ipam config assigns neither IPv4 nor IPv6")
	}
	pl.unlock = p.lock(ctx)
	auto, err := p.IPAM.Plan(ctx, ipam.AutoAssignArgs{
		Num4: num4, Num6: num6, HandleID: pl.handle, Attrs: pl.attrs, Hostname: p.Nodename,
		IPv4Pools: conf.IPAM.IPv4Pools, IPv6Pools: conf.IPAM.IPv6Pools, IntendedUse: v3.IPPoolAllowedUseWorkload,
		ReuseHandle: true,
	})
	if err != nil {
		pl.release()
		return nil, err
	}
	pl.auto = auto
	return pl, nil
}

// Addrs returns the addresses Commit writes together with the caller's
// ops, or nil when Commit cannot take ops (no usable IPAM state in the
// lock file, or an address CNI_ARGS names) and decides as it writes.
func (pl *Plan) Addrs() []netip.Addr {
	if pl.auto == nil {
		return nil
	}
	v4, v6 := pl.auto.IPs()
	var out []netip.Addr
	for _, a := range append(v4, v6...) {
		out = append(out, a.Addr())
	}
	return out
}

// Commit writes the assignment, saves IPAM's state in the lock file and
// releases the lock. When Addrs returned addresses, ops go in the same
// etcd transaction; rev is its revision, or 0 when the ops were not
// written (their guards failed, or IPAM had to assign afresh, perhaps
// other addresses): the caller then writes them itself. On error nothing
// it assigned is held.
func (pl *Plan) Commit(ctx context.Context, ops ...backend.TxnOp) (addrs []netip.Addr, rev int64, err error) {
	defer pl.release()
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if pl.auto == nil {
		held, err := pl.p.assignIP(ctx, pl.ip, pl.handle, pl.attrs)
		if err != nil {
			return nil, 0, err
		}
		res.IPs = append(res.IPs, ipConfig(netip.PrefixFrom(pl.ip, pl.ip.BitLen())))
		pl.log.WithFields(logrus.Fields{"ip": pl.ip, "held": held}).Info("assigned requested address")
		if held {
			pl.held = []netip.Addr{pl.ip}
		} else {
			pl.fresh = []netip.Addr{pl.ip}
		}
		pl.result = res
		return []netip.Addr{pl.ip}, 0, nil
	}
	c, err := pl.auto.Commit(ctx, ops...)
	fresh4, held4 := split(c.V4)
	fresh6, held6 := split(c.V6)
	if err != nil {
		pl.p.rollback(ctx, pl.log, pl.handle, append(fresh4, fresh6...))
		return nil, 0, fmt.Errorf("assigning addresses for %s: %w", pl.handle, err)
	}
	got := append(prefixesOf(c.V4), prefixesOf(c.V6)...)
	for _, a := range got {
		res.IPs = append(res.IPs, ipConfig(a))
		addrs = append(addrs, a.Addr())
	}
	for _, a := range append(fresh4, fresh6...) {
		pl.fresh = append(pl.fresh, a.Addr())
	}
	pl.held = append(held4, held6...)
	pl.result = res
	if len(pl.held) > 0 {
		pl.log.WithFields(logrus.Fields{"ips": got, "held": pl.held}).Info("handle already held addresses (a repeated ADD); returning them")
	} else {
		pl.log.WithFields(logrus.Fields{"ips": got, "withOps": c.WithOps}).Info("assigned addresses")
	}
	if c.WithOps {
		rev = c.Revision
	}
	return addrs, rev, nil
}

// Result is the CNI result of a committed plan: each address with its
// block's prefix length (a given IP as /32 or /128); nil before Commit.
func (pl *Plan) Result() *current.Result { return pl.result }

// Held returns the committed addresses the handle held before this ADD
// (an earlier ADD of the container).
func (pl *Plan) Held() []netip.Addr { return pl.held }

// Undo releases the addresses Commit newly assigned, not those the handle
// held before (the DEL that runtimes send after a failed ADD releases
// them); before Commit it only releases the lock.
func (pl *Plan) Undo(ctx context.Context) error {
	pl.release()
	if len(pl.fresh) == 0 {
		return nil
	}
	opts := make([]ipam.ReleaseOptions, len(pl.fresh))
	for i, a := range pl.fresh {
		opts[i] = ipam.ReleaseOptions{Address: a, Handle: pl.handle}
	}
	if _, err := pl.p.IPAM.ReleaseIPs(ctx, opts...); err != nil {
		return fmt.Errorf("releasing %v: %w", pl.fresh, err)
	}
	pl.fresh = nil
	return nil
}

// release saves IPAM's state and releases the lock, once.
func (pl *Plan) release() {
	if pl.unlock != nil {
		pl.unlock()
		pl.unlock = nil
	}
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
	return &current.IPConfig{Address: *netaddr.IPNet(p)}
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
		if a, ok := netaddr.Addr(ip.Address.IP); ok {
			out = append(out, a)
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
