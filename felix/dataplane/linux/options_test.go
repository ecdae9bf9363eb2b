package linux

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dpapi"
)

// ChainInsertMode append puts felix's jumps after the operator's own rules
// in the kernel's chains, so those rules keep deciding first: an ACCEPT in
// FORWARD lets a client reach a workload its policy denies, and a DROP in
// INPUT blocks a port felix's failsafes would open. In insert mode felix
// decides first.
func TestKernelChainInsertMode(t *testing.T) {
	for _, mode := range []string{"insert", "append"} {
		t.Run(mode, func(t *testing.T) {
			ns := newHostNS(t)
			c := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
			w.listen(t, 8080)
			listenIn(t, ns, 9090)
			// The operator's rules, in place before felix starts.
			must(t, ns.Exec("iptables-nft", "-A", "INPUT", "-i", "eth1", "-p", "tcp", "--dport", "9090", "-j", "DROP"))
			must(t, ns.Exec("iptables-nft", "-A", "FORWARD", "-i", "eth1", "-o", "calia1", "-p", "tcp", "--dport", "8080", "-j", "ACCEPT"))

			h := attach(t, ns, dpapi.Config{IptablesBackend: "nft", ChainInsertMode: mode,
				FailsafeInbound: []dpapi.ProtoPort{{Protocol: "tcp", Port: 9090}}})
			s := baseState(w.endpoint()) // no profile: the workload's policy denies everything
			s.HostEndpoints["host1-eth1"] = &dpapi.HostEndpoint{Name: "host1-eth1", Iface: "eth1"}
			must(t, h.dp.Apply(t.Context(), s))

			sv := h.save(t, 4)
			operatorFirst := strings.Index(sv, "-A INPUT -i eth1") < strings.Index(sv, "-j cali-INPUT") &&
				strings.Index(sv, "-A FORWARD -i eth1") < strings.Index(sv, "-j cali-FORWARD")
			if operatorFirst != (mode == "append") {
				t.Errorf("operator's rules first: %v in %s mode:\n%s", operatorFirst, mode, sv)
			}
			toWorkload := dial(c.ns, "10.65.0.2", 8080) == nil
			toHost := dial(c.ns, "192.168.91.1", 9090) == nil
			if mode == "append" && (!toWorkload || toHost) {
				t.Errorf("append: operator's ACCEPT to the workload worked %v (want true), DROP to the host port let through %v (want false)\n%s",
					toWorkload, toHost, h.diag(t))
			}
			if mode == "insert" && (toWorkload || !toHost) {
				t.Errorf("insert: denied workload reached %v (want false), failsafe port reached %v (want true)\n%s", toWorkload, toHost, h.diag(t))
			}
			// A second Apply leaves the hooks where they are.
			before := len(restoreInputs(h.rec))
			must(t, h.dp.Apply(t.Context(), s))
			if n := len(restoreInputs(h.rec)); n != before {
				t.Errorf("second Apply rewrote the hooks:\n%s", strings.Join(restoreInputs(h.rec)[before:], "\n"))
			}
		})
	}
}

// IptablesFilterAllowAction and IptablesMangleAllowAction RETURN hand
// allowed packets back to the kernel's chains, where a later rule of the
// operator's still applies; ACCEPT ends the chain.
func TestKernelAllowActions(t *testing.T) {
	for _, tc := range []struct {
		filter, mangle string
		filterPort     bool // the port the filter table allows is reachable
		manglePort     bool // the port a pre-DNAT policy allows is reachable
	}{
		{"ACCEPT", "ACCEPT", true, true},
		{"RETURN", "ACCEPT", false, true},
		{"ACCEPT", "RETURN", true, false},
	} {
		t.Run(tc.filter+"-"+tc.mangle, func(t *testing.T) {
			ns := newHostNS(t)
			c := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			listenIn(t, ns, 8080)
			listenIn(t, ns, 8081)
			h := attach(t, ns, dpapi.Config{IptablesBackend: "nft", FilterAllowAction: tc.filter, MangleAllowAction: tc.mangle})
			s := baseState()
			normal := dpapi.PolicyID{Tier: "default", Name: "allow-8080"}
			pre := dpapi.PolicyID{Tier: "default", Name: "prednat-8081"}
			s.Policies[normal] = &dpapi.Policy{Inbound: []dpapi.Rule{{Action: dpapi.Allow, Protocol: "tcp", DstPorts: []dpapi.PortRange{{Min: 8080, Max: 8080}}}}}
			s.Policies[pre] = &dpapi.Policy{PreDNAT: true, ApplyOnForward: true,
				Inbound: []dpapi.Rule{{Action: dpapi.Allow, Protocol: "tcp", DstPorts: []dpapi.PortRange{{Min: 8081, Max: 8081}}}}}
			s.HostEndpoints["host1-eth1"] = &dpapi.HostEndpoint{Name: "host1-eth1", Iface: "eth1",
				Tiers:        []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{normal}}},
				PreDNATTiers: []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{pre}}}}
			must(t, h.dp.Apply(t.Context(), s))
			// The operator's rules, after felix's jumps.
			must(t, ns.Exec("iptables-nft", "-A", "INPUT", "-i", "eth1", "-p", "tcp", "--dport", "8080", "-j", "DROP"))
			must(t, ns.Exec("iptables-nft", "-t", "mangle", "-A", "PREROUTING", "-i", "eth1", "-p", "tcp", "--dport", "8081", "-j", "DROP"))

			if got := dial(c.ns, "192.168.91.1", 8080) == nil; got != tc.filterPort {
				t.Errorf("port 8080 (filter allow %s) reachable %v, want %v\n%s", tc.filter, got, tc.filterPort, h.diag(t))
			}
			if got := dial(c.ns, "192.168.91.1", 8081) == nil; got != tc.manglePort {
				t.Errorf("port 8081 (mangle allow %s) reachable %v, want %v\n%s", tc.mangle, got, tc.manglePort, h.diag(t))
			}
		})
	}
}

// IptablesFilterDenyAction REJECT answers denied connections (the client
// is refused at once); DROP leaves them unanswered.
func TestKernelFilterDenyAction(t *testing.T) {
	for _, action := range []string{"DROP", "REJECT"} {
		t.Run(action, func(t *testing.T) {
			ns := newHostNS(t)
			c := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
			w.listen(t, 8080)
			h := attach(t, ns, dpapi.Config{FilterDenyAction: action})
			must(t, h.dp.Apply(t.Context(), baseState(w.endpoint()))) // no profile: denied
			err := dial(c.ns, "10.65.0.2", 8080)
			if err == nil {
				t.Fatalf("denied connection succeeded\n%s", h.diag(t))
			}
			if refused(err) != (action == "REJECT") {
				t.Errorf("%s: dial error %v (refused %v)", action, err, refused(err))
			}
			if action == "REJECT" && !strings.Contains(h.save(t, 4), "Drop if no profiles matched\" -j REJECT") {
				t.Errorf("no REJECT at the end of the workload chain:\n%s", h.save(t, 4))
			}
		})
	}
}

// FloatingIPs Enabled programs a workload's ipNATs and traffic to the
// floating IP reaches it; felix restarted with FloatingIPs Disabled (the
// default) removes the DNAT and SNAT rules.
func TestKernelFloatingIPs(t *testing.T) {
	ns := newHostNS(t)
	c := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
	w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
	w.listen(t, 8080)
	ep := w.endpoint("allow-all")
	ep.NATs = []dpapi.NAT{{Internal: w.ip4, External: netip.MustParseAddr("172.16.0.2")}}
	s := baseState(ep)

	h := attach(t, ns, dpapi.Config{FloatingIPs: true})
	must(t, h.dp.Apply(t.Context(), s))
	if nat := h.natRules(t); !strings.Contains(nat, "-A cali-fip-dnat") || !strings.Contains(nat, "--to-destination 10.65.0.2") {
		t.Fatalf("no DNAT with FloatingIPs Enabled:\n%s", nat)
	}
	if err := dial(c.ns, "172.16.0.2", 8080); err != nil {
		t.Fatalf("floating IP unreachable: %v\n%s", err, h.diag(t))
	}

	h2 := attach(t, ns, dpapi.Config{}) // felix restarted with the default, Disabled
	must(t, h2.dp.Apply(t.Context(), s))
	if nat := h2.natRules(t); strings.Contains(nat, "-A cali-fip-dnat") || strings.Contains(nat, "-A cali-fip-snat") ||
		strings.Contains(nat, "172.16.0.2") {
		t.Fatalf("floating IP rules remain with FloatingIPs Disabled:\n%s", nat)
	}
	if err := dial(c.ns, "172.16.0.2", 8080); err == nil {
		t.Fatal("floating IP still reaches the workload with FloatingIPs Disabled")
	}
	if err := dial(c.ns, "10.65.0.2", 8080); err != nil {
		t.Fatalf("the workload itself became unreachable: %v", err)
	}
}

func (h *host) natRules(t testing.TB) string {
	t.Helper()
	out, err := h.ns.Output("iptables-"+h.dp.Backend()+"-save", "-t", "nat")
	must(t, err)
	return out
}

// ServiceLoopPrevention: forwarded traffic to an advertised service range
// that nothing local claims is dropped (Drop), refused (Reject) or routed
// on (Disabled) by cali-cidr-block.
func TestKernelServiceLoopPrevention(t *testing.T) {
	for _, mode := range []string{"Drop", "Reject", "Disabled"} {
		t.Run(mode, func(t *testing.T) {
			ns := newHostNS(t)
			c := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			// The uplink's router, so forwarded packets leave by eth0; an
			// operator rule counts them there.
			must(t, ns.Exec("ip", "neigh", "add", "192.168.90.254", "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "permanent"))
			h := attach(t, ns, dpapi.Config{IptablesBackend: "nft", ServiceLoopPrevention: mode})
			must(t, ns.Exec("iptables-nft", "-t", "mangle", "-A", "POSTROUTING", "-o", "eth0", "-d", "10.96.0.0/12"))
			s := baseState()
			s.ServiceCIDRs = []netip.Prefix{mustPrefix("10.96.0.0/12"), mustPrefix("fd00:96::/112")}
			must(t, h.dp.Apply(t.Context(), s))

			err := dial(c.ns, "10.96.0.10", 80)
			var block, leaked int
			eventuallyOK(3*time.Second, func() bool { // until the SYN is counted somewhere
				block = h.packets(t, "filter", "cali-cidr-block", "10.96.0.0/12")
				leaked = h.packets(t, "mangle", "POSTROUTING", "10.96.0.0/12")
				return block > 0 || leaked > 0
			})
			switch mode {
			case "Drop":
				if refused(err) || block <= 0 || leaked != 0 {
					t.Errorf("Drop: err %v, blocked %d, forwarded %d\n%s", err, block, leaked, h.diag(t))
				}
			case "Reject":
				if !refused(err) || block <= 0 || leaked != 0 {
					t.Errorf("Reject: err %v, blocked %d, forwarded %d\n%s", err, block, leaked, h.diag(t))
				}
			case "Disabled":
				if block != -1 || leaked <= 0 {
					t.Errorf("Disabled: cali-cidr-block rule counter %d (want none), forwarded %d\n%s", block, leaked, h.diag(t))
				}
			}
		})
	}
}

// InterfaceExclude: an interface it names is never a host endpoint's, even
// when it holds the endpoint's expected IP, so the endpoint's (default
// deny) policy does not apply there.
func TestKernelInterfaceExclude(t *testing.T) {
	for _, excluded := range []bool{true, false} {
		name := map[bool]string{true: "excluded", false: "not-excluded"}[excluded]
		t.Run(name, func(t *testing.T) {
			ns := newHostNS(t)
			c := addClient(t, ns, "kube-ipvs0", "192.168.92.1", "192.168.92.2")
			listenIn(t, ns, 8080)
			cfg := dpapi.Config{}
			if excluded {
				cfg.InterfaceExclude = []*regexp.Regexp{regexp.MustCompile(`^kube-ipvs0$`)}
			}
			h := attach(t, ns, cfg)
			s := baseState()
			s.HostEndpoints["host1-ipvs"] = &dpapi.HostEndpoint{Name: "host1-ipvs", Expected: []netip.Addr{netip.MustParseAddr("192.168.92.1")}}
			must(t, h.dp.Apply(t.Context(), s))
			chain := strings.Contains(h.save(t, 4), "cali-fh-kube-ipvs0")
			reached := dial(c.ns, "192.168.92.1", 8080) == nil
			if chain == excluded || reached != excluded {
				t.Errorf("host endpoint chain on kube-ipvs0 %v, port reachable %v\n%s", chain, reached, h.diag(t))
			}
		})
	}
}

// InterfaceRefreshInterval: with no link notifications at all, the
// periodic listing finds a workload interface that appeared after the
// Apply and programs its route.
func TestKernelInterfaceRefreshInterval(t *testing.T) {
	ns := newHostNS(t)
	h := attach(t, ns, dpapi.Config{InterfaceRefreshInterval: 200 * time.Millisecond, RouteRefreshInterval: time.Hour,
		IptablesRefreshInterval: time.Hour, IPSetsRefreshInterval: time.Hour}, WithoutLinkWatch())
	w := &workload{iface: "calia1", ip4: netip.MustParseAddr("10.65.0.2")}
	must(t, h.dp.Apply(t.Context(), baseState(w.endpoint("allow-all"))))
	if rt, _ := ns.Output("ip", "route"); strings.Contains(rt, "10.65.0.2") {
		t.Fatalf("route before the interface exists:\n%s", rt)
	}
	ctx, cancel := contextWithCancel(t)
	done := make(chan error, 1)
	go func() { done <- h.dp.Run(ctx) }()
	defer func() { cancel(); <-done }()

	addWorkload(t, ns, "calia1", "10.65.0.2", "")
	eventually(t, 10*time.Second, "the route to the new interface", func() bool {
		rt, _ := ns.Output("ip", "route", "show", "dev", "calia1")
		return strings.Contains(rt, "10.65.0.2")
	})
}

// Every non-default option renders rules iptables-restore and
// ip6tables-restore accept, on both backends.
func TestKernelNonDefaultOptionsAreAccepted(t *testing.T) {
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			h := newHost(t, dpapi.Config{IPv6Support: true, IptablesBackend: backend,
				ChainInsertMode: "append", FilterAllowAction: "RETURN", MangleAllowAction: "RETURN", FilterDenyAction: "REJECT",
				DisableConntrackInvalidCheck: true, AllowVXLANPacketsFromWorkloads: true, AllowIPIPPacketsFromWorkloads: true,
				WorkloadSourceSpoofing: true, FloatingIPs: true, ServiceLoopPrevention: "Reject",
				NATOutgoingExclusions: "IPPoolsAndHostIPs", NATPortMin: 32768, NATPortMax: 65535, NATOutgoingInterfaceFilter: "eth+",
				NATOutgoingAddress: "192.168.90.1", LogPrefix: "%k %t %p tail that is far too long"})
			s := richState()
			s.Pools["nat"] = &dpapi.Pool{Name: "nat", CIDR: mustPrefix("10.80.0.0/16"), NATOutgoing: true}
			s.ServiceCIDRs = []netip.Prefix{mustPrefix("10.96.0.0/12"), mustPrefix("fd00:96::/112")}
			for _, w := range s.Workloads {
				w.AllowSpoofedSourcePrefixes = []netip.Prefix{mustPrefix("10.99.0.0/24"), mustPrefix("fd00:99::/64")}
			}
			for _, p := range s.Policies {
				p.Inbound = append(p.Inbound, dpapi.Rule{Action: dpapi.Log, Annotations: []string{"team=net ops", "ticket=OPS-1"}},
					dpapi.Rule{Action: dpapi.Deny})
			}
			must(t, h.dp.Apply(t.Context(), s))
			v4, v6 := h.save(t, 4), h.save(t, 6)
			for _, want := range [][]string{{"-j REJECT"}, {"-j cali-cidr-block"}, {"-A cali-cidr-block", "-d 10.96.0.0/12", "-j REJECT"},
				{"-A cali-rpf-skip", "-s 10.99.0.0/24", "-j ACCEPT"}, {"--to-source 192.168.90.1:32768-65535"}, {"-o eth+", "-j SNAT"},
				{"team=net ops"}, {"--log-prefix \"gnp default "}} {
				if !hasRule(v4, want...) {
					t.Errorf("IPv4 ruleset lacks a rule with %q", want)
				}
			}
			for _, want := range [][]string{{"-A cali-cidr-block", "-d fd00:96::/112", "-j REJECT"}, {"--to-ports 32768-65535"},
				{"-A cali-rpf-skip", "-s fd00:99::/64", "-j ACCEPT"}} {
				if !hasRule(v6, want...) {
					t.Errorf("IPv6 ruleset lacks a rule with %q", want)
				}
			}
			if strings.Contains(v4, "ctstate INVALID") {
				t.Error("conntrack INVALID drop rendered with DisableConntrackInvalidCheck")
			}
			if t.Failed() {
				t.Logf("IPv4:\n%s\nIPv6:\n%s", v4, v6)
			}
			before := len(restoreInputs(h.rec))
			must(t, h.dp.Apply(t.Context(), s))
			if len(restoreInputs(h.rec)) != before {
				t.Error("a second Apply wrote again")
			}
		})
	}
}

// DefaultEndpointToHostAction: what happens to workload traffic to the
// host once its egress policy allowed it: Drop, Accept, or Return to the
// INPUT chain, where a later rule of the operator's still applies.
func TestKernelDefaultEndpointToHostAction(t *testing.T) {
	for _, tc := range []struct {
		action  string
		reaches bool
	}{{"Drop", false}, {"Accept", true}, {"Return", false}} {
		t.Run(tc.action, func(t *testing.T) {
			ns := newHostNS(t)
			w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
			listenIn(t, ns, 8080)
			h := attach(t, ns, dpapi.Config{IptablesBackend: "nft", DefaultEndpointToHostAction: tc.action})
			must(t, h.dp.Apply(t.Context(), baseState(w.endpoint("allow-all"))))
			must(t, ns.Exec("iptables-nft", "-A", "INPUT", "-i", "cali+", "-p", "tcp", "--dport", "8080", "-j", "DROP"))
			if got := w.canConnect(t, netip.MustParseAddr("192.168.90.1"), 8080); got != tc.reaches {
				t.Errorf("%s: workload reached the host %v, want %v\n%s", tc.action, got, tc.reaches, h.diag(t))
			}
		})
	}
}
