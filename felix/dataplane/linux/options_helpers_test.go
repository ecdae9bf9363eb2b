package linux

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/testutil"
)

// client is a namespace joined to the host by a veth: the host end is
// hostIface with hostIP/24, the client end eth0 with clientIP/24 and a
// default route through the host.
type client struct {
	ns *testutil.NetNS
	ip netip.Addr
}

func addClient(t testing.TB, h *testutil.NetNS, hostIface, hostIP, clientIP string) *client {
	t.Helper()
	c := &client{ns: testutil.NewNetNS(t), ip: netip.MustParseAddr(clientIP)}
	must(t, h.Exec("ip", "link", "add", hostIface, "type", "veth", "peer", "name", "eth0", "netns", c.ns.Name))
	must(t, h.Exec("ip", "addr", "add", hostIP+"/24", "dev", hostIface))
	must(t, h.Exec("ip", "link", "set", hostIface, "up"))
	must(t, c.ns.Exec("ip", "addr", "add", clientIP+"/24", "dev", "eth0"))
	must(t, c.ns.Exec("ip", "link", "set", "eth0", "up"))
	must(t, c.ns.Exec("ip", "route", "add", "default", "via", hostIP))
	return c
}

// dial connects to dst:port from the namespace, with a one second limit,
// and returns the error (nil when the connection was accepted).
func dial(ns *testutil.NetNS, dst string, port int) error {
	return ns.RunIn(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(dst, strconv.Itoa(port)), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// listenRecord serves TCP on port in ns and sends each client's address.
func listenRecord(t testing.TB, ns *testutil.NetNS, port int) <-chan netip.AddrPort {
	t.Helper()
	var ln net.Listener
	must(t, ns.RunIn(func() error {
		var err error
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		return err
	}))
	t.Cleanup(func() { _ = ln.Close() })
	out := make(chan netip.AddrPort, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			_ = c.Close()
			select {
			case out <- netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()):
			default:
			}
		}
	}()
	return out
}

// recvUDP listens on UDP port in ns and sends each datagram's source.
func recvUDP(t testing.TB, ns *testutil.NetNS, port int) <-chan netip.AddrPort {
	t.Helper()
	var pc net.PacketConn
	must(t, ns.RunIn(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", ":"+strconv.Itoa(port))
		return err
	}))
	t.Cleanup(func() { _ = pc.Close() })
	out := make(chan netip.AddrPort, 16)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ap, _ := netip.ParseAddrPort(from.String())
			select {
			case out <- ap:
			default:
			}
		}
	}()
	return out
}

// sendUDP sends one datagram from ns (from src when valid) to dst:port.
func sendUDP(t testing.TB, ns *testutil.NetNS, src netip.Addr, dst string, port int) {
	t.Helper()
	must(t, ns.RunIn(func() error {
		var laddr *net.UDPAddr
		if src.IsValid() {
			laddr = &net.UDPAddr{IP: src.AsSlice()}
		}
		c, err := net.DialUDP("udp4", laddr, &net.UDPAddr{IP: net.ParseIP(dst), Port: port})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("felix test"))
		return err
	}))
}

// received waits for one value on ch; the wait bounds the test, it is not
// what the test measures.
func received[T any](ch <-chan T) (T, bool) {
	select {
	case v := <-ch:
		return v, true
	case <-time.After(3 * time.Second):
		var zero T
		return zero, false
	}
}

// packets returns the packet counter of the rule of chain (in table) whose
// text holds every one of parts, from iptables-save -c; -1 when absent.
func (h *host) packets(t testing.TB, table, chain string, parts ...string) int {
	t.Helper()
	out, err := h.ns.Output("iptables-"+h.dp.Backend()+"-save", "-c", "-t", table)
	must(t, err)
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "-A "+chain+" ") {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if !ok || !strings.HasPrefix(l, "[") {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(l, "["), ":", 2)[0])
		return n
	}
	return -1
}

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}

// hasRule reports whether some line of an iptables-save holds every part.
func hasRule(save string, parts ...string) bool {
	for _, l := range strings.Split(save, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
