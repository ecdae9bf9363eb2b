// Package routetable keeps bgpd's routes in the kernel: the blackhole
// route of each affine block and the routes learned from peers, all in the
// main table with one protocol number (12, "bird", as Calico's BIRD).
//
// Callers Set and Delete desired routes; Apply programs the routes that
// changed since the last Apply and, after QueueResync, compares the whole
// kernel table with the desired state and fixes every difference. Routes
// of our protocol that are not desired are removed only once sweeping is
// allowed (AllowSweep): after a restart the routes installed by the
// previous run keep forwarding until the peers have resent theirs.
//
// The kernel sits behind the narrow Netlink interface; Kernel is the real
// one and Fake a stateful double for tests.
package routetable

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"
)

// Route is one route owned by bgpd.
type Route struct {
	Dst netip.Prefix
	// Blackhole routes carry nothing else.
	Blackhole bool
	// Gw is the gateway; Dev the outgoing device ("" lets the kernel pick).
	Gw  netip.Addr
	Dev string
	// OnLink: the gateway is reachable on Dev without a covering route.
	OnLink bool
	// Metric is the route's priority; routes of other programs with a
	// different metric are separate routes and never replaced.
	Metric int
}

// Equal reports whether the kernel route k satisfies the desired route r
// (an empty r.Dev accepts any device).
func (r Route) Equal(k Route) bool {
	return r.Dst == k.Dst && r.Blackhole == k.Blackhole && r.Gw == k.Gw && r.OnLink == k.OnLink &&
		r.Metric == k.Metric && (r.Dev == "" || r.Dev == k.Dev)
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Blackhole {
		s = "blackhole " + s
	}
	if r.Gw.IsValid() {
		s += " via " + r.Gw.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.OnLink {
		s += " onlink"
	}
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	return s
}

// Netlink is the kernel as the table needs it.
type Netlink interface {
	// List returns the main table's routes with protocol proto, both
	// address families.
	List(proto int) ([]Route, error)
	// Replace installs r with protocol proto, replacing the route to
	// r.Dst with r's metric.
	Replace(r Route, proto int) error
	// Delete removes a route to dst with protocol proto (any metric); a
	// missing route is not an error. Routes of other protocols are never
	// touched.
	Delete(dst netip.Prefix, proto int) error
	// Lookup says how the kernel reaches addr: on dev directly (gw
	// invalid) or through gw on dev.
	Lookup(addr netip.Addr) (gw netip.Addr, dev string, err error)
}

// Table converges the kernel towards the desired routes. It is not safe
// for concurrent use.
type Table struct {
	nl     Netlink
	proto  int
	log    *logrus.Entry
	want   map[netip.Prefix]Route
	have   map[netip.Prefix]Route // what we programmed or found
	dirty  map[netip.Prefix]bool
	resync bool
	sweep  bool
}

// New returns a table for protocol proto. A full resync is queued, so the
// first Apply reads the kernel.
func New(nl Netlink, proto int, log *logrus.Entry) *Table {
	return &Table{nl: nl, proto: proto, log: log, want: map[netip.Prefix]Route{}, have: map[netip.Prefix]Route{},
		dirty: map[netip.Prefix]bool{}, resync: true}
}

// Set makes r desired.
func (t *Table) Set(r Route) {
	r.Dst = r.Dst.Masked()
	if old, ok := t.want[r.Dst]; ok && old == r {
		return
	}
	t.want[r.Dst] = r
	t.dirty[r.Dst] = true
}

// Delete makes dst not desired.
func (t *Table) Delete(dst netip.Prefix) {
	dst = dst.Masked()
	if _, ok := t.want[dst]; !ok {
		return
	}
	delete(t.want, dst)
	t.dirty[dst] = true
}

// Desired returns the desired route to dst.
func (t *Table) Desired(dst netip.Prefix) (Route, bool) {
	r, ok := t.want[dst.Masked()]
	return r, ok
}

// Len is the number of desired routes.
func (t *Table) Len() int { return len(t.want) }

// QueueResync makes the next Apply compare the whole kernel table.
func (t *Table) QueueResync() { t.resync = true }

// AllowSweep lets resyncs remove routes of our protocol that are not
// desired, and queues a resync.
func (t *Table) AllowSweep() {
	if !t.sweep {
		t.sweep = true
		t.resync = true
	}
}

// Apply programs the pending changes (all differences after
// QueueResync). Failed routes stay pending; the error joins their errors.
func (t *Table) Apply() error {
	var errs []error
	if t.resync {
		if err := t.readKernel(); err != nil {
			errs = append(errs, err)
		} else {
			t.resync = false
		}
	}
	for dst := range t.dirty {
		want, ok := t.want[dst]
		have, had := t.have[dst]
		switch {
		case ok && had && want.Equal(have):
		case ok:
			if had && have.Metric != want.Metric {
				// A new metric makes a new route: remove the old one first.
				if err := t.nl.Delete(dst, t.proto); err != nil {
					errs = append(errs, fmt.Errorf("removing route %s: %w", have, err))
					continue
				}
				delete(t.have, dst)
			}
			if err := t.nl.Replace(want, t.proto); err != nil {
				errs = append(errs, fmt.Errorf("programming route %s: %w", want, err))
				continue
			}
			t.have[dst] = want
			t.log.WithField("route", want.String()).Debug("Programmed route")
		case had:
			if err := t.nl.Delete(dst, t.proto); err != nil {
				errs = append(errs, fmt.Errorf("removing route %s: %w", dst, err))
				continue
			}
			delete(t.have, dst)
			t.log.WithField("dst", dst).Debug("Removed route")
		}
		delete(t.dirty, dst)
	}
	return errors.Join(errs...)
}

// readKernel replaces have with the kernel's routes and marks every
// difference dirty. Routes not desired are adopted (and so removed) only
// when sweeping is allowed.
func (t *Table) readKernel() error {
	routes, err := t.nl.List(t.proto)
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	t.have = make(map[netip.Prefix]Route, len(routes))
	kept := 0
	for _, k := range routes {
		k.Dst = k.Dst.Masked()
		if _, ok := t.want[k.Dst]; !ok && !t.sweep {
			kept++
			continue
		}
		t.have[k.Dst] = k
		if w, ok := t.want[k.Dst]; !ok || !w.Equal(k) {
			t.dirty[k.Dst] = true
		}
	}
	for dst := range t.want {
		if _, ok := t.have[dst]; !ok {
			t.dirty[dst] = true
		}
	}
	if kept > 0 {
		t.log.WithField("routes", kept).Info("Keeping routes of the previous run until the peers resync")
	}
	return nil
}
