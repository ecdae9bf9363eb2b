// Package nettest holds kernel test helpers that run inside network
// namespaces: an ICMP echo ("ping") that needs no ping binary on the host.
package nettest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/calico-etcd/calico/testutil"
)

// Ping sends ICMP echo requests from inside n to dst, one every 100 ms,
// until one is answered or timeout passes.
func Ping(n *testutil.NetNS, dst netip.Addr, timeout time.Duration) error {
	if err := n.RunIn(func() error { return ping(dst, timeout) }); err != nil {
		return fmt.Errorf("ping %s from %s: %w", dst, n.Name, err)
	}
	return nil
}

// ping runs in the namespace to test from: the raw socket belongs to the
// namespace of the thread that opens it.
func ping(dst netip.Addr, timeout time.Duration) error {
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() && !dst.Is4In6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(network, laddr)
	if err != nil {
		return err
	}
	defer c.Close()
	id := rand.IntN(0xffff)
	deadline := time.Now().Add(timeout)
	to := &net.IPAddr{IP: dst.AsSlice()}
	buf := make([]byte, 1500)
	for seq := 1; time.Now().Before(deadline); seq++ {
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("calico-cni-test")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b, to); err != nil {
			// No route yet, or the neighbour is still resolving: retry.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		wait := time.Now().Add(100 * time.Millisecond)
		for {
			if err := c.SetReadDeadline(wait); err != nil {
				return err
			}
			n, from, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return err
			}
			rm, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || rm.Type != replyType {
				continue
			}
			echo, ok := rm.Body.(*icmp.Echo)
			if ok && echo.ID == id && from.(*net.IPAddr).IP.Equal(to.IP) {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply within %s", timeout)
}

// Host addresses NewHost puts on the host namespace's loopback, for pods
// to ping.
var (
	HostIPv4 = netip.MustParseAddr("10.99.0.1")
	HostIPv6 = netip.MustParseAddr("fd99::1")
)

// NewHost makes a namespace that stands in for a host's root namespace,
// which tests never touch: HostIPv4 and HostIPv6 on lo, and a default
// route out of an "uplink" veth, as a real host has, and IPv6 forwarding. Pods need that route:
// the host answers their ARP for 169.254.1.1 by proxy ARP, which the
// kernel only does for an address it has a unicast route to.
func NewHost(t testing.TB) *testutil.NetNS {
	t.Helper()
	host := testutil.NewNetNS(t)
	for _, args := range [][]string{
		{"addr", "add", HostIPv4.String() + "/32", "dev", "lo"},
		{"addr", "add", HostIPv6.String() + "/128", "dev", "lo"},
		{"link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"},
		{"link", "set", "uplink0", "up"},
		{"link", "set", "uplink1", "up"},
		{"route", "add", "default", "dev", "uplink0"},
	} {
		if err := host.Exec("ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	// Felix turns IPv6 forwarding on host-wide; the kernel forwards IPv6
	// only on that switch, whatever the interface's own setting.
	if err := host.Exec("sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"); err != nil {
		t.Fatal(err)
	}
	return host
}
