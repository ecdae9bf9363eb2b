package fvtest

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calico-etcd/calico/testutil"
)

var (
	nsMu    sync.Mutex
	created []*testutil.NetNS
)

func newNS(prefix string) (*testutil.NetNS, error) {
	n, err := testutil.NewNetNSNamed(testutil.UniqueName(testutil.NetNSPrefix + prefix))
	if err != nil {
		return nil, err
	}
	nsMu.Lock()
	created = append(created, n)
	nsMu.Unlock()
	return n, nil
}

func cleanupNetNS() {
	nsMu.Lock()
	defer nsMu.Unlock()
	for _, n := range created {
		n.Delete()
	}
	created = nil
}

// listenPorts are the TCP ports every workload serves (echo).
var listenPorts = []int{80, 8080, 8081, 9000}

// wl is a workload: a namespace joined to the host by a cali veth.
type wl struct {
	name  string
	ns    *testutil.NetNS
	iface string
	ip    netip.Addr
}

// addWorkload creates the namespace, the veth pair and the echo servers.
func addWorkload(t *testing.T, name, ip string) *wl {
	t.Helper()
	n, err := newNS("fvw")
	if err != nil {
		t.Fatal(err)
	}
	w := &wl{name: name, ns: n, iface: "cali" + name, ip: netip.MustParseAddr(ip)}
	for _, c := range [][]string{
		{"ip", "link", "add", w.iface, "type", "veth", "peer", "name", "eth0", "netns", n.Name},
		{"ip", "link", "set", w.iface, "up"},
	} {
		if err := run(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "addr", "add", ip + "/32", "dev", "eth0"},
		{"ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"},
		{"ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"},
	} {
		if err := n.Exec(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range listenPorts {
		w.serve(t, p)
	}
	return w
}

// serve echoes on TCP port p inside the workload until the process ends.
func (w *wl) serve(t *testing.T, port int) {
	t.Helper()
	var ln net.Listener
	if err := w.ns.RunIn(func() error {
		var err error
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go echo(ln)
}

func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
	}
}

const probeTimeout = 700 * time.Millisecond

// dialFrom connects from a namespace (nil: the host) and checks an echo.
func dialFrom(n *testutil.NetNS, dst netip.Addr, port int) error {
	var c net.Conn
	dial := func() error {
		var err error
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(dst, uint16(port)).String(), probeTimeout)
		return err
	}
	var err error
	if n == nil {
		err = dial()
	} else {
		err = n.RunIn(dial)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	b := make([]byte, 1)
	_, err = io.ReadFull(c, b)
	return err
}

// pingFrom sends one ICMP echo request from the namespace to dst and
// waits for the reply (no ping binary needed).
func pingFrom(n *testutil.NetNS, dst netip.Addr) error {
	var conn net.PacketConn
	if err := n.RunIn(func() error {
		var err error
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return err
	}
	defer conn.Close()
	id, seq := uint16(rand.Uint32()), uint16(rand.Uint32())
	msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'f', 'v'}
	cs := checksum(msg)
	msg[2], msg[3] = byte(cs>>8), byte(cs)
	if _, err := conn.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(probeTimeout))
	buf := make([]byte, 1500)
	for {
		k, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		ip, _ := from.(*net.IPAddr)
		if k >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id && ip != nil && ip.IP.Equal(dst.AsSlice()) {
			return nil
		}
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// probe is one connectivity expectation.
type probe struct {
	from  *wl
	fromN *testutil.NetNS // when from is nil (e.g. outside the host)
	to    netip.Addr
	toN   string
	port  int // 0 = ICMP echo
	want  bool
}

func tcpP(from, to *wl, port int, want bool) probe {
	return probe{from: from, to: to.ip, toN: to.name, port: port, want: want}
}

func icmpP(from, to *wl, want bool) probe {
	return probe{from: from, to: to.ip, toN: to.name, want: want}
}

func (p probe) String() string {
	src := "outside"
	if p.from != nil {
		src = p.from.name
	}
	what := "ping"
	if p.port != 0 {
		what = "tcp:" + strconv.Itoa(p.port)
	}
	verb := "connect"
	if !p.want {
		verb = "be denied"
	}
	return fmt.Sprintf("%s -> %s %s should %s", src, p.toN, what, verb)
}

func (p probe) run() bool {
	n := p.fromN
	if p.from != nil {
		n = p.from.ns
	}
	if p.port == 0 {
		return pingFrom(n, p.to) == nil
	}
	return dialFrom(n, p.to, p.port) == nil
}

// check runs the probes in parallel and returns the ones that failed.
func check(ps []probe) []probe {
	var mu sync.Mutex
	var bad []probe
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() {
			if p.run() != p.want {
				mu.Lock()
				bad = append(bad, p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return bad
}

// expect waits until every probe holds; a failure shows what did not and
// the end of felix's log.
func expect(t *testing.T, f *felix, ps ...probe) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		bad := check(ps)
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, p := range bad {
				lines = append(lines, p.String())
			}
			sort.Strings(lines)
			t.Fatalf("connectivity not as expected after 15s:\n  %s\nfelix log tail:\n%s\n%s",
				strings.Join(lines, "\n  "), f.tail(15), iptablesDump())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// steady checks the probes hold now and keep holding for d.
func steady(t *testing.T, d time.Duration, ps ...probe) {
	t.Helper()
	for end := time.Now().Add(d); ; {
		if bad := check(ps); len(bad) > 0 {
			t.Fatalf("connectivity changed: %v", bad)
		}
		if time.Now().After(end) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// iptablesDump returns the filter table of whichever backend has cali
// chains, for failure messages.
func iptablesDump() string {
	for _, bin := range []string{"iptables-nft-save", "iptables-legacy-save"} {
		out, err := exec.Command(bin, "-t", "filter").CombinedOutput()
		if err == nil && strings.Contains(string(out), "cali-") {
			return bin + ":\n" + string(out)
		}
	}
	return "(no cali chains in either iptables backend)"
}

// iptablesSave returns both backends' output.
func iptablesSave() string {
	var b strings.Builder
	for _, bin := range []string{"iptables-nft-save", "iptables-legacy-save"} {
		out, _ := exec.Command(bin).CombinedOutput()
		b.Write(out)
	}
	return b.String()
}

// hostListener serves TCP ports on the host side of an interface.
func hostListen(t *testing.T, addr string, ports ...int) {
	t.Helper()
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go echo(ln)
	}
}

func dialTCP(dst netip.Addr, port int) (net.Conn, error) {
	return net.DialTimeout("tcp", netip.AddrPortFrom(dst, uint16(port)).String(), probeTimeout)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
