package fvtest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// EnvBGPScaleHosts sets the hosts of BenchmarkBGPScale (default 50).
const EnvBGPScaleHosts = "CALICO_BENCH_BGP_HOSTS"

// BenchmarkBGPScale runs 50 hosts (confd and bgpd each, one block each)
// in a node-to-node mesh, and again with two route reflectors (h1 and
// h2, one cluster ID, peered with each other; every other host their
// client through one BGPPeer). For each topology:
//
//   - converge-s: from starting every host's daemons at once until every
//     host has a route to every other host's block;
//   - restart-s: h3's confd and bgpd stopped (SIGTERM) and started again,
//     from the start until h3 has every session Established and every
//     route again (its peers keep its routes meanwhile: graceful restart);
//   - host-rss-MB: confd's and bgpd's memory (VmRSS) per host, the mean
//     and the largest (a reflector's, or any mesh member's).
func BenchmarkBGPScale(b *testing.B) {
	hosts := 50
	if v := os.Getenv(EnvBGPScaleHosts); v != "" {
		var err error
		if hosts, err = strconv.Atoi(v); err != nil || hosts < 3 || hosts > 200 {
			b.Fatalf("%s=%q: want 3 to 200", EnvBGPScaleHosts, v)
		}
	}
	for _, rr := range []bool{false, true} {
		name := "full-mesh"
		if rr {
			name = "route-reflectors"
		}
		b.Run(fmt.Sprintf("%s/hosts=%d", name, hosts), func(b *testing.B) { benchBGPScale(b, hosts, rr) })
	}
}

func benchBGPScale(b *testing.B, n int, rr bool) {
	l := newLab(b, false)
	l.create(ipPool("pool", "10.64.0.0/12"))
	block := func(i int) netip.Prefix { return netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/26", 64+i/256, i%256)) }
	var nls []*netlink.Handle
	for i := range n {
		h := l.addHost(fmt.Sprintf("h%d", i+1), "a", hostAddr(i))
		l.affinity(h.name, block(i).String())
		nls = append(nls, netlinkOf(b, h))
	}
	staticNeighbours(b, l.hosts, nls)
	if rr {
		off := false
		cfg := v3.NewBGPConfiguration()
		cfg.Name = "default"
		cfg.Spec.NodeToNodeMeshEnabled = &off
		clients := v3.NewBGPPeer()
		clients.Name = "peer-with-route-reflectors"
		clients.Spec.NodeSelector = "!has(route-reflector)"
		clients.Spec.PeerSelector = "has(route-reflector)"
		between := v3.NewBGPPeer()
		between.Name = "route-reflectors"
		between.Spec.NodeSelector = "has(route-reflector)"
		between.Spec.PeerSelector = "has(route-reflector)"
		l.create(cfg, clients, between)
		for i := range 2 {
			node := v3.NewNode()
			node.Name = l.hosts[i].name
			node.Labels = map[string]string{"route-reflector": "true"}
			node.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: l.hosts[i].ip.String(), RouteReflectorClusterID: "224.0.0.1"}
			l.create(node)
		}
	}
	// converged: host i has a route to every other host's block.
	converged := func(i int) error {
		for j := range n {
			if j != i && !hasRoute(nls[i], block(j)) {
				return fmt.Errorf("h%d has no route to h%d's block (%s)", i+1, j+1, sessionsDown(l, l.hosts[i]))
			}
		}
		return nil
	}
	start := time.Now()
	for _, h := range l.hosts {
		h.start()
	}
	waitFor(b, 3*time.Minute, "convergence", func() error {
		for i := range n {
			if err := converged(i); err != nil {
				return err
			}
		}
		return nil
	})
	convergence := time.Since(start)
	var total, largest float64
	for _, h := range l.hosts {
		rss := procRSSMB(h.confd.cmd.Process.Pid) + procRSSMB(h.bgpd.cmd.Process.Pid)
		total += rss
		largest = max(largest, rss)
	}

	// h3 restarts.
	h := l.hosts[2]
	h.bgpd.stop(syscall.SIGTERM)
	h.confd.stop(syscall.SIGTERM)
	start = time.Now()
	h.start()
	peers := n - 1
	if rr {
		peers = 2
	}
	waitFor(b, 5*time.Minute, "h3 back", func() error {
		st, err := h.status()
		if err != nil {
			return err
		}
		up := 0
		for _, p := range st.Peers4 {
			if p.State == "up" && p.Info == "Established" {
				up++
			}
		}
		if up != peers {
			return fmt.Errorf("h3 has %d of %d sessions up", up, peers)
		}
		return converged(2)
	})
	restart := time.Since(start)
	b.ReportMetric(convergence.Seconds(), "converge-s")
	b.ReportMetric(restart.Seconds(), "restart-s")
	b.ReportMetric(total/float64(n), "host-rss-MB")
	b.ReportMetric(largest, "max-host-rss-MB")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d hosts (route reflectors: %v): converged in %v, h3 back in %v; confd+bgpd %.1f MB a host on average, %.1f at most",
		n, rr, convergence.Round(time.Millisecond), restart.Round(time.Millisecond), total/float64(n), largest)
}

// hostAddr is host i's address on segment A: .11 up to .250.
func hostAddr(i int) string { return fmt.Sprintf("172.31.255.%d", 11+i) }

// procRSSMB is a process's VmRSS in MB (0 if it is gone).
func procRSSMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "VmRSS" {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// sessionsDown describes h's sessions that are not Established, and the
// first such peer's view of h.
func sessionsDown(l *lab, h *host) string {
	st, err := h.status()
	if err != nil {
		return "status: " + err.Error()
	}
	var down []string
	for _, p := range st.Peers4 {
		if p.Info != "Established" {
			down = append(down, fmt.Sprintf("%s %s/%s", p.Address, p.State, p.Info))
		}
	}
	other := ""
	for _, p := range st.Peers4 {
		if p.Info == "Established" {
			continue
		}
		for _, o := range l.hosts {
			if o.ip.Addr().String() != p.Address {
				continue
			}
			ost, err := o.status()
			other = fmt.Sprintf("; %s: %v, %d peers, none is %s", o.name, err, len(ost.Peers4), h.name)
			if err == nil {
				for _, q := range ost.Peers4 {
					if q.Address == h.ip.Addr().String() {
						other = fmt.Sprintf("; %s sees %s as %s/%s since %s", o.name, h.name, q.State, q.Info, q.Since)
					}
				}
			}
		}
		break
	}
	return fmt.Sprintf("%d of %d sessions not established: %s%s", len(down), len(st.Peers4), strings.Join(down, ", "), other)
}

// staticNeighbours gives every host a permanent neighbour entry for every
// other host. The kernel keeps one ARP table for all namespaces and counts
// its learned entries against one limit (gc_thresh3, 1024 by default):
// 50 hosts that each talk to 49 others need 2,450, and past the limit a
// new entry is refused, so sessions cannot connect for a reason no real
// host has. Permanent entries do not count.
func staticNeighbours(b *testing.B, hosts []*host, nls []*netlink.Handle) {
	macs := make([]net.HardwareAddr, len(hosts))
	links := make([]int, len(hosts))
	for i, nh := range nls {
		link, err := nh.LinkByName("eth0")
		if err != nil {
			b.Fatalf("%s: %v", hosts[i].name, err)
		}
		macs[i], links[i] = link.Attrs().HardwareAddr, link.Attrs().Index
	}
	for i, nh := range nls {
		for j, h := range hosts {
			if i == j {
				continue
			}
			n := &netlink.Neigh{LinkIndex: links[i], Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
				IP: h.ip.Addr().AsSlice(), HardwareAddr: macs[j]}
			if err := nh.NeighSet(n); err != nil {
				b.Fatalf("%s: neighbour %s: %v", hosts[i].name, h.name, err)
			}
		}
	}
}
