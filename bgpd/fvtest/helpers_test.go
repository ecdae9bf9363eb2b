package fvtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/testutil"
)

const echoPort = 7777

// workload is a namespace behind a cali veth on its host, set up as felix
// and the CNI plugin would.
type workload struct {
	h     *host
	ns    *testutil.NetNS
	iface string
	ip    netip.Addr
	ln    net.Listener
}

func (h *host) addWorkload(ip string) *workload {
	t := h.l.t
	t.Helper()
	h.wls++
	w := &workload{h: h, ns: h.l.newNS(), ip: netip.MustParseAddr(ip)}
	w.iface = fmt.Sprintf("cali%s%d", strings.TrimPrefix(h.name, "h"), h.wls)
	sh(t, h.ns, "ip link add %s type veth peer name eth0 netns %s", w.iface, w.ns.Name)
	sh(t, h.ns, "ip link set %s up", w.iface)
	sysctl(t, h.ns, "net.ipv4.conf."+w.iface+".proxy_arp=1", "net.ipv4.neigh."+w.iface+".proxy_delay=0")
	sh(t, w.ns, "ip addr add %s/32 dev eth0", ip)
	sh(t, w.ns, "ip link set eth0 up")
	sh(t, w.ns, "ip route add 169.254.1.1 dev eth0 scope link")
	sh(t, w.ns, "ip route add default via 169.254.1.1 dev eth0")
	sh(t, h.ns, "ip route add %s/32 dev %s scope link proto 3", ip, w.iface)
	w.ln = listenIn(t, w.ns, netip.AddrPortFrom(w.ip, echoPort))
	return w
}

// remove deletes the workload's veth, and with it its route, as a CNI DEL.
func (w *workload) remove() {
	w.h.l.t.Helper()
	sh(w.h.l.t, w.h.ns, "ip link del %s", w.iface)
}

// listenIn runs a line echo server inside ns.
func listenIn(t testing.TB, ns *testutil.NetNS, ap netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.RunIn(func() error {
		var err error
		ln, err = net.Listen("tcp", ap.String())
		return err
	}); err != nil {
		t.Fatalf("listening on %s: %v", ap, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, _ = c.Write([]byte("echo " + line))
				}
			}()
		}
	}()
	return ln
}

// dialFrom opens a TCP connection to dst from inside ns and checks the echo.
func dialFrom(ns *testutil.NetNS, dst netip.AddrPort) error {
	var conn net.Conn
	if err := ns.RunIn(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", dst.String(), time.Second)
		return err
	}); err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "echo hello\n" {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

// reaches waits until from can talk TCP to to.
func reaches(t testing.TB, from, to *workload) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("TCP %s -> %s", from.ip, to.ip), func() error {
		return dialFrom(from.ns, netip.AddrPortFrom(to.ip, echoPort))
	})
}

// kroute is one kernel route as `ip -j route` prints it.
type kroute struct {
	Dst      string   `json:"dst"`
	Gateway  string   `json:"gateway"`
	Dev      string   `json:"dev"`
	Protocol string   `json:"protocol"`
	Type     string   `json:"type"`
	Flags    []string `json:"flags"`
}

// routes returns the host's main tables (IPv4 and IPv6) keyed by prefix
// ("10.65.1.5/32", "fd00:65::105/128").
func (h *host) routes() (map[string]kroute, error) {
	m := map[string]kroute{}
	for _, fam := range []string{"-4", "-6"} {
		out, err := h.ns.Output("ip", "-j", fam, "route", "show", "table", "main")
		if err != nil {
			return nil, err
		}
		var rs []kroute
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			return nil, fmt.Errorf("parsing ip -j route: %w", err)
		}
		for _, r := range rs {
			if !strings.Contains(r.Dst, "/") && r.Dst != "default" {
				if strings.Contains(r.Dst, ":") {
					r.Dst += "/128"
				} else {
					r.Dst += "/32"
				}
			}
			m[r.Dst] = r
		}
	}
	return m, nil
}

// want describes an expected bgpd route: via gateway gw, or a blackhole.
type want struct {
	dst, gw   string
	blackhole bool
}

// routeIs checks one bgpd route (protocol bird) on h.
func (h *host) routeIs(w want) error {
	rs, err := h.routes()
	if err != nil {
		return err
	}
	r, ok := rs[w.dst]
	switch {
	case !ok:
		return fmt.Errorf("%s: no route to %s", h.name, w.dst)
	case r.Protocol != "bird":
		return fmt.Errorf("%s: route to %s has protocol %q, want bird", h.name, w.dst, r.Protocol)
	case w.blackhole && r.Type != "blackhole":
		return fmt.Errorf("%s: route to %s is %+v, want a blackhole", h.name, w.dst, r)
	case !w.blackhole && r.Gateway != w.gw:
		return fmt.Errorf("%s: route to %s via %q, want via %s", h.name, w.dst, r.Gateway, w.gw)
	}
	return nil
}

// noRoute checks that h has no bgpd route to dst.
func (h *host) noRoute(dst string) error {
	rs, err := h.routes()
	if err != nil {
		return err
	}
	if r, ok := rs[dst]; ok && r.Protocol == "bird" {
		return fmt.Errorf("%s: still has %+v", h.name, r)
	}
	return nil
}

// waitRoutes waits until every host has its expected routes.
func waitRoutes(t testing.TB, timeout time.Duration, exp map[*host][]want) {
	t.Helper()
	waitFor(t, timeout, "routes", func() error {
		for h, ws := range exp {
			for _, w := range ws {
				if err := h.routeIs(w); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (h *host) status() (bgpstatus.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return bgpstatus.NewClient(filepath.Join(h.runDir, bgpstatus.SocketName)).Status(ctx)
}

// waitEstablished waits until h's status lists exactly the peers
// (address -> type) and all are Established.
func (h *host) waitEstablished(t testing.TB, timeout time.Duration, peers map[string]string) {
	t.Helper()
	waitFor(t, timeout, h.name+" sessions established", func() error {
		st, err := h.status()
		if err != nil {
			return err
		}
		all := slices.Concat(st.Peers4, st.Peers6)
		if len(all) != len(peers) {
			return fmt.Errorf("%s has peers %+v, want %v", h.name, all, peers)
		}
		for _, p := range all {
			typ, ok := peers[p.Address]
			switch {
			case !ok:
				return fmt.Errorf("%s: unexpected peer %+v", h.name, p)
			case p.Type != typ:
				return fmt.Errorf("%s: peer %s type %q, want %q", h.name, p.Address, p.Type, typ)
			case p.State != "up" || p.Info != "Established":
				return fmt.Errorf("%s: peer %s is %s/%s", h.name, p.Address, p.State, p.Info)
			case p.Since == "":
				return fmt.Errorf("%s: peer %s has no since", h.name, p.Address)
			}
		}
		return nil
	})
}

// peerSince returns the since column of one of h's peers.
func peerSince(t testing.TB, h *host, addr string) string {
	t.Helper()
	st, err := h.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range slices.Concat(st.Peers4, st.Peers6) {
		if p.Address == addr {
			return p.Since
		}
	}
	t.Fatalf("%s has no peer %s", h.name, addr)
	return ""
}
