package routes

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/calico-etcd/calico/testutil"
)

// TestKernelContract runs the same calls against the fake and against
// NewKernel in a throwaway namespace, so the fake keeps the kernel's
// semantics that the Manager relies on.
func TestKernelContract(t *testing.T) {
	t.Run("fake", func(t *testing.T) { kernelContract(t, newFakeKernel()) })
	t.Run("netns", func(t *testing.T) {
		testutil.RequireRoot(t)
		n, err := testutil.NewNetNSNamed(testutil.UniqueName("nlshim-"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Delete)
		h, err := netlink.NewHandleAt(netns.NsHandle(int(n.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		kernelContract(t, NewKernel(h))
	})
}

// testRoutes describes the routes of k in 10.9.0.0/16 and fd00:9::/32
// (the real kernel has others of its own).
func testRoutes(t *testing.T, k Kernel, family int, filter *netlink.Route, mask uint64) []string {
	t.Helper()
	rs, err := k.RouteListFiltered(family, filter, mask)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Dst == nil || !(ipn("10.9.0.0/16").Contains(r.Dst.IP) || ipn("fd00:9::/32").Contains(r.Dst.IP)) {
			continue
		}
		out = append(out, fmt.Sprintf("%s dev %d proto %d table %d metric %d", r.Dst, r.LinkIndex, r.Protocol, r.Table, r.Priority))
	}
	slices.Sort(out)
	return out
}

func kernelContract(t *testing.T, k Kernel) {
	var idx [2]int
	// veths, as the test kernels lack dummy; the fake makes no peer.
	for i, name := range []string{"nlsa", "nlsb"} {
		if err := k.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{name + "p", name} {
			l, err := k.LinkByName(n)
			if err != nil && n == name {
				t.Fatal(err)
			}
			if err == nil {
				if err := k.LinkSetUp(l); err != nil {
					t.Fatal(err)
				}
				idx[i] = l.Attrs().Index
			}
		}
	}
	if err := k.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nlsa"}, PeerName: "nlsap2"}); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("adding a link twice: %v", err)
	}
	ia, ib := idx[0], idx[1]
	mainTable := &netlink.Route{Table: unix.RT_TABLE_MAIN}
	check := func(got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("routes %q\nwant %q", got, want)
		}
	}
	replace := func(r netlink.Route) {
		t.Helper()
		if err := k.RouteReplace(&r); err != nil {
			t.Fatalf("RouteReplace(%v): %v", r, err)
		}
	}

	// Replace with another device and protocol replaces, in place.
	replace(netlink.Route{Dst: ipn("10.9.0.0/24"), LinkIndex: ia, Protocol: 3})
	replace(netlink.Route{Dst: ipn("10.9.0.0/24"), LinkIndex: ib, Protocol: 80})
	check(testRoutes(t, k, netlink.FAMILY_V4, mainTable, netlink.RT_FILTER_TABLE),
		fmt.Sprintf("10.9.0.0/24 dev %d proto 80 table 254 metric 0", ib))
	// Another metric is another route.
	replace(netlink.Route{Dst: ipn("10.9.0.0/24"), LinkIndex: ia, Protocol: 3, Priority: 50})
	// Other tables are listed only when filtering by table.
	replace(netlink.Route{Dst: ipn("10.9.0.0/24"), LinkIndex: ia, Protocol: 3, Table: 100})
	replace(netlink.Route{Dst: ipn("fd00:9::/64"), LinkIndex: ia, Protocol: 3})
	check(testRoutes(t, k, netlink.FAMILY_ALL, &netlink.Route{}, 0),
		fmt.Sprintf("10.9.0.0/24 dev %d proto 3 table 254 metric 50", ia),
		fmt.Sprintf("10.9.0.0/24 dev %d proto 80 table 254 metric 0", ib),
		fmt.Sprintf("fd00:9::/64 dev %d proto 3 table 254 metric 1024", ia))
	check(testRoutes(t, k, netlink.FAMILY_V4, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE),
		fmt.Sprintf("10.9.0.0/24 dev %d proto 3 table 100 metric 0", ia))
	check(testRoutes(t, k, netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: 80},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL),
		fmt.Sprintf("10.9.0.0/24 dev %d proto 80 table 254 metric 0", ib))
	check(testRoutes(t, k, netlink.FAMILY_V4, &netlink.Route{LinkIndex: ia}, netlink.RT_FILTER_OIF),
		fmt.Sprintf("10.9.0.0/24 dev %d proto 3 table 254 metric 50", ia))

	// Delete matches the fields it is given.
	for _, r := range []netlink.Route{
		{Dst: ipn("10.9.0.0/24"), Protocol: 12},
		{Dst: ipn("10.9.0.0/24"), LinkIndex: ib, Priority: 50},
		{Dst: ipn("10.9.1.0/24")},
	} {
		if err := k.RouteDel(&r); !errors.Is(err, unix.ESRCH) {
			t.Fatalf("RouteDel(%v) = %v, want ESRCH", r, err)
		}
	}
	if err := k.RouteDel(&netlink.Route{Dst: ipn("10.9.0.0/24"), Protocol: 80}); err != nil {
		t.Fatal(err)
	}
	if err := k.RouteDel(&netlink.Route{Dst: ipn("10.9.0.0/24"), Table: 100}); err != nil {
		t.Fatal(err)
	}
	check(testRoutes(t, k, netlink.FAMILY_V4, &netlink.Route{}, 0), fmt.Sprintf("10.9.0.0/24 dev %d proto 3 table 254 metric 50", ia))

	// Deleting a link deletes its routes, addresses and neighbours.
	lb, err := k.LinkByIndex(ib)
	if err != nil {
		t.Fatal(err)
	}
	replace(netlink.Route{Dst: ipn("10.9.2.0/24"), LinkIndex: ib, Protocol: 3})
	if err := k.AddrReplace(lb, &netlink.Addr{IPNet: ipn("10.9.3.1/32")}); err != nil {
		t.Fatal(err)
	}
	if err := k.NeighSet(&netlink.Neigh{LinkIndex: ib, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP("10.9.2.5").To4(), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 5}}); err != nil {
		t.Fatal(err)
	}
	if as, err := k.AddrList(lb, netlink.FAMILY_V4); err != nil || len(as) != 1 || as[0].LinkIndex != ib {
		t.Fatalf("AddrList = %v %v", as, err)
	}
	if ns, err := k.NeighList(ib, netlink.FAMILY_V4); err != nil || len(ns) != 1 || !ns[0].IP.Equal(net.ParseIP("10.9.2.5")) {
		t.Fatalf("NeighList = %v %v", ns, err)
	}
	if err := k.LinkDel(lb); err != nil {
		t.Fatal(err)
	}
	if _, err := k.LinkByIndex(ib); err == nil {
		t.Fatal("link still there")
	}
	check(testRoutes(t, k, netlink.FAMILY_V4, &netlink.Route{}, 0), fmt.Sprintf("10.9.0.0/24 dev %d proto 3 table 254 metric 50", ia))
	if as, _ := k.AddrList(nil, netlink.FAMILY_V4); slices.ContainsFunc(as, func(x netlink.Addr) bool { return x.LinkIndex == ib }) {
		t.Fatalf("addresses of a deleted link: %v", as)
	}
	if err := k.RouteReplace(&netlink.Route{Dst: ipn("10.9.4.0/24"), LinkIndex: ib}); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("route to a deleted link: %v", err)
	}
}
