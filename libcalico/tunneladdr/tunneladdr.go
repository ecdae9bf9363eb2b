// Package tunneladdr gives a node the tunnel addresses its IP pools call
// for, and takes them back when the pools stop calling for them, as
// Calico's calico-node -allocate-tunnel-addrs does:
//
//	pools (enabled, allowedUses ∋ Tunnel, nodeSelector matches, mode Always|CrossSubnet)
//	  ipipMode,  IPv4 ──► spec.bgp.ipv4IPIPTunnelAddr  handle ipip-tunnel-addr-<node>
//	  vxlanMode, IPv4 ──► spec.ipv4VXLANTunnelAddr     handle vxlan-tunnel-addr-<node>
//	  vxlanMode, IPv6 ──► spec.ipv6VXLANTunnelAddr     handle vxlan-v6-tunnel-addr-<node>
//
// Each address is assigned by IPAM with Calico's handle and attributes
// (node: <node>, type: ipipTunnelAddress | vxlanTunnelAddress |
// vxlanV6TunnelAddress), so `calicoctl ipam check` counts it as used
// (the Node names it) and the node deletion cascade releases it. A VXLAN
// address comes with the device's MAC (vxlanTunnelMACAddr[V6]): the one
// felix derives from the node name (nodeinfo.VXLANTunnelMAC), written
// only when the Node has none, and removed with the address only when it
// is that derived value.
//
// Reconcile is idempotent and safe to run on many hosts at once (each
// writes only its own Node; IPAM serialises the blocks). An address is
// kept while it is still this node's and inside a qualifying pool;
// otherwise the handle is released before a new address is assigned, so
// a run interrupted between assignment and the Node update leaves nothing
// behind for the next run. The Node update is guarded by its revision; on
// failure the addresses assigned in the run are released again.
// WireGuard addresses are not handled (no WireGuard here).
package tunneladdr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
	"github.com/calico-etcd/calico/libcalico/selector"
)

// Kind is one tunnel address a node may hold.
type Kind struct {
	// Attr is the allocation's type attribute (ipam.AttributeType*).
	Attr string
	// IPv6 says which pools and address family.
	IPv6 bool
	// HandlePrefix precedes the node name in the IPAM handle.
	HandlePrefix string
}

// The kinds handled, in Calico's order.
var (
	IPIP    = Kind{Attr: ipam.AttributeTypeIPIP, HandlePrefix: "ipip-tunnel-addr-"}
	VXLAN   = Kind{Attr: ipam.AttributeTypeVXLAN, HandlePrefix: "vxlan-tunnel-addr-"}
	VXLANV6 = Kind{Attr: ipam.AttributeTypeVXLANV6, IPv6: true, HandlePrefix: "vxlan-v6-tunnel-addr-"}
	Kinds   = []Kind{IPIP, VXLAN, VXLANV6}
)

// Handle is the IPAM handle of node's address of kind k.
func (k Kind) Handle(node string) string { return k.HandlePrefix + node }

// attrs are the allocation attributes, as Calico's.
func (k Kind) attrs(node string) map[string]string {
	return map[string]string{ipam.AttributeNode: node, ipam.AttributeType: k.Attr}
}

func (k Kind) vxlan() bool { return k.Attr != ipam.AttributeTypeIPIP }

// get returns the Node's address of kind k ("" for none).
func (k Kind) get(n *v3.Node) string {
	switch k.Attr {
	case ipam.AttributeTypeIPIP:
		if n.Spec.BGP != nil {
			return n.Spec.BGP.IPv4IPIPTunnelAddr
		}
		return ""
	case ipam.AttributeTypeVXLAN:
		return n.Spec.IPv4VXLANTunnelAddr
	}
	return n.Spec.IPv6VXLANTunnelAddr
}

// set stores addr ("" to remove) and, for VXLAN, the MAC as the package
// doc says.
func (k Kind) set(n *v3.Node, addr string) {
	mac := nodeinfo.VXLANTunnelMAC(n.Name, k.IPv6)
	fixMAC := func(p *string) {
		switch {
		case addr != "" && *p == "":
			*p = mac
		case addr == "" && *p == mac:
			*p = ""
		}
	}
	switch k.Attr {
	case ipam.AttributeTypeIPIP:
		if n.Spec.BGP == nil {
			if addr == "" {
				return
			}
			n.Spec.BGP = &v3.NodeBGPSpec{}
		}
		n.Spec.BGP.IPv4IPIPTunnelAddr = addr
		if *n.Spec.BGP == (v3.NodeBGPSpec{}) {
			n.Spec.BGP = nil // an empty BGP spec does not validate
		}
	case ipam.AttributeTypeVXLAN:
		n.Spec.IPv4VXLANTunnelAddr = addr
		fixMAC(&n.Spec.VXLANTunnelMACAddr)
	default:
		n.Spec.IPv6VXLANTunnelAddr = addr
		fixMAC(&n.Spec.VXLANTunnelMACAddrV6)
	}
}

// Pools returns the CIDRs of the pools that give node an address of kind
// k: enabled, allowing Tunnel use, selecting the node, of k's family and
// with k's encapsulation Always or CrossSubnet.
func Pools(k Kind, node *v3.Node, pools []*v3.IPPool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range pools {
		cidr, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || p.Spec.Disabled || cidr.Addr().Is6() != k.IPv6 {
			continue
		}
		if len(p.Spec.AllowedUses) > 0 && !slices.Contains(p.Spec.AllowedUses, v3.IPPoolAllowedUseTunnel) {
			continue
		}
		mode := string(p.Spec.IPIPMode)
		if k.vxlan() {
			mode = string(p.Spec.VXLANMode)
		}
		if mode != string(v3.VXLANModeAlways) && mode != string(v3.VXLANModeCrossSubnet) {
			continue
		}
		if p.Spec.NodeSelector != "" {
			sel, err := selector.Parse(p.Spec.NodeSelector)
			if err != nil || !sel.Evaluate(node.Labels) {
				continue
			}
		}
		out = append(out, cidr.Masked())
	}
	return out
}

// Allocator reconciles one node's tunnel addresses.
type Allocator struct {
	Client *client.Client
	// IPAM is the IPAM client over Client's datastore.
	IPAM *ipam.Client
	// Log may be nil.
	Log *logrus.Entry
}

// Change is one tunnel address assigned or released by Reconcile.
type Change struct {
	Kind     Kind
	Old, New string // "" for none
}

// maxAttempts bounds the retries when the Node changes under us.
const maxAttempts = 5

// Reconcile gives node the tunnel addresses its pools call for and
// releases the others (see the package doc), retrying when the Node is
// updated concurrently. It returns what it changed. The Node must exist
// (an error matching cerrors.ErrNotFound otherwise).
func (a Allocator) Reconcile(ctx context.Context, node string) ([]Change, error) {
	if a.Log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		a.Log = logrus.NewEntry(l)
	}
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var changes []Change
		changes, err = a.reconcileOnce(ctx, node)
		if err == nil || !errors.Is(err, cerrors.ErrConflict) || ctx.Err() != nil {
			return changes, err
		}
		a.Log.WithError(err).Info("Node changed while updating its tunnel addresses; retrying")
	}
	return nil, err
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func (a Allocator) reconcileOnce(ctx context.Context, name string) (_ []Change, retErr error) {
	n, err := a.Client.Nodes().Get(ctx, "", name)
	if err != nil {
		return nil, fmt.Errorf("reading node %s: %w", name, err)
	}
	pools, _, err := a.Client.IPPools().List(ctx, client.ListOptions{})
	if _, err = cerrors.Skipped(err); err != nil {
		return nil, fmt.Errorf("listing IP pools: %w", err)
	}
	orig := v3.Clone(n)
	var changes []Change
	var assigned []Kind
	defer func() {
		if retErr == nil {
			return
		}
		for _, k := range assigned {
			if err := a.IPAM.ReleaseByHandle(ctx, k.Handle(name)); err != nil && !errors.Is(err, cerrors.ErrNotFound) {
				a.Log.WithError(err).WithField("handle", k.Handle(name)).Error("Cannot release a tunnel address after a failed update")
			}
		}
	}()
	for _, k := range Kinds {
		log := a.Log.WithFields(logrus.Fields{"node": name, "type": k.Attr})
		old := k.get(n)
		if cidrs := Pools(k, n, pools); len(cidrs) > 0 {
			addr, err := a.ensure(ctx, n, k, cidrs, log)
			if err != nil {
				return nil, err
			}
			if addr.IsValid() {
				assigned = append(assigned, k)
				k.set(n, addr.String())
				changes = append(changes, Change{Kind: k, Old: old, New: addr.String()})
			} else {
				k.set(n, old) // fills in a missing MAC
			}
			continue
		}
		if err := a.remove(ctx, n, k, log); err != nil {
			return nil, err
		}
		k.set(n, "")
		if old != "" {
			changes = append(changes, Change{Kind: k, Old: old})
		}
	}
	if !sameJSON(orig, n) {
		if _, err := a.Client.Nodes().Update(ctx, n); err != nil {
			return nil, fmt.Errorf("updating node %s with its tunnel addresses: %w", name, err)
		}
		for _, c := range changes {
			a.Log.WithFields(logrus.Fields{"node": name, "type": c.Kind.Attr, "old": c.Old, "new": c.New}).Info("Tunnel address changed")
		}
	}
	return changes, nil
}

// ensure returns a new address for n of kind k, or an invalid one when
// the current one stays.
func (a Allocator) ensure(ctx context.Context, n *v3.Node, k Kind, cidrs []netip.Prefix, log *logrus.Entry) (netip.Addr, error) {
	handle := k.Handle(n.Name)
	cur := k.get(n)
	release := true
	if cur != "" {
		addr, ok := ipam.ParseAddr(cur)
		if !ok {
			return netip.Addr{}, fmt.Errorf("node %s: tunnel address %q does not parse", n.Name, cur)
		}
		h, attrs, err := a.IPAM.GetAssignmentAttributes(ctx, addr)
		switch {
		case errors.Is(err, cerrors.ErrNotFound):
			log.WithField("addr", cur).Info("Tunnel address is not assigned in IPAM; assigning a new one")
		case err != nil:
			return netip.Addr{}, fmt.Errorf("reading the allocation of tunnel address %s: %w", cur, err)
		case attrs[ipam.AttributeType] == k.Attr && attrs[ipam.AttributeNode] == n.Name:
			if inAny(addr, cidrs) {
				return netip.Addr{}, nil
			}
			log.WithField("addr", cur).Info("Tunnel address is outside the pools that call for it; replacing it")
		case len(attrs) == 0 && h == "":
			// Assigned before allocations had handles and attributes:
			// take it again with them.
			_, err := a.IPAM.ReleaseIPs(ctx, ipam.ReleaseOptions{Address: addr})
			if err == nil {
				err = a.IPAM.AssignIP(ctx, ipam.AssignIPArgs{IP: addr, HandleID: handle, Attrs: k.attrs(n.Name), Hostname: n.Name})
			}
			if err == nil {
				log.WithField("addr", cur).Info("Tunnel address now carries its handle and attributes")
				return netip.Addr{}, nil
			}
			if !errors.Is(err, cerrors.ErrExists) {
				return netip.Addr{}, fmt.Errorf("re-assigning tunnel address %s with a handle: %w", cur, err)
			}
			log.WithField("addr", cur).Warn("Tunnel address was taken meanwhile; assigning a new one")
			release = false
		default:
			// Someone else's (a workload's): leave it, take another.
			log.WithFields(logrus.Fields{"addr": cur, "handle": h, "attrs": attrs}).Warn("Tunnel address belongs to something else; assigning a new one")
			release = false
		}
	}
	if release {
		// Whatever the handle holds is stale: the Node no longer names it.
		if err := a.IPAM.ReleaseByHandle(ctx, handle); err != nil && !errors.Is(err, cerrors.ErrNotFound) {
			return netip.Addr{}, fmt.Errorf("releasing old tunnel addresses of handle %s: %w", handle, err)
		}
	}
	args := ipam.AutoAssignArgs{HandleID: handle, Attrs: k.attrs(n.Name), Hostname: n.Name, IntendedUse: v3.IPPoolAllowedUseTunnel}
	pools := make([]string, len(cidrs))
	for i, c := range cidrs {
		pools[i] = c.String()
	}
	if k.IPv6 {
		args.Num6, args.IPv6Pools = 1, pools
	} else {
		args.Num4, args.IPv4Pools = 1, pools
	}
	v4, v6, err := a.IPAM.AutoAssign(ctx, args)
	got := v4
	if k.IPv6 {
		got = v6
	}
	if err == nil {
		err = got.PartialFulfillmentError()
	}
	if err != nil {
		if rerr := a.IPAM.ReleaseByHandle(ctx, handle); rerr != nil && !errors.Is(rerr, cerrors.ErrNotFound) {
			log.WithError(rerr).Warn("Cannot release a partial tunnel address assignment")
		}
		return netip.Addr{}, fmt.Errorf("assigning a %s to node %s from %v: %w", k.Attr, n.Name, pools, err)
	}
	return got.IPs[0].Addr(), nil
}

// remove releases n's address of kind k, as Calico does: by handle, or,
// when the handle is gone, the address itself if it carries no handle or
// ours.
func (a Allocator) remove(ctx context.Context, n *v3.Node, k Kind, log *logrus.Entry) error {
	handle := k.Handle(n.Name)
	err := a.IPAM.ReleaseByHandle(ctx, handle)
	if err == nil || !errors.Is(err, cerrors.ErrNotFound) {
		if err != nil {
			return fmt.Errorf("releasing tunnel addresses of handle %s: %w", handle, err)
		}
		return nil
	}
	cur := k.get(n)
	addr, ok := ipam.ParseAddr(cur)
	if cur == "" || !ok {
		return nil
	}
	h, attrs, err := a.IPAM.GetAssignmentAttributes(ctx, addr)
	switch {
	case errors.Is(err, cerrors.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("reading the allocation of tunnel address %s: %w", cur, err)
	case h == "" && len(attrs) == 0:
		_, err = a.IPAM.ReleaseIPs(ctx, ipam.ReleaseOptions{Address: addr})
	case h == handle:
		_, err = a.IPAM.ReleaseIPs(ctx, ipam.ReleaseOptions{Address: addr, Handle: handle})
	default:
		log.WithFields(logrus.Fields{"addr": cur, "handle": h, "attrs": attrs}).Warn("Tunnel address was reused by something else; not releasing it")
	}
	if err != nil {
		return fmt.Errorf("releasing tunnel address %s: %w", cur, err)
	}
	return nil
}

func sameJSON(a, b *v3.Node) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func inAny(a netip.Addr, cidrs []netip.Prefix) bool {
	for _, c := range cidrs {
		if c.Contains(a) {
			return true
		}
	}
	return false
}
