package routetable

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Fake is an in-memory Netlink that can fail on demand.
type Fake struct {
	mu sync.Mutex
	// Routes holds every route by (proto, dst).
	Routes map[int]map[netip.Prefix]Route
	// Connected lists directly reachable subnets and their device;
	// anything else is reached through DefaultGw on DefaultDev.
	Connected  map[netip.Prefix]string
	DefaultGw  netip.Addr
	DefaultDev string
	// FailReplace makes Replace fail for these destinations.
	FailReplace map[netip.Prefix]bool
	// FailList makes List fail.
	FailList bool
	// Calls counts Replace and Delete calls.
	Calls int
}

var _ Netlink = (*Fake)(nil)

// NewFake returns an empty fake.
func NewFake() *Fake {
	return &Fake{Routes: map[int]map[netip.Prefix]Route{}, Connected: map[netip.Prefix]string{}, FailReplace: map[netip.Prefix]bool{}}
}

// Get returns the route to dst with protocol proto.
func (f *Fake) Get(proto int, dst netip.Prefix) (Route, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.Routes[proto][dst]
	return r, ok
}

// Put stores a route directly (as another program or a previous run would).
func (f *Fake) Put(proto int, r Route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Routes[proto] == nil {
		f.Routes[proto] = map[netip.Prefix]Route{}
	}
	f.Routes[proto][r.Dst] = r
}

// SetConnected makes p directly reachable on dev (safe while in use).
func (f *Fake) SetConnected(p netip.Prefix, dev string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Connected[p] = dev
}

// List implements Netlink.
func (f *Fake) List(proto int) ([]Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailList {
		return nil, errors.New("fake list failure")
	}
	var out []Route
	for _, r := range f.Routes[proto] {
		out = append(out, r)
	}
	return out, nil
}

// Replace implements Netlink.
func (f *Fake) Replace(r Route, proto int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	if f.FailReplace[r.Dst] {
		return fmt.Errorf("fake replace failure for %s", r.Dst)
	}
	if f.Routes[proto] == nil {
		f.Routes[proto] = map[netip.Prefix]Route{}
	}
	f.Routes[proto][r.Dst] = r
	return nil
}

// Delete implements Netlink.
func (f *Fake) Delete(dst netip.Prefix, proto int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	delete(f.Routes[proto], dst)
	return nil
}

// Lookup implements Netlink.
func (f *Fake) Lookup(addr netip.Addr) (netip.Addr, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	best, dev := -1, ""
	for p, d := range f.Connected {
		if p.Contains(addr) && p.Bits() > best {
			best, dev = p.Bits(), d
		}
	}
	if best >= 0 {
		return netip.Addr{}, dev, nil
	}
	if !f.DefaultGw.IsValid() {
		return netip.Addr{}, "", fmt.Errorf("no route to %s", addr)
	}
	return f.DefaultGw, f.DefaultDev, nil
}
