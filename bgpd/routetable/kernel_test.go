package routetable

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/testutil"
)

// TestKernel programs real routes in a throwaway namespace.
func TestKernel(t *testing.T) {
	ns := testutil.NewNetNS(t)
	for _, c := range []string{
		"link add eth0 type veth peer name peer0", "link set eth0 up", "link set peer0 up",
		"addr add 172.31.255.11/24 dev eth0", "route add default via 172.31.255.1",
		"link add tunl9 type veth peer name tpeer9", "link set tunl9 up",
	} {
		if err := ns.Exec("ip", splitFields(c)...); err != nil {
			t.Fatal(err)
		}
	}
	var k *Kernel
	if err := ns.RunIn(func() error {
		var err error
		k, err = NewKernel()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	near, far := netip.MustParseAddr("172.31.255.12"), netip.MustParseAddr("172.31.254.10")
	if gw, dev, err := k.Lookup(near); err != nil || gw.IsValid() || dev != "eth0" {
		t.Fatalf("Lookup(near) = %v %q %v", gw, dev, err)
	}
	if gw, dev, err := k.Lookup(far); err != nil || gw != netip.MustParseAddr("172.31.255.1") || dev != "eth0" {
		t.Fatalf("Lookup(far) = %v %q %v", gw, dev, err)
	}
	if _, _, err := k.Lookup(netip.MustParseAddr("172.31.255.11")); err == nil {
		t.Fatal("Lookup of a local address succeeded")
	}
	want := []Route{
		{Dst: netip.MustParsePrefix("10.65.1.0/26"), Blackhole: true, Metric: 1024},
		{Dst: netip.MustParsePrefix("10.65.2.0/26"), Gw: near, Dev: "eth0", Metric: 1024},
		{Dst: netip.MustParsePrefix("10.65.3.0/26"), Gw: far, Dev: "tunl9", OnLink: true},
		{Dst: netip.MustParsePrefix("10.65.4.4/32"), Gw: near, Dev: "eth0", Metric: 1024},
	}
	// felix's route to a workload; ours to the same address has another
	// metric, so it never replaces it.
	if err := ns.Exec("ip", "route", "add", "10.65.4.4/32", "dev", "eth0", "proto", "3"); err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		if err := k.Replace(r, 12); err != nil {
			t.Fatalf("Replace(%v): %v", r, err)
		}
	}
	// Replacing changes the route in place.
	moved := Route{Dst: netip.MustParsePrefix("10.65.2.0/26"), Gw: netip.MustParseAddr("172.31.255.13"), Dev: "eth0", Metric: 1024}
	if err := k.Replace(moved, 12); err != nil {
		t.Fatal(err)
	}
	want[1] = moved
	got, err := k.List(12)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b Route) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	if !slices.Equal(got, want) {
		t.Fatalf("List = %v\nwant %v", got, want)
	}
	out, _ := ns.Output("ip", "route", "show", "proto", "bird")
	t.Logf("kernel:\n%s", out)
	// Delete only touches our protocol.
	if err := ns.Exec("ip", "route", "add", "10.65.9.9/32", "dev", "eth0", "proto", "3"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"10.65.2.0/26", "10.65.9.9/32", "10.65.7.0/26"} {
		if err := k.Delete(netip.MustParsePrefix(p), 12); err != nil {
			t.Fatalf("Delete(%s): %v", p, err)
		}
	}
	if got, _ := k.List(12); len(got) != 3 {
		t.Fatalf("after delete: %v", got)
	}
	if err := k.Delete(netip.MustParsePrefix("10.65.4.4/32"), 12); err != nil {
		t.Fatal(err)
	}
	if out, _ := ns.Output("ip", "route", "show", "10.65.4.4/32"); !strings.Contains(out, "dev eth0") || strings.Contains(out, "bird") {
		t.Fatalf("felix's route after deleting ours: %q", out)
	}
	if out, _ := ns.Output("ip", "route", "show", "10.65.9.9/32"); out == "" {
		t.Fatal("another protocol's route was deleted")
	}
}

func splitFields(s string) []string { return strings.Fields(s) }
