package fvtest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/libcalico/model"
)

const workloadsPerIteration = 200

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkWorkloadRoutePropagation measures, for 200 workload routes per
// iteration, the time from felix's route appearing on host A to bgpd's
// route appearing on host C (and the same for removal). The addresses are
// borrowed (outside A's blocks), so each is advertised as its own /32.
func BenchmarkWorkloadRoutePropagation(b *testing.B) {
	l := newLab(b, false)
	ha := l.addHost("h1", "a", "172.31.255.11")
	hb := l.addHost("h2", "a", "172.31.255.12")
	hc := l.addHost("h3", "a", "172.31.255.13")
	l.create(ipPool("pool", "10.65.0.0/16"))
	for i, h := range l.hosts {
		l.affinity(h.name, fmt.Sprintf("10.65.%d.0/26", i+1))
	}
	for _, h := range l.hosts {
		h.start()
	}
	mesh := bgpstatus.PeerTypeMesh
	ha.waitEstablished(b, 30*time.Second, map[string]string{"172.31.255.12": mesh, "172.31.255.13": mesh})
	hc.waitEstablished(b, 30*time.Second, map[string]string{"172.31.255.11": mesh, "172.31.255.12": mesh})
	_ = hb
	sh(b, ha.ns, "ip link add calibench type veth peer name calibenchp")
	sh(b, ha.ns, "ip link set calibench up")
	sh(b, ha.ns, "ip link set calibenchp up")
	na := netlinkOf(b, ha)
	link, err := na.LinkByName("calibench")
	if err != nil {
		b.Fatal(err)
	}
	updates := make(chan netlink.RouteUpdate, 4096)
	done := make(chan struct{})
	defer close(done)
	nsh := netns.NsHandle(int(hc.ns.Fd()))
	if err := netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{Namespace: &nsh}); err != nil {
		b.Fatal(err)
	}
	// await waits for C's notification about dst (added or removed).
	await := func(dst netip.Prefix, added bool) error {
		timeout := time.After(10 * time.Second)
		for {
			select {
			case u := <-updates:
				if u.Route.Dst == nil || u.Route.Protocol != 12 {
					continue
				}
				ones, _ := u.Route.Dst.Mask.Size()
				a, _ := netip.AddrFromSlice(u.Route.Dst.IP)
				if netip.PrefixFrom(a.Unmap(), ones) == dst && (u.Type == unix.RTM_NEWROUTE) == added {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("%s never %s on %s", dst, map[bool]string{true: "appeared", false: "disappeared"}[added], hc.name)
			}
		}
	}
	route := func(i int) *netlink.Route {
		return &netlink.Route{
			Dst:       &net.IPNet{IP: net.IPv4(10, 65, 200, byte(i)), Mask: net.CIDRMask(32, 32)},
			LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK, Protocol: 3,
		}
	}
	var adds, dels []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range workloadsPerIteration {
			start := time.Now()
			if err := na.RouteAdd(route(i)); err != nil {
				b.Fatal(err)
			}
			if err := await(netip.MustParsePrefix(fmt.Sprintf("10.65.200.%d/32", i)), true); err != nil {
				b.Fatal(err)
			}
			adds = append(adds, time.Since(start))
		}
		for i := range workloadsPerIteration {
			start := time.Now()
			if err := na.RouteDel(route(i)); err != nil {
				b.Fatal(err)
			}
			if err := await(netip.MustParsePrefix(fmt.Sprintf("10.65.200.%d/32", i)), false); err != nil {
				b.Fatal(err)
			}
			dels = append(dels, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(adds)
	slices.Sort(dels)
	b.ReportMetric(ms(percentile(adds, 0.50)), "add-p50-ms")
	b.ReportMetric(ms(percentile(adds, 0.99)), "add-p99-ms")
	b.ReportMetric(ms(percentile(dels, 0.50)), "del-p50-ms")
	b.ReportMetric(ms(percentile(dels, 0.99)), "del-p99-ms")
	b.Logf("%d workload routes A->C: add p50 %v p99 %v max %v; delete p50 %v p99 %v (goal p99 <= 50ms)",
		len(adds), percentile(adds, 0.5), percentile(adds, 0.99), adds[len(adds)-1], percentile(dels, 0.5), percentile(dels, 0.99))
}

// BenchmarkMeshColdStart measures a 10-host node-to-node mesh from
// starting every confd and bgpd at once to every host having a route to
// every other host's block.
func BenchmarkMeshColdStart(b *testing.B) {
	const hosts = 10
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		l := newLab(b, false)
		l.create(ipPool("pool", "10.65.0.0/16"))
		var nls []*netlink.Handle
		for i := range hosts {
			h := l.addHost(fmt.Sprintf("h%d", i+1), "a", fmt.Sprintf("172.31.255.%d", 11+i))
			l.affinity(h.name, fmt.Sprintf("10.65.%d.0/26", i+1))
			nls = append(nls, netlinkOf(b, h))
		}
		b.StartTimer()
		start := time.Now()
		for _, h := range l.hosts {
			h.start()
		}
		waitFor(b, 60*time.Second, "full mesh convergence", func() error {
			for i, nh := range nls {
				for j := range hosts {
					if j != i && !hasRoute(nh, netip.MustParsePrefix(fmt.Sprintf("10.65.%d.0/26", j+1))) {
						return fmt.Errorf("h%d has no route to h%d's block", i+1, j+1)
					}
				}
			}
			return nil
		})
		total += time.Since(start)
		b.StopTimer()
		l.teardown()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/converge")
	b.Logf("%d-host mesh converged in %v (mean of %d)", hosts, total/time.Duration(b.N), b.N)
}

// BenchmarkBGPFilterEditToPeer measures a BGPFilter edit until the peer
// (BIRD as a ToR) applied it: an export rule for h1's block added (the
// route leaves BIRD's kernel) or removed (it comes back), 20 edits per
// iteration. The lower bound is the same trip for a change that needs no
// policy: a block affinity of h1 created or deleted (etcd, confd, bgpd,
// BGP, BIRD, BIRD's kernel), interleaved with the edits. Every session
// stays up throughout: a reset would fail the benchmark.
func BenchmarkBGPFilterEditToPeer(b *testing.B) {
	const edits = 20
	edit, bound := filterEditRounds(b, b.N*edits, b.ResetTimer)
	b.StopTimer()
	slices.Sort(edit)
	slices.Sort(bound)
	b.ReportMetric(ms(percentile(edit, 0.50)), "edit-p50-ms")
	b.ReportMetric(ms(percentile(edit, 0.99)), "edit-p99-ms")
	b.ReportMetric(ms(percentile(bound, 0.50)), "bound-p50-ms")
	b.ReportMetric(float64(percentile(edit, 0.50))/float64(percentile(bound, 0.50)), "p50-over-bound-ratio(goal<=1.5)")
	b.Logf("%d BGPFilter edits applied on BIRD: p50 %v p99 %v; block affinity changes (bound) p50 %v; sessions unchanged",
		len(edit), percentile(edit, 0.5), percentile(edit, 0.99), percentile(bound, 0.5))
}

// filterEditRounds runs n filter edits and n affinity changes, calling
// ready once the lab is up, and checks that no session was reset.
func filterEditRounds(b testing.TB, n int, ready func()) (edit, bound []time.Duration) {
	l := newLab(b, false)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	torNS := l.newNS()
	l.plug(torNS, "eth0", "br0", "172.31.255.2/24")
	tor := l.startBird("tor", torNS, torBirdConfig("h1=172.31.255.11"))
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	filter := v3.NewBGPFilter()
	filter.Name = "tor"
	filter.Spec.ExportV4 = []v3.BGPFilterRuleV4{{Action: v3.BGPFilterActionReject, MatchOperator: v3.MatchOperatorIn, CIDR: "10.65.9.0/24"}}
	peer := v3.NewBGPPeer()
	peer.Name = "tor"
	peer.Spec.PeerIP = "172.31.255.2"
	peer.Spec.ASNumber = 65001
	peer.Spec.Filters = []string{"tor"}
	l.create(filter, peer)
	h1.start()
	h1.waitEstablished(b, 30*time.Second, map[string]string{"172.31.255.2": bgpstatus.PeerTypeGlobal})
	tor.waitEstablished(b, 30*time.Second, "h1")
	tor.waitRoute(b, "10.65.1.0/26", true)

	updates := make(chan netlink.RouteUpdate, 4096)
	done := make(chan struct{})
	defer close(done)
	nsh := netns.NsHandle(int(torNS.Fd()))
	if err := netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{Namespace: &nsh}); err != nil {
		b.Fatal(err)
	}
	// await waits for BIRD's kernel route to dst to appear or go.
	await := func(dst netip.Prefix, added bool) error {
		timeout := time.After(20 * time.Second)
		for {
			select {
			case u := <-updates:
				if u.Route.Dst == nil || u.Route.Protocol != 12 {
					continue
				}
				ones, _ := u.Route.Dst.Mask.Size()
				a, _ := netip.AddrFromSlice(u.Route.Dst.IP)
				if netip.PrefixFrom(a.Unmap(), ones) == dst && (u.Type == unix.RTM_NEWROUTE) == added {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("%s never %s in BIRD's kernel", dst, map[bool]string{true: "appeared", false: "went"}[added])
			}
		}
	}
	ctx := context.Background()
	block, extra := netip.MustParsePrefix("10.65.1.0/26"), netip.MustParsePrefix("10.65.3.0/26")
	reject := v3.BGPFilterRuleV4{Action: v3.BGPFilterActionReject, MatchOperator: v3.MatchOperatorEqual, CIDR: block.String()}
	before := sessionSince(b, tor, h1)
	ready()
	for i := range n {
		rejecting := i%2 == 0
		start := time.Now()
		editFilter(b, l, "tor", func(f *v3.BGPFilter) {
			f.Spec.ExportV4 = f.Spec.ExportV4[:1]
			if rejecting {
				f.Spec.ExportV4 = append(f.Spec.ExportV4, reject)
			}
		})
		if err := await(block, !rejecting); err != nil {
			b.Fatal(err)
		}
		edit = append(edit, time.Since(start))

		start = time.Now()
		key := model.BlockAffinityKey{Host: "h1", CIDR: extra}
		if i%2 == 0 {
			l.affinity("h1", extra.String())
		} else if _, err := l.c.Backend().Delete(ctx, key, 0); err != nil {
			b.Fatal(err)
		}
		if err := await(extra, i%2 == 0); err != nil {
			b.Fatal(err)
		}
		bound = append(bound, time.Since(start))
	}
	if after := sessionSince(b, tor, h1); !maps.Equal(before, after) {
		b.Fatalf("sessions were reset by filter edits:\nbefore %v\nafter  %v", before, after)
	}
	return edit, bound
}
