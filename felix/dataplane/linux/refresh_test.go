package linux

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dataplane/runner"
	"github.com/calico-etcd/calico/felix/dpapi"
)

// ourLines keeps the iptables-save lines that mention cali.
func ourLines(save string) string {
	var b strings.Builder
	for _, l := range strings.Split(save, "\n") {
		if strings.Contains(l, "cali") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// Changes made behind felix's back to its chains, hooks, IP sets and routes
// are repaired by the periodic refreshes.
func TestKernelRefreshRepairsChangesBehindItsBack(t *testing.T) {
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) { testRefreshRepairs(t, backend) })
	}
}

func testRefreshRepairs(t *testing.T, backend string) {
	h := newHost(t, dpapi.Config{
		IptablesBackend:         backend,
		IptablesRefreshInterval: 200 * time.Millisecond,
		IPSetsRefreshInterval:   200 * time.Millisecond,
		RouteRefreshInterval:    200 * time.Millisecond,
	})
	w1 := addWorkload(t, h.ns, "calia1", "10.65.0.2", "")
	w2 := addWorkload(t, h.ns, "calib2", "10.65.0.3", "")
	s := baseState(w1.endpoint("allow-all"), w2.endpoint("allow-all"))
	s.Pools["pool1"].NATOutgoing = true
	must(t, h.dp.Apply(t.Context(), s))
	want := ourLines(h.save(t, 4))
	wantSets, err := h.ns.Output("ipset", "save", "cali40masq-ipam-pools")
	must(t, err)

	ipt := "iptables-" + h.dp.Backend()
	must(t, h.ns.Exec(ipt, "-D", "FORWARD", "1"))                               // our hook
	must(t, h.ns.Exec(ipt, "-I", "INPUT", "1", "-j", "ACCEPT"))                 // someone else's rule above ours
	must(t, h.ns.Exec(ipt, "-I", "cali-tw-calib2", "1", "-j", "ACCEPT"))        // a rule in our chain
	must(t, h.ns.Exec(ipt, "-F", "cali-pri-allow-all"))                         // a flushed chain
	must(t, h.ns.Exec("ipset", "del", "cali40masq-ipam-pools", "10.65.0.0/16")) // a set member
	must(t, h.ns.Exec("ipset", "add", "cali40all-ipam-pools", "10.99.0.0/16"))  // a stray member
	must(t, h.ns.Exec("ip", "route", "del", "10.65.0.3/32"))                    // a workload route
	if ourLines(h.save(t, 4)) == want {
		t.Fatal("tampering did not change anything")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.dp.Run(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, 5*time.Second, "iptables repaired", func() bool { return ourLines(h.save(t, 4)) == want })
	out, err := h.ns.Output(ipt, "-S", "INPUT")
	must(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "cali-INPUT") || lines[2] != "-A INPUT -j ACCEPT" {
		t.Fatalf("our INPUT hook is not back on top:\n%s", out)
	}
	eventually(t, 5*time.Second, "IP sets repaired", func() bool {
		a, _ := h.ns.Output("ipset", "save", "cali40masq-ipam-pools")
		b, _ := h.ns.Output("ipset", "list", "cali40all-ipam-pools")
		return a == wantSets && !strings.Contains(b, "10.99.0.0/16")
	})
	eventually(t, 5*time.Second, "route repaired", func() bool {
		out, _ := h.ns.Output("ip", "route", "show", "10.65.0.3/32")
		return strings.Contains(out, "calib2")
	})
}

// Cali chains, hooks, sets and routes left by a previous run but not in the
// desired state are removed by the first InSync Apply.
func TestKernelFirstApplyRemovesStaleState(t *testing.T) {
	ns := newHostNS(t)
	w1 := addWorkload(t, ns, "calia1", "10.65.0.2", "")
	stale := addWorkload(t, ns, "calistale", "10.65.0.9", "")
	_ = stale
	for _, c := range [][]string{
		{"iptables-nft", "-N", "cali-stale"},
		{"iptables-nft", "-A", "cali-stale", "-j", "ACCEPT"},
		{"iptables-nft", "-A", "INPUT", "-j", "cali-stale"}, // an old hook without a hash
		{"iptables-nft", "-t", "nat", "-N", "cali-old-nat"},
		{"ipset", "create", "cali40s:staleselectorset0000000", "hash:net"},
		{"ipset", "create", "unrelated-set", "hash:net"},
		{"ip", "route", "add", "10.65.0.9/32", "dev", "calistale", "scope", "link", "proto", "boot"},
		{"ip", "route", "add", "10.65.0.77/32", "dev", "calia1", "scope", "link", "proto", "boot"},
		{"ip", "route", "add", "blackhole", "10.65.5.0/26", "proto", "boot"},           // e.g. bgpd's: not ours
		{"ip", "route", "add", "10.65.6.0/26", "via", "192.168.90.7", "proto", "80"},   // a stale CrossSubnet route
		{"ip", "route", "add", "10.65.7.0/26", "via", "192.168.90.7", "proto", "boot"}, // an operator's static route: not ours
	} {
		must(t, ns.Exec(c[0], c[1:]...))
	}
	h := attach(t, ns, dpapi.Config{IptablesBackend: "nft"}, WithRouteCleanupGrace(-1))
	must(t, h.dp.Apply(t.Context(), baseState(w1.endpoint("allow-all"))))

	sv := h.save(t, 4)
	for _, gone := range []string{"cali-stale", "cali-old-nat"} {
		if strings.Contains(sv, gone) {
			t.Errorf("stale chain %s still present:\n%s", gone, sv)
		}
	}
	if !strings.Contains(sv, "cali-tw-calia1") {
		t.Errorf("desired chains missing:\n%s", sv)
	}
	sets, err := h.ns.Output("ipset", "list", "-n")
	must(t, err)
	if strings.Contains(sets, "cali40s:stale") || !strings.Contains(sets, "unrelated-set") || !strings.Contains(sets, "cali40all-ipam-pools") {
		t.Errorf("IP sets after cleanup:\n%s", sets)
	}
	routes, err := h.ns.Output("ip", "route")
	must(t, err)
	if strings.Contains(routes, "10.65.0.9") || strings.Contains(routes, "10.65.0.77") || strings.Contains(routes, "10.65.6.0") ||
		!strings.Contains(routes, "10.65.0.2 dev calia1") || !strings.Contains(routes, "blackhole 10.65.5.0/26") ||
		!strings.Contains(routes, "10.65.7.0/26 via 192.168.90.7") {
		t.Errorf("routes after cleanup:\n%s", routes)
	}
}

// States that are not InSync never touch the kernel.
func TestKernelNotInSyncLeavesKernelAlone(t *testing.T) {
	h := newHost(t, dpapi.Config{})
	w1 := addWorkload(t, h.ns, "calia1", "10.65.0.2", "")
	before, err := h.ns.Output("sh", "-c", "iptables-nft-save; iptables-legacy-save; ipset save; ip route; ip neigh")
	must(t, err)
	s := baseState(w1.endpoint("allow-all"))
	s.InSync = false
	must(t, h.dp.Apply(t.Context(), s))
	if calls := beyondDetection(h.rec.Calls()); len(calls) != 0 {
		t.Fatalf("ran %d commands for a state that is not in sync: %v", len(calls), calls[0].Name)
	}
	after, err := h.ns.Output("sh", "-c", "iptables-nft-save; iptables-legacy-save; ipset save; ip route; ip neigh")
	must(t, err)
	if stripDates(before) != stripDates(after) {
		t.Fatalf("kernel changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Refreshes do nothing before the first InSync state either.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	must(t, h.dp.Run(ctx))
	if calls := beyondDetection(h.rec.Calls()); len(calls) != 0 {
		t.Fatalf("Run touched the kernel before InSync: %v", calls[0].Name)
	}
}

// beyondDetection drops the iptables backend detection's reads (New
// starts it) from calls.
func beyondDetection(calls []runner.Call) []runner.Call {
	var out []runner.Call
	for _, c := range calls {
		if !strings.HasSuffix(c.Name, "-save") && !(c.Name == "iptables" && slices.Equal(c.Args, []string{"-V"})) {
			out = append(out, c)
		}
	}
	return out
}

func stripDates(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// A workload whose interface appears after the Apply gets its route as
// soon as the interface shows up, without waiting for a refresh.
func TestKernelProgramsRoutesWhenInterfaceAppears(t *testing.T) {
	h := newHost(t, dpapi.Config{RouteRefreshInterval: time.Hour})
	ep := &dpapi.Workload{ID: "ns/late", Iface: "calilate", Profiles: []string{"allow-all"}}
	ep.IPv4 = append(ep.IPv4, mustPrefix("10.65.0.5/32"))
	must(t, h.dp.Apply(t.Context(), baseState(ep)))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.dp.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // let the watch start

	addWorkload(t, h.ns, "calilate", "10.65.0.5", "")
	eventually(t, 5*time.Second, "route for the new interface", func() bool {
		out, _ := h.ns.Output("ip", "route", "show", "10.65.0.5/32")
		return strings.Contains(out, "calilate")
	})
	eventually(t, 5*time.Second, "sysctls for the new interface", func() bool {
		out, _ := h.ns.Output("cat", "/proc/sys/net/ipv4/conf/calilate/proxy_arp")
		return strings.TrimSpace(out) == "1"
	})
}
