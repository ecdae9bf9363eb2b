// Package linux is felix's Linux dataplane: it takes the desired state
// from the calculation graph (dpapi.State) and converges the kernel to it,
// through the ipsets, iptables (via package rules) and routes managers.
//
//	State ──► rules.Render ──► iptables.Tables (v4, v6)  iptables-restore
//	      ──► ipsets.Converter ──► ipsets.Manager        ipset restore
//	      ──► routes.Compute ──► routes.Manager          netlink, /proc/sys
//	      ──► PodMTU ──► MTU file (for the CNI plugin)   written on change
//
// Apply writes deltas only; Run performs the periodic refreshes that read
// the kernel back and repair what changed behind felix's back, and reacts
// to interfaces appearing. Nothing touches the kernel before the first
// State with InSync set; the first such Apply also removes stale cali
// chains, IP sets and routes.
package linux

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/calico-etcd/calico/felix/dataplane/ipsets"
	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dataplane/routes"
	"github.com/calico-etcd/calico/felix/dataplane/rules"
	"github.com/calico-etcd/calico/felix/dataplane/runner"
	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// Dataplane converges the Linux kernel to felix's desired state.
type Dataplane struct {
	cfg      dpapi.Config
	rulesCfg rules.Config
	routeCfg routes.Config
	log      *logrus.Entry

	runner  runner.Runner
	nl      *netlink.Handle
	nsh     *netns.NsHandle // nil: current namespace
	inNetNS func(func() error) error

	iptMetrics   *iptables.Metrics
	ipsetMetrics *ipsets.Metrics
	routeMetrics *routes.Metrics
	applyTime    prometheus.Summary
	failures     prometheus.Counter
	execTime     prometheus.Summary
	ifaceBatch   prometheus.Summary
	noLinkWatch  bool

	mu      ctxMutex
	last    *dpapi.State
	started bool // the kernel has been touched
	closed  bool
	// detected yields the iptables backend, detected (read-only) from New
	// on, so that it overlaps the datastore sync; Close stops it.
	detected   chan string
	stopDetect context.CancelFunc
	detectDone chan struct{}
	failed     bool // the last apply failed; Run retries
	backend    string
	ipt4       *iptables.Tables
	ipt6       *iptables.Tables
	ipsets     *ipsets.Manager
	setConv    ipsets.Converter
	routes     *routes.Manager
	mtu        *mtuFile // nil: no MTU file
}

var _ dpapi.Dataplane = (*Dataplane)(nil)

type options struct {
	netnsName   string
	runner      runner.Runner
	routeGrace  time.Duration
	noLinkWatch bool
	restores    int
}

// Option adjusts New.
type Option func(*options)

// WithNetNS makes the dataplane program the named network namespace
// (/var/run/netns/NAME) instead of the current one: tools are started,
// netlink goes through a handle opened there and sysctls are written
// from a thread inside it. For tests.
func WithNetNS(name string) Option { return func(o *options) { o.netnsName = name } }

// WithRunner replaces how kernel tools are executed (e.g. a
// runner.Recorder wrapping the default).
func WithRunner(r runner.Runner) Option { return func(o *options) { o.runner = r } }

// WithRouteCleanupGrace sets how long routes on an unknown workload
// interface survive (default 10s; negative: no grace).
func WithRouteCleanupGrace(d time.Duration) Option { return func(o *options) { o.routeGrace = d } }

// WithoutLinkWatch makes Run ignore netlink link notifications, so that
// only InterfaceRefreshInterval finds new interfaces. For tests.
func WithoutLinkWatch() Option { return func(o *options) { o.noLinkWatch = true } }

// WithIPSetRestores lets a large IP set update run as up to n `ipset
// restore` processes at once, each with a share of the sets (default, and
// any n below 2: one).
func WithIPSetRestores(n int) Option { return func(o *options) { o.restores = n } }

// DefaultRunner returns the runner New uses: direct exec, and when
// netnsName is set, started from a thread inside that network namespace
// (as "ip netns exec" would run them, without its extra process).
func DefaultRunner(netnsName string) *runner.Exec {
	if netnsName == "" {
		return &runner.Exec{}
	}
	return &runner.Exec{Within: func(start func() error) error {
		h, err := netns.GetFromName(netnsName)
		if err != nil {
			return fmt.Errorf("opening network namespace %s: %w", netnsName, err)
		}
		defer h.Close()
		return inNetNS(h, netnsName, start)
	}}
}

func withDefaults(c dpapi.Config) dpapi.Config {
	if len(c.InterfacePrefixes) == 0 {
		c.InterfacePrefixes = []string{"cali"}
	}
	if c.IptablesRefreshInterval == 0 {
		c.IptablesRefreshInterval = 90 * time.Second
	}
	if c.RouteRefreshInterval == 0 {
		c.RouteRefreshInterval = 90 * time.Second
	}
	if c.IPSetsRefreshInterval == 0 {
		c.IPSetsRefreshInterval = 10 * time.Second
	}
	if c.IptablesMarkMask == 0 {
		c.IptablesMarkMask = 0xffff0000
	}
	if c.VXLANVNI == 0 {
		c.VXLANVNI = 4096
	}
	if c.VXLANPort == 0 {
		c.VXLANPort = 4789
	}
	if c.RouteProtocol == 0 {
		c.RouteProtocol = 3
	}
	if c.IptablesBackend == "" {
		c.IptablesBackend = "auto"
	}
	if c.Log == nil {
		c.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return c
}

// New validates cfg and returns a Dataplane. It does not touch the kernel.
func New(cfg dpapi.Config, opts ...Option) (*Dataplane, error) {
	cfg = withDefaults(cfg)
	var o options
	for _, f := range opts {
		f(&o)
	}
	rc, err := rules.NewConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dataplane config: %w", err)
	}
	rc.Cache = &rules.ChainCache{}
	mtu, err := newMTUFile(cfg)
	if err != nil {
		return nil, fmt.Errorf("dataplane config: %w", err)
	}
	d := &Dataplane{
		mu:  make(ctxMutex, 1),
		mtu: mtu,
		cfg: cfg, rulesCfg: rc, log: cfg.Log.WithField("component", "dataplane"),
		routeCfg:     routeConfig(cfg),
		runner:       o.runner,
		inNetNS:      func(f func() error) error { return f() },
		iptMetrics:   iptables.NewMetrics(),
		ipsetMetrics: ipsets.NewMetrics(),
		routeMetrics: routes.NewMetrics(),
		applyTime: prometheus.NewSummary(prometheus.SummaryOpts{
			Name: "felix_int_dataplane_apply_time_seconds", Help: "Time in seconds that it took to apply a dataplane update.",
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felix_int_dataplane_failures", Help: "Number of times dataplane updates failed and will be retried."}),
		execTime: prometheus.NewSummary(prometheus.SummaryOpts{
			Name: "felix_exec_time_micros", Help: "Summary of time taken to fork/exec child processes",
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}}),
		ifaceBatch: prometheus.NewSummary(prometheus.SummaryOpts{
			Name:       "felix_int_dataplane_iface_msg_batch_size",
			Help:       "Number of interface state messages processed in each batch. Higher values indicate we're doing more batching to try to keep up.",
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}}),
		noLinkWatch: o.noLinkWatch,
	}
	if d.runner == nil {
		r := DefaultRunner(o.netnsName)
		r.Observe = func(_ string, took time.Duration) { d.execTime.Observe(float64(took.Microseconds())) }
		d.runner = r
	}
	if o.netnsName != "" {
		if err := d.openNetNS(o.netnsName); err != nil {
			return nil, err
		}
	} else {
		d.nl = &netlink.Handle{}
	}
	d.detected, d.detectDone = make(chan string, 1), make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	d.stopDetect = cancel
	go func() {
		defer close(d.detectDone)
		d.detected <- iptables.DetectBackend(ctx, d.runner, d.cfg.IptablesBackend, nil, d.log)
	}()
	d.ipsets = ipsets.New(ipsets.Config{Runner: d.runner, Log: d.log.WithField("manager", "ipsets"), Metrics: d.ipsetMetrics,
		MaxElem: cfg.MaxIPSetSize, Restores: o.restores})
	d.routes = routes.NewManager(routes.ManagerConfig{
		Config: d.routeCfg, Netlink: d.nl, InNetNS: d.inNetNS, CleanupGrace: o.routeGrace,
		Log: d.log.WithField("manager", "routes"), Metrics: d.routeMetrics,
	})
	return d, nil
}

func (d *Dataplane) openNetNS(name string) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		return fmt.Errorf("opening netlink in network namespace %s: %w", name, err)
	}
	d.nsh, d.nl = &h, nl
	d.inNetNS = func(f func() error) error { return inNetNS(h, name, f) }
	return nil
}

// inNetNS runs f on a thread of its own inside network namespace h (name
// is for errors); a process f starts is in h too.
func inNetNS(h netns.NsHandle, name string, f func() error) error {
	errCh := make(chan error, 1)
	go func() {
		// A dedicated thread: it is left locked (and so discarded) if
		// switching back fails.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errCh <- fmt.Errorf("reading current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errCh <- fmt.Errorf("entering network namespace %s: %w", name, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errCh <- errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", name, err))
			return
		}
		runtime.UnlockOSThread()
		errCh <- ferr
	}()
	return <-errCh
}

// Close stops the backend detection New started and releases the netlink
// and namespace handles; Apply then fails. The kernel state stays. Call it
// after Run has returned.
func (d *Dataplane) Close() error {
	d.stopDetect()
	<-d.detectDone
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.nsh != nil {
		d.nl.Close()
		d.nsh.Close()
		d.nsh = nil
	}
	return nil
}

// Collectors returns the dataplane's Prometheus collectors, unregistered.
func (d *Dataplane) Collectors() []prometheus.Collector {
	cs := []prometheus.Collector{d.applyTime, d.failures, d.execTime, d.ifaceBatch}
	cs = append(cs, d.iptMetrics.Collectors()...)
	cs = append(cs, d.ipsetMetrics.Collectors()...)
	return append(cs, d.routeMetrics.Collectors()...)
}

// IPIPStatus returns why the IPIP device could not be set up, or nil.
func (d *Dataplane) IPIPStatus() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.routes.IPIPStatus()
}

// Backend returns the iptables backend in use ("" before the first InSync Apply).
func (d *Dataplane) Backend() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.backend
}

// Apply implements dpapi.Dataplane. A State with InSync false is ignored,
// so the kernel is untouched until calc has the datastore's full snapshot
// and stays as it is during a datastore outage.
//
// When ctx ends, Apply kills the kernel tools it runs and returns ctx's
// error once route programming (netlink, quick) is done. iptables-restore
// commits whole tables or nothing, so no chain is left half written; the
// managers forget their view of the kernel, and the next Apply (or Run's
// retry) reads it back and completes the State.
func (d *Dataplane) Apply(ctx context.Context, s *dpapi.State) error {
	if s == nil || !s.InSync {
		return nil
	}
	if err := d.mu.lockCtx(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("dataplane closed")
	}
	d.last = s
	err := d.applyLocked(ctx)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// start picks the iptables backend, waiting for New's detection, and
// enables forwarding.
func (d *Dataplane) start(ctx context.Context) error {
	select {
	case d.backend = <-d.detected:
	case <-ctx.Done():
		return ctx.Err()
	}
	mk := func(v int) *iptables.Tables {
		return iptables.New(iptables.Config{IPVersion: v, Backend: d.backend, Runner: d.runner,
			Log: d.log.WithField("manager", "iptables"), Metrics: d.iptMetrics})
	}
	d.ipt4 = mk(4)
	if d.cfg.IPv6Support {
		d.ipt6 = mk(6)
	}
	d.started = true
	if d.cfg.IPForwardingDisabled {
		d.log.Info("IPForwarding is Disabled: leaving ip_forward as it is")
		return nil
	}
	// A Calico host routes for its workloads (Calico's IPForwarding=Enabled).
	fwd := []string{"/proc/sys/net/ipv4/ip_forward"}
	if d.cfg.IPv6Support {
		fwd = append(fwd, "/proc/sys/net/ipv6/conf/all/forwarding")
	}
	if err := d.inNetNS(func() error {
		var errs []error
		for _, p := range fwd {
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("enabling forwarding: %w", err))
			}
		}
		return errors.Join(errs...)
	}); err != nil {
		d.log.WithError(err).Warn("cannot enable IP forwarding")
	}
	return nil
}

// ctxMutex is a mutex whose Lock can give up when a context ends.
type ctxMutex chan struct{}

func (m ctxMutex) Lock()   { m <- struct{}{} }
func (m ctxMutex) Unlock() { <-m }

func (m ctxMutex) lockCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// applyTimeout bounds one Apply, so a wedged tool cannot stall felix.
const applyTimeout = 2 * time.Minute

func (d *Dataplane) applyLocked(ctx context.Context) (err error) {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	s := d.last
	begin := time.Now()
	defer func() {
		d.applyTime.Observe(time.Since(begin).Seconds())
		d.failed = err != nil
		if err != nil {
			d.failures.Inc()
		}
	}()
	if !d.started {
		if err := d.start(ctx); err != nil {
			return err
		}
	}

	// The steps run in turn: overlapping them (routes alongside the rest,
	// kernel reads alongside rendering and IP set writes) made
	// BenchmarkFelixEndToEnd under 10% faster. Routes come last, so a new
	// workload is reachable only once its rules are in place; they are
	// programmed even if the rules failed.
	rulesErr := d.applyRulesAndSets(ctx, s)
	routesErr := d.routes.Apply(routes.Compute(s, d.routeCfg))
	d.mtu.update(d.nl, s, d.cfg)
	return errors.Join(rulesErr, routesErr)
}

// applyRulesAndSets writes the IP sets and iptables, in the one order
// that is safe: sets exist before the rules that use them, and go only
// once no rule does.
func (d *Dataplane) applyRulesAndSets(ctx context.Context, s *dpapi.State) error {
	heps := rules.HostEndpointsByIface(s, d.resolveHostEndpoint)
	for iface := range heps {
		if iface != "*" && d.excluded(iface) {
			delete(heps, iface) // InterfaceExclude: never a host endpoint interface
		}
	}
	out4 := rules.Render(s, &d.rulesCfg, 4, heps, d.log)
	sets := d.setConv.FromState(s, 4)
	addReferencedSets(sets, out4.IPSets, 4, &d.setConv)
	addExternalNodes(sets, d.cfg.ExternalNodes, 4)
	var out6 *rules.Output
	if d.ipt6 != nil {
		out6 = rules.Render(s, &d.rulesCfg, 6, heps, d.log)
		for name, set := range d.setConv.FromState(s, 6) {
			sets[name] = set
		}
		addReferencedSets(sets, out6.IPSets, 6, &d.setConv)
		addExternalNodes(sets, d.cfg.ExternalNodes, 6)
	}
	if err := d.ipsets.ApplyUpdates(ctx, sets); err != nil {
		return err
	}
	if err := d.ipt4.Apply(ctx, out4.Tables); err != nil {
		return err
	}
	if d.ipt6 != nil {
		if err := d.ipt6.Apply(ctx, out6.Tables); err != nil {
			return err
		}
	}
	if err := d.ipsets.ApplyDeletions(ctx); err != nil {
		d.log.WithError(err).Warn("stale IP sets remain")
	}
	return nil
}

// addReferencedSets adds an empty set for each set the rules use that the
// State did not provide, so iptables-restore never meets a missing set.
func addReferencedSets(sets map[string]*ipsets.Set, refs map[string]string, ipVersion int, conv *ipsets.Converter) {
	fam := "inet"
	if ipVersion == 6 {
		fam = "inet6"
	}
	for id, typ := range refs {
		name := conv.NameOf(ipVersion, id)
		if sets[name] == nil {
			sets[name] = &ipsets.Set{Name: name, Type: typ, Family: fam, Members: map[string]struct{}{}}
		}
	}
}

// addExternalNodes adds ExternalNodesCIDRList to the all-hosts set, so
// that IPIP and VXLAN packets from those hosts are accepted. The set is
// the converter's fresh one, safe to change.
func addExternalNodes(sets map[string]*ipsets.Set, nodes []netip.Prefix, ipVersion int) {
	hosts := sets[ipsets.Name(ipVersion, ipsets.AllHostsID)]
	if hosts == nil {
		return
	}
	for _, p := range nodes {
		if p.IsValid() && p.Addr().Is4() == (ipVersion == 4) {
			for _, m := range ipsets.CanonicalMembers(ipsets.TypeNet, ipVersion, p.Masked().String()) {
				hosts.Members[m] = struct{}{}
			}
		}
	}
}

// routeConfig is what the routes manager needs from cfg.
func routeConfig(cfg dpapi.Config) routes.Config {
	rc := routes.Config{
		Hostname: cfg.Hostname, InterfacePrefixes: cfg.InterfacePrefixes, IPv6: cfg.IPv6Support,
		VXLANVNI: cfg.VXLANVNI, VXLANPort: cfg.VXLANPort, VXLANMTU: cfg.VXLANMTU, VXLANMTUV6: cfg.VXLANMTUV6, IPIPMTU: cfg.IPIPMTU,
		RouteProtocol:      cfg.RouteProtocol,
		RouteWorkloadIPs:   strings.EqualFold(cfg.RouteSource, "WorkloadIPs"),
		VXLANEnabled:       cfg.VXLANEnabled,
		IPIPEnabled:        cfg.IPIPEnabled,
		KeepExternalRoutes: cfg.KeepExternalRoutes,
	}
	rc.WorkloadRouteSrc4, _ = netip.ParseAddr(cfg.DeviceRouteSourceAddress)
	rc.WorkloadRouteSrc6, _ = netip.ParseAddr(cfg.DeviceRouteSourceAddressV6)
	rc.TidyTable4, rc.TidyTable6 = wireguardTables(cfg.RouteTableRanges)
	return rc
}

// wireguardTables are the first two indices of ranges (default 1-250):
// the route tables Calico gives its IPv4 and IPv6 WireGuard.
func wireguardTables(ranges []dpapi.TableRange) (v4, v6 int) {
	if len(ranges) == 0 {
		ranges = []dpapi.TableRange{{Min: 1, Max: 250}}
	}
	var got []int
	for _, r := range ranges {
		for i := r.Min; i <= r.Max && len(got) < 2; i++ {
			if i >= 253 && i <= 255 || i <= 0 {
				continue // the kernel's tables
			}
			got = append(got, i)
		}
	}
	got = append(got, 0, 0)
	return got[0], got[1]
}

// resolveHostEndpoint returns the interfaces holding any of ips, but
// none of those InterfaceExclude names.
func (d *Dataplane) resolveHostEndpoint(ips []netip.Addr) []string {
	if len(ips) == 0 {
		return nil
	}
	addrs, err := routes.NewKernel(d.nl).AddrList(nil, netlink.FAMILY_ALL) // retried if interrupted
	if err != nil {
		d.log.WithError(err).Warn("cannot list addresses to place host endpoints")
		return nil
	}
	want := map[netip.Addr]bool{}
	for _, ip := range ips {
		want[ip.Unmap()] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		ip, ok := netaddr.Addr(a.IP)
		if !ok || !want[ip] {
			continue
		}
		l, err := d.nl.LinkByIndex(a.LinkIndex)
		if err != nil || seen[l.Attrs().Name] || d.excluded(l.Attrs().Name) {
			continue
		}
		seen[l.Attrs().Name] = true
		out = append(out, l.Attrs().Name)
	}
	return out
}

// excluded reports whether InterfaceExclude names iface.
func (d *Dataplane) excluded(iface string) bool {
	for _, re := range d.cfg.InterfaceExclude {
		if re != nil && re.MatchString(iface) {
			return true
		}
	}
	return false
}
