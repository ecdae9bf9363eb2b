// Package kernelwatch reports the workload routes felix programs: main
// table, unicast, no gateway, through an interface whose name starts with
// a prefix ("cali"). It subscribes to netlink route and link changes, lists
// the table after subscribing (and again on a timer or after a lost
// message) and reports differences, so its view converges even when
// notifications are dropped. IPv4 routes removed with their interface
// produce no notification of their own; the link removal is used instead.
package kernelwatch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// Event is a change of one workload route.
type Event struct {
	Dst   netip.Prefix
	Iface string
	// Deleted: the route is gone (or no longer a workload route).
	Deleted bool
}

// Options configure a Watcher.
type Options struct {
	// IfacePrefix selects the interfaces ("cali").
	IfacePrefix string
	// IgnoreProtocol is bgpd's own route protocol, never reported.
	IgnoreProtocol int
	// ResyncInterval re-lists the table (default 90s).
	ResyncInterval time.Duration
	Log            *logrus.Entry
}

// Watcher tracks workload routes in the calling process's namespace.
type Watcher struct {
	opts   Options
	routes map[netip.Prefix]tracked
	links  map[int]string
	// nl lists in the calling thread's namespace, retrying interrupted
	// dumps. A route dump still interrupted is an error, not a short
	// list (netlinksafe's package function would return nothing).
	nl netlinksafe.Handle
}

type tracked struct {
	ifindex int
	iface   string
}

// New returns a watcher; nothing happens until Run.
func New(opts Options) *Watcher {
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 90 * time.Second
	}
	return &Watcher{opts: opts, routes: map[netip.Prefix]tracked{}, links: map[int]string{},
		nl: netlinksafe.Handle{Handle: &netlink.Handle{}}}
}

// Run sends batches of events to out until ctx ends. The first batch
// describes every workload route present at start (it may be empty).
func (w *Watcher) Run(ctx context.Context, out chan<- []Event) error {
	for {
		err := w.runOnce(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		w.opts.Log.WithError(err).Warn("Kernel route watch interrupted; resubscribing")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (w *Watcher) runOnce(ctx context.Context, out chan<- []Event) error {
	done := make(chan struct{})
	defer close(done)
	routeCh := make(chan netlink.RouteUpdate, 4096)
	linkCh := make(chan netlink.LinkUpdate, 256)
	errCh := make(chan error, 2)
	onErr := func(err error) {
		select {
		case errCh <- err:
		default:
		}
	}
	if err := netlink.RouteSubscribeWithOptions(routeCh, done, netlink.RouteSubscribeOptions{
		ErrorCallback: onErr, ReceiveBufferSize: 4 << 20,
	}); err != nil {
		return fmt.Errorf("subscribing to routes: %w", err)
	}
	if err := netlink.LinkSubscribeWithOptions(linkCh, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribing to links: %w", err)
	}
	if err := w.resync(ctx, out); err != nil {
		return err
	}
	tick := time.NewTicker(w.opts.ResyncInterval)
	defer tick.Stop()
	for {
		var batch []Event
		select {
		case <-ctx.Done():
			return nil
		case err := <-errCh:
			return err
		case <-tick.C:
			if err := w.resync(ctx, out); err != nil {
				return err
			}
			continue
		case u, ok := <-routeCh:
			if !ok {
				return errors.New("route subscription closed")
			}
			batch = append(batch, w.onRoute(u)...)
		case u, ok := <-linkCh:
			if !ok {
				return errors.New("link subscription closed")
			}
			batch = append(batch, w.onLink(u)...)
		}
		// Coalesce whatever else is queued, without waiting.
	drain:
		for len(batch) < 1024 {
			select {
			case u, ok := <-routeCh:
				if !ok {
					break drain
				}
				batch = append(batch, w.onRoute(u)...)
			case u, ok := <-linkCh:
				if !ok {
					break drain
				}
				batch = append(batch, w.onLink(u)...)
			default:
				break drain
			}
		}
		if len(batch) > 0 && !send(ctx, out, batch) {
			return nil
		}
	}
}

func send(ctx context.Context, out chan<- []Event, batch []Event) bool {
	select {
	case out <- batch:
		return true
	case <-ctx.Done():
		return false
	}
}

// candidate returns the route's destination and interface if it is a
// workload route.
func (w *Watcher) candidate(r *netlink.Route) (netip.Prefix, tracked, bool) {
	if (r.Table != 0 && r.Table != unix.RT_TABLE_MAIN) || r.Type != unix.RTN_UNICAST ||
		int(r.Protocol) == w.opts.IgnoreProtocol || r.Gw != nil || len(r.MultiPath) > 0 || r.LinkIndex <= 0 {
		return netip.Prefix{}, tracked{}, false
	}
	// Routes the kernel makes for an interface's own addresses (the
	// fe80::/64 of every cali veth) are not workloads.
	if r.Protocol == unix.RTPROT_KERNEL {
		return netip.Prefix{}, tracked{}, false
	}
	dst, ok := netaddr.Prefix(r.Dst)
	if !ok || dst.Addr().IsLinkLocalUnicast() {
		return netip.Prefix{}, tracked{}, false
	}
	name := w.linkName(r.LinkIndex)
	if !strings.HasPrefix(name, w.opts.IfacePrefix) {
		return netip.Prefix{}, tracked{}, false
	}
	return dst, tracked{ifindex: r.LinkIndex, iface: name}, true
}

func (w *Watcher) linkName(idx int) string {
	if n, ok := w.links[idx]; ok {
		return n
	}
	l, err := w.nl.LinkByIndex(idx)
	if err != nil {
		return ""
	}
	w.links[idx] = l.Attrs().Name
	return l.Attrs().Name
}

func (w *Watcher) onRoute(u netlink.RouteUpdate) []Event {
	if u.Type == unix.RTM_DELROUTE {
		dst, ok := netaddr.Prefix(u.Route.Dst)
		if !ok || (u.Route.Table != 0 && u.Route.Table != unix.RT_TABLE_MAIN) {
			return nil
		}
		t, ok := w.routes[dst]
		if !ok || (u.Route.LinkIndex > 0 && u.Route.LinkIndex != t.ifindex) {
			return nil
		}
		delete(w.routes, dst)
		return []Event{{Dst: dst, Iface: t.iface, Deleted: true}}
	}
	dst, t, ok := w.candidate(&u.Route)
	if !ok {
		// A route replaced by a non-workload route stops being one.
		if d, okd := netaddr.Prefix(u.Route.Dst); okd && (u.Route.Table == 0 || u.Route.Table == unix.RT_TABLE_MAIN) {
			if old, had := w.routes[d]; had && int(u.Route.Protocol) != w.opts.IgnoreProtocol {
				delete(w.routes, d)
				return []Event{{Dst: d, Iface: old.iface, Deleted: true}}
			}
		}
		return nil
	}
	if old, had := w.routes[dst]; had && old == t {
		return nil
	}
	w.routes[dst] = t
	return []Event{{Dst: dst, Iface: t.iface}}
}

func (w *Watcher) onLink(u netlink.LinkUpdate) []Event {
	idx := int(u.Index)
	if u.Header.Type != unix.RTM_DELLINK {
		if u.Link != nil {
			w.links[idx] = u.Link.Attrs().Name
		}
		return nil
	}
	delete(w.links, idx)
	var out []Event
	for dst, t := range w.routes {
		if t.ifindex == idx {
			delete(w.routes, dst)
			out = append(out, Event{Dst: dst, Iface: t.iface, Deleted: true})
		}
	}
	return out
}

// resync lists links and routes and reports the differences from what was
// reported before (always at least one, possibly empty, batch).
func (w *Watcher) resync(ctx context.Context, out chan<- []Event) error {
	links, err := w.nl.LinkList()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	w.links = make(map[int]string, len(links))
	for _, l := range links {
		w.links[l.Attrs().Index] = l.Attrs().Name
	}
	rs, err := w.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	now := map[netip.Prefix]tracked{}
	for i := range rs {
		if dst, t, ok := w.candidate(&rs[i]); ok {
			now[dst] = t
		}
	}
	batch := []Event{}
	for dst, t := range w.routes {
		if _, ok := now[dst]; !ok {
			batch = append(batch, Event{Dst: dst, Iface: t.iface, Deleted: true})
		}
	}
	for dst, t := range now {
		if old, ok := w.routes[dst]; !ok || old != t {
			batch = append(batch, Event{Dst: dst, Iface: t.iface})
		}
	}
	slices.SortFunc(batch, func(a, b Event) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	w.routes = now
	send(ctx, out, batch)
	return nil
}
