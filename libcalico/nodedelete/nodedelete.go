// Package nodedelete removes a Calico node and everything that belongs to
// it. It is the one cascade behind `calicoctl delete node`, `calicoctl
// ipam check --release-leaks` (for nodes already gone) and
// calico-kube-controllers' node controller, following Calico's
// clientv3 node Delete:
//
//  1. read the Node (its tunnel addresses), its WorkloadEndpoints,
//     HostEndpoints and BGPPeers (spec.node)
//  2. release its IPAM addresses: every allocation whose node attribute
//     names it (workload and tunnel addresses, in any block), and the
//     addresses its endpoints and Node name that carry no node attribute
//  3. delete the WorkloadEndpoints
//  4. delete the HostEndpoints, BGPPeers, FelixConfiguration and
//     BGPConfiguration node.<name>
//  5. release its block affinities (empty blocks are deleted, others
//     lose their affinity and keep their addresses)
//  6. delete the Node, only if every step before succeeded
//
// Addresses are released before the resources that name them are
// deleted, so an interrupted run never leaves an address allocated that
// nothing refers to; the Node goes last, so a node whose cleanup failed
// is still there to be deleted again. Every delete is guarded by the
// revision read (re-read on a conflict: a resource that no longer belongs
// to the node is left alone) and a resource that is already gone is
// skipped, so a run can be repeated after a failure, and two runs can
// race, without error.
package nodedelete

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
)

// Result is what one run removed; what a concurrent run removed first is
// not in it.
type Result struct {
	// WorkloadEndpoints are "namespace/name"; Configs are
	// "FelixConfiguration(node.<name>)" and "BGPConfiguration(node.<name>)".
	WorkloadEndpoints, HostEndpoints, BGPPeers, Configs []string
	// Addresses are the IPAM addresses released, Affinities the blocks
	// whose affinity to the node was released.
	Addresses  []netip.Addr
	Affinities []netip.Prefix
	// NodeDeleted says the Node itself was deleted by this run.
	NodeDeleted bool
}

// Leftovers reports whether the run removed anything besides the Node.
func (r *Result) Leftovers() bool {
	return len(r.WorkloadEndpoints)+len(r.HostEndpoints)+len(r.BGPPeers)+len(r.Configs)+len(r.Addresses)+len(r.Affinities) > 0
}

// Summary counts what was removed besides the Node, in Calico's
// "N thing(s)" style: "2 workload endpoint(s), 3 IP address(es)". It is
// "" when nothing was.
func (r *Result) Summary() string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(len(r.WorkloadEndpoints), "workload endpoint(s)")
	add(len(r.HostEndpoints), "host endpoint(s)")
	add(len(r.BGPPeers), "BGP peer(s)")
	add(len(r.Configs), "configuration(s)")
	add(len(r.Addresses), "IP address(es)")
	add(len(r.Affinities), "block affinity(ies)")
	return strings.Join(parts, ", ")
}

// Options adjust DeleteWithOptions.
type Options struct {
	// ResourceVersion, when set, is the Node's expected resourceVersion
	// (as `calicoctl delete -f` passes it): if the Node has another,
	// nothing is removed and the error matches cerrors.ErrConflict. The
	// Node's own delete is guarded by it, so a Node changed during the
	// cascade is kept (its leftovers are gone) with a conflict error.
	ResourceVersion string
	// OnlyIfAbsent cleans up after a node that is already gone (as
	// `calicoctl ipam check --release-leaks` does): if the Node exists,
	// nothing is removed and the error matches ErrNodeExists.
	OnlyIfAbsent bool
}

// ErrNodeExists is returned, with Options.OnlyIfAbsent, for a node that
// exists.
var ErrNodeExists = errors.New("node exists")

// maxAttempts bounds the re-reads of one resource that keeps changing.
const maxAttempts = 5

// Delete removes node and everything that belongs to it, in an order that
// never leaves the node's addresses unreferenced-but-held: WorkloadEndpoints
// on it (and their IPAM addresses), HostEndpoints with spec.node, BGPPeers
// with spec.node, FelixConfiguration and BGPConfiguration "node.<name>",
// its IPAM addresses (by the allocation attribute node, tunnel addresses
// included) and block affinities (blocks left empty are released as Calico
// does), then the Node itself. Idempotent: deleting a node that is already
// gone still removes leftovers (NodeDeleted is then false, and the error
// nil); safe to re-run after a failure midway; concurrent runs do not
// error on each other's deletions. It returns what it removed, also when
// it fails part-way. A Node whose stored value does not decode is deleted
// by name all the same; a workload endpoint, host endpoint or BGP peer
// that does not decode fails the delete (it may be the node's), naming
// its key. ic may be nil (an IPAM client over c's datastore is made); log
// may be nil.
func Delete(ctx context.Context, c *client.Client, ic *ipam.Client, node string, log *logrus.Entry) (*Result, error) {
	return DeleteWithOptions(ctx, c, ic, node, Options{}, log)
}

// DeleteWithOptions is Delete with Options.
func DeleteWithOptions(ctx context.Context, c *client.Client, ic *ipam.Client, node string, opts Options, log *logrus.Entry) (*Result, error) {
	if node == "" || strings.Contains(node, "/") {
		return nil, fmt.Errorf("deleting node: invalid node name %q", node)
	}
	if log == nil {
		log = discard()
	}
	if ic == nil {
		var err error
		if ic, err = ipam.New(c.Backend(), log, ipam.Options{}); err != nil {
			return nil, err
		}
	}
	d := &deleter{c: c, ic: ic, node: node, log: log.WithField("node", node), res: &Result{}}
	err := d.run(ctx, opts)
	slices.SortFunc(d.res.Addresses, netip.Addr.Compare)
	slices.SortFunc(d.res.Affinities, netip.Prefix.Compare)
	if err != nil {
		return d.res, fmt.Errorf("deleting node %s: %w", node, err)
	}
	return d.res, nil
}

func discard() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

type deleter struct {
	c    *client.Client
	ic   *ipam.Client
	node string
	log  *logrus.Entry
	res  *Result
}

func (d *deleter) run(ctx context.Context, opts Options) error {
	n, err := d.c.Nodes().Get(ctx, "", d.node)
	switch {
	case errors.Is(err, cerrors.ErrNotFound):
		n = nil
	case errors.Is(err, cerrors.ErrCorrupt) && !opts.OnlyIfAbsent:
		// A Node whose value does not decode is deleted by name (at
		// the caller's resourceVersion, if any); its tunnel addresses are
		// unknown, but those IPAM allocated carry its node attribute.
		d.log.WithError(err).Warn("Deleting a Node whose stored value does not decode")
		n = v3.NewNode()
		n.Name, n.ResourceVersion = d.node, opts.ResourceVersion
	case errors.Is(err, cerrors.ErrCorrupt):
		return ErrNodeExists
	case err != nil:
		return fmt.Errorf("reading node: %w", err)
	case opts.OnlyIfAbsent:
		return ErrNodeExists
	case opts.ResourceVersion != "" && n.ResourceVersion != opts.ResourceVersion:
		return &cerrors.Conflict{Key: client.KeyFor(n).String()}
	}

	// 1. What belongs to the node.
	weps, err := owned(ctx, d.c.WorkloadEndpoints(), func(w *v3.WorkloadEndpoint) bool { return w.Spec.Node == d.node })
	if err != nil {
		return fmt.Errorf("listing workload endpoints: %w", err)
	}
	heps, err := owned(ctx, d.c.HostEndpoints(), func(h *v3.HostEndpoint) bool { return h.Spec.Node == d.node })
	if err != nil {
		return fmt.Errorf("listing host endpoints: %w", err)
	}
	peers, err := owned(ctx, d.c.BGPPeers(), func(p *v3.BGPPeer) bool { return p.Spec.Node == d.node })
	if err != nil {
		return fmt.Errorf("listing BGP peers: %w", err)
	}

	// 2. Addresses first: nothing is deleted while its addresses are held.
	var also []netip.Addr
	for _, w := range weps {
		also = append(also, wepAddrs(w)...)
	}
	if n != nil {
		also = append(also, ipam.TunnelAddrs(n)...)
	}
	if err := d.releaseAddresses(ctx, also); err != nil {
		return err
	}

	// 3. and 4. The resources that name the node.
	var errs []error
	for _, w := range weps {
		// An endpoint rewritten meanwhile may name new addresses.
		errs = append(errs, d.deleteOwned(ctx, v3.KindWorkloadEndpoint, w, func(r v3.Resource) (bool, error) {
			cur := r.(*v3.WorkloadEndpoint)
			if cur.Spec.Node != d.node {
				return false, nil
			}
			return true, d.releaseAddresses(ctx, wepAddrs(cur))
		}, &d.res.WorkloadEndpoints))
	}
	if err := errors.Join(errs...); err != nil {
		return err // the Node stays, for a re-run
	}
	for _, h := range heps {
		errs = append(errs, d.deleteOwned(ctx, v3.KindHostEndpoint, h, func(r v3.Resource) (bool, error) {
			return r.(*v3.HostEndpoint).Spec.Node == d.node, nil
		}, &d.res.HostEndpoints))
	}
	for _, p := range peers {
		errs = append(errs, d.deleteOwned(ctx, v3.KindBGPPeer, p, func(r v3.Resource) (bool, error) {
			return r.(*v3.BGPPeer).Spec.Node == d.node, nil
		}, &d.res.BGPPeers))
	}
	for _, kind := range []string{v3.KindFelixConfiguration, v3.KindBGPConfiguration} {
		errs = append(errs, d.deleteConfig(ctx, kind))
	}

	// 5. Block affinities.
	released, err := d.ic.ReleaseHostAffinities(ctx, d.node, false)
	d.res.Affinities = append(d.res.Affinities, released...)
	for _, p := range released {
		d.log.WithField("block", p).Info("Released block affinity")
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("releasing block affinities: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// 6. The Node.
	if n == nil {
		return nil
	}
	return d.deleteNode(ctx, n, opts.ResourceVersion != "")
}

// owned lists the resources of one kind for which mine holds.
func owned[T v3.Resource](ctx context.Context, r client.Resources[T], mine func(T) bool) ([]T, error) {
	all, _, err := r.List(ctx, client.ListOptions{})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(t T) bool { return !mine(t) }), nil
}

// releaseAddresses releases the node's addresses (ipam.Client.ReleaseNodeAllocations).
func (d *deleter) releaseAddresses(ctx context.Context, also []netip.Addr) error {
	freed, err := d.ic.ReleaseNodeAllocations(ctx, d.node, also)
	d.res.Addresses = append(d.res.Addresses, freed...)
	for _, a := range freed {
		d.log.WithField("ip", a).Info("Released IP address")
	}
	if err != nil {
		return fmt.Errorf("releasing IP addresses: %w", err)
	}
	return nil
}

// wepAddrs returns the addresses of an endpoint's ipNetworks.
func wepAddrs(w *v3.WorkloadEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, s := range w.Spec.IPNetworks {
		if a, ok := ipam.ParseAddr(s); ok {
			out = append(out, a)
		}
	}
	return out
}

// deleteOwned deletes r at the revision it was read at. On a conflict it
// reads r again and, while reread says it still belongs to the node (after
// doing what must come before its delete), deletes that revision. A
// resource already gone, or no longer the node's, is skipped; one deleted
// is appended to done.
func (d *deleter) deleteOwned(ctx context.Context, kind string, r v3.Resource, reread func(v3.Resource) (bool, error), done *[]string) error {
	m := r.GetObjectMeta()
	ns, name, rv := m.Namespace, m.Name, m.ResourceVersion
	id := name
	if ns != "" {
		id = ns + "/" + name
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		_, err := d.c.Delete(ctx, kind, ns, name, rv)
		switch {
		case err == nil:
			*done = append(*done, id)
			d.log.WithFields(logrus.Fields{"kind": kind, "name": id}).Info("Deleted resource")
			return nil
		case errors.Is(err, cerrors.ErrNotFound):
			return nil
		case !errors.Is(err, cerrors.ErrConflict):
			return fmt.Errorf("deleting %s %s: %w", kind, id, err)
		}
		cur, err := d.c.Get(ctx, kind, ns, name)
		if errors.Is(err, cerrors.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s %s: %w", kind, id, err)
		}
		mine, err := reread(cur)
		if err != nil {
			return err
		}
		if !mine {
			return nil
		}
		rv = cur.GetObjectMeta().ResourceVersion
	}
	return fmt.Errorf("deleting %s %s: it keeps changing: %w", kind, id, &cerrors.Conflict{Key: id})
}

// deleteConfig deletes the FelixConfiguration or BGPConfiguration
// node.<name>.
func (d *deleter) deleteConfig(ctx context.Context, kind string) error {
	name := "node." + d.node
	cur, err := d.c.Get(ctx, kind, "", name)
	if errors.Is(err, cerrors.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	var done []string
	if err := d.deleteOwned(ctx, kind, cur, func(v3.Resource) (bool, error) { return true, nil }, &done); err != nil {
		return err
	}
	for _, n := range done {
		d.res.Configs = append(d.res.Configs, kind+"("+n+")")
	}
	return nil
}

// deleteNode deletes the Node at the revision read. If it changed
// meanwhile (its tunnel addresses may have), it releases the addresses
// it names now and tries again, unless the caller's revision must hold.
func (d *deleter) deleteNode(ctx context.Context, n *v3.Node, strict bool) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		_, err := d.c.Delete(ctx, v3.KindNode, "", d.node, n.ResourceVersion)
		switch {
		case err == nil:
			d.res.NodeDeleted = true
			d.log.Info("Deleted Node")
			return nil
		case errors.Is(err, cerrors.ErrNotFound):
			return nil // a concurrent run got there first
		case !errors.Is(err, cerrors.ErrConflict) || strict:
			return fmt.Errorf("deleting Node: %w", err)
		}
		if n, err = d.c.Nodes().Get(ctx, "", d.node); err != nil {
			if errors.Is(err, cerrors.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("reading node: %w", err)
		}
		if err := d.releaseAddresses(ctx, ipam.TunnelAddrs(n)); err != nil {
			return err
		}
	}
	return fmt.Errorf("deleting Node: it keeps changing: %w", &cerrors.Conflict{Key: client.KeyFor(n).String()})
}
