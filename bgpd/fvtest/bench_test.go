package fvtest

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/calico-etcd/calico/libcalico/bgpstatus"
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
