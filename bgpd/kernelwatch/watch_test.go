package kernelwatch

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/testutil"
)

func ip(t *testing.T, ns *testutil.NetNS, cmd string) {
	t.Helper()
	if err := ns.Exec("ip", strings.Fields(cmd)...); err != nil {
		t.Fatal(err)
	}
}

// next returns the next non-empty batch, or fails after a timeout.
func next(t *testing.T, ch <-chan []Event) []Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case b := <-ch:
			if len(b) > 0 {
				return b
			}
		case <-timeout:
			t.Fatal("no event")
		}
	}
}

func expect(t *testing.T, ch <-chan []Event, want ...Event) {
	t.Helper()
	var got []Event
	for len(got) < len(want) {
		got = append(got, next(t, ch)...)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %+v, want %+v", got, want)
		}
	}
}

func TestWatchWorkloadRoutes(t *testing.T) {
	ns := testutil.NewNetNS(t)
	ip(t, ns, "link add cali1 type veth peer name peer1")
	ip(t, ns, "link add eth0 type veth peer name peer0")
	for _, l := range []string{"cali1", "peer1", "eth0", "peer0"} {
		ip(t, ns, "link set "+l+" up")
	}
	// Present before the watch starts: reported in the first batch.
	ip(t, ns, "route add 10.65.2.1/32 dev cali1 scope link proto 3")

	l := logrus.New()
	l.SetOutput(io.Discard)
	w := New(Options{IfacePrefix: "cali", IgnoreProtocol: 12, Log: logrus.NewEntry(l)})
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []Event, 64)
	done := make(chan error, 1)
	go func() { done <- ns.RunIn(func() error { return w.Run(ctx, out) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	p := netip.MustParsePrefix
	expect(t, out, Event{Dst: p("10.65.2.1/32"), Iface: "cali1"})
	ip(t, ns, "route add 10.65.2.2/32 dev cali1 scope link proto 3")
	expect(t, out, Event{Dst: p("10.65.2.2/32"), Iface: "cali1"})
	// Not workload routes: another interface, bgpd's own protocol, a gateway.
	ip(t, ns, "route add 10.65.3.3/32 dev eth0")
	ip(t, ns, "route add 10.65.3.4/32 dev cali1 proto 12")
	ip(t, ns, "route add 10.65.3.5/32 via 10.65.2.1 dev cali1 onlink")
	ip(t, ns, "route del 10.65.2.2/32 dev cali1")
	expect(t, out, Event{Dst: p("10.65.2.2/32"), Iface: "cali1", Deleted: true})
	// IPv6.
	ip(t, ns, "-6 route add fd00:65::5/128 dev cali1 proto 3")
	expect(t, out, Event{Dst: p("fd00:65::5/128"), Iface: "cali1"})
	// Removing the interface removes its IPv4 routes without a route
	// notification; the link removal reports them.
	ip(t, ns, "link del cali1")
	got := map[netip.Prefix]bool{}
	for len(got) < 2 {
		for _, e := range next(t, out) {
			if !e.Deleted {
				t.Fatalf("unexpected %+v", e)
			}
			got[e.Dst] = true
		}
	}
	if !got[p("10.65.2.1/32")] || !got[p("fd00:65::5/128")] {
		t.Fatalf("deleted %v", got)
	}
}
