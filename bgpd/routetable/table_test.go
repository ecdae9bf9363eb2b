package routetable

import (
	"io"
	"net/netip"
	"testing"

	"github.com/sirupsen/logrus"
)

const proto = 12

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

var (
	dstA = netip.MustParsePrefix("10.65.2.0/26")
	dstB = netip.MustParsePrefix("10.65.3.0/26")
	blk  = netip.MustParsePrefix("10.65.1.0/26")
	gw   = netip.MustParseAddr("172.31.255.12")
)

func TestSetApplyDelete(t *testing.T) {
	f := NewFake()
	tab := New(f, proto, quiet())
	tab.Set(Route{Dst: dstA, Gw: gw, Dev: "eth0"})
	tab.Set(Route{Dst: blk, Blackhole: true})
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	if r, ok := f.Get(proto, dstA); !ok || r.Gw != gw {
		t.Fatalf("route not programmed: %v", r)
	}
	if r, ok := f.Get(proto, blk); !ok || !r.Blackhole {
		t.Fatalf("blackhole not programmed: %v", r)
	}
	// Setting the same route again costs no syscall.
	calls := f.Calls
	tab.Set(Route{Dst: dstA, Gw: gw, Dev: "eth0"})
	if err := tab.Apply(); err != nil || f.Calls != calls {
		t.Fatalf("idempotent set made %d calls, err %v", f.Calls-calls, err)
	}
	tab.Delete(dstA)
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Get(proto, dstA); ok {
		t.Fatal("route not removed")
	}
}

func TestRestartKeepsRoutesUntilSweep(t *testing.T) {
	f := NewFake()
	// Left by a previous run: one still wanted (with an old gateway), one stale.
	f.Put(proto, Route{Dst: dstA, Gw: netip.MustParseAddr("172.31.255.99"), Dev: "eth0"})
	f.Put(proto, Route{Dst: dstB, Gw: gw, Dev: "eth0"})
	f.Put(3, Route{Dst: netip.MustParsePrefix("10.65.1.5/32"), Dev: "cali1"}) // felix's, never ours
	tab := New(f, proto, quiet())
	tab.Set(Route{Dst: dstA, Gw: gw, Dev: "eth0"})
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.Get(proto, dstA); r.Gw != gw {
		t.Fatalf("wanted route not corrected: %v", r)
	}
	if _, ok := f.Get(proto, dstB); !ok {
		t.Fatal("stale route removed before the sweep was allowed")
	}
	tab.QueueResync()
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Get(proto, dstB); !ok {
		t.Fatal("stale route removed by a resync before the sweep was allowed")
	}
	tab.AllowSweep()
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Get(proto, dstB); ok {
		t.Fatal("stale route survived the sweep")
	}
	if _, ok := f.Get(3, netip.MustParsePrefix("10.65.1.5/32")); !ok {
		t.Fatal("another protocol's route was touched")
	}
}

func TestFailuresAreRetried(t *testing.T) {
	f := NewFake()
	f.FailReplace[dstA] = true
	tab := New(f, proto, quiet())
	tab.Set(Route{Dst: dstA, Gw: gw})
	tab.Set(Route{Dst: dstB, Gw: gw})
	if err := tab.Apply(); err == nil {
		t.Fatal("no error for a failed route")
	}
	if _, ok := f.Get(proto, dstB); !ok {
		t.Fatal("one failure stopped the others")
	}
	f.FailReplace[dstA] = false
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Get(proto, dstA); !ok {
		t.Fatal("failed route not retried")
	}
	// A failed kernel read leaves the resync queued.
	f.FailList = true
	tab.QueueResync()
	if err := tab.Apply(); err == nil {
		t.Fatal("list failure not reported")
	}
	f.FailList = false
	f.Put(proto, Route{Dst: dstA, Gw: netip.MustParseAddr("192.0.2.1")}) // someone changed it
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.Get(proto, dstA); r.Gw != gw {
		t.Fatalf("resync did not repair the route: %v", r)
	}
}

func TestEqual(t *testing.T) {
	r := Route{Dst: dstA, Gw: gw}
	if !r.Equal(Route{Dst: dstA, Gw: gw, Dev: "eth0"}) {
		t.Error("an empty device should accept any")
	}
	if (Route{Dst: dstA, Gw: gw, Dev: "eth1"}).Equal(Route{Dst: dstA, Gw: gw, Dev: "eth0"}) {
		t.Error("different devices equal")
	}
	if (Route{Dst: dstA, Blackhole: true}).Equal(r) {
		t.Error("blackhole equals unicast")
	}
	if s := (Route{Dst: dstA, Gw: gw, Dev: "tunl0", OnLink: true}).String(); s != "10.65.2.0/26 via 172.31.255.12 dev tunl0 onlink" {
		t.Errorf("String() = %q", s)
	}
}

func TestMetricChange(t *testing.T) {
	f := NewFake()
	tab := New(f, proto, quiet())
	tab.Set(Route{Dst: dstA, Gw: gw, Metric: 1024})
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls
	tab.Set(Route{Dst: dstA, Gw: gw, Metric: 2048})
	if err := tab.Apply(); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.Get(proto, dstA); r.Metric != 2048 || f.Calls != calls+2 {
		t.Fatalf("route %v after %d calls (want delete then replace)", r, f.Calls-calls)
	}
}
