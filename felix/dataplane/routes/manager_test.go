package routes

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newFakeManager returns a Manager on f with a sysctl tree holding ifaces
// and no cleanup grace unless grace is set.
func newFakeManager(t *testing.T, f *fakeKernel, cfg Config, grace time.Duration, ifaces ...string) *Manager {
	t.Helper()
	procSys := t.TempDir()
	for _, name := range ifaces {
		for _, d := range []string{"net/ipv4/conf/", "net/ipv4/neigh/", "net/ipv6/conf/"} {
			if err := os.MkdirAll(filepath.Join(procSys, d, name), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if grace == 0 {
		grace = -1
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return NewManager(ManagerConfig{Config: cfg, Kernel: f, ProcSys: procSys, CleanupGrace: grace, Log: logrus.NewEntry(l)})
}

func ipn(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	n.IP = ip
	return n
}

// seed adds a route as another program (or an earlier felix) would.
func seed(t *testing.T, f *fakeKernel, r netlink.Route) {
	t.Helper()
	if err := f.RouteReplace(&r); err != nil {
		t.Fatal(err)
	}
}

func wantRoutes(t *testing.T, f *fakeKernel, table int, want ...string) {
	t.Helper()
	if got := f.routeStrings(table); !slices.Equal(got, want) {
		t.Fatalf("table %d routes:\n  %q\nwant\n  %q", table, got, want)
	}
}

func mustApply(t *testing.T, m *Manager, d *Desired) {
	t.Helper()
	if err := m.Apply(d); err != nil {
		t.Fatal(err)
	}
}

func TestManagerProgramsMovesAndRemovesRoutes(t *testing.T) {
	f := newFakeKernel()
	f.addLink("eth0")
	f.addLink("cali1")
	f.addLink("cali2")
	m := newFakeManager(t, f, Config{}, 0, "cali1", "cali2")

	d := &Desired{
		Ifaces: []Iface{{Name: "cali1"}, {Name: "cali2"}},
		Routes: []Route{
			{Dst: p("10.65.0.2/32"), Dev: "cali1", LinkScope: true},
			{Dst: p("10.65.0.3/32"), Dev: "cali2", LinkScope: true, Src: a("192.168.1.10")},
			{Dst: p("10.65.1.0/26"), Dev: "eth0", Gw: a("192.168.1.20"), Cluster: true},
		},
	}
	mustApply(t, m, d)
	wantRoutes(t, f, unix.RT_TABLE_MAIN,
		"10.65.0.2/32 dev cali1 proto 3 scope link",
		"10.65.0.3/32 dev cali2 proto 3 scope link src 192.168.1.10",
		"10.65.1.0/26 via 192.168.1.20 dev eth0 proto 80")

	// A resync of a converged kernel writes nothing.
	writes := f.writes
	m.Invalidate()
	mustApply(t, m, d)
	if f.writes != writes {
		t.Fatalf("resync of a converged kernel made %d route writes", f.writes-writes)
	}

	// The workload of cali2 goes; 10.65.0.2 moves to cali2 (replaced in
	// place); the remote block goes.
	d = &Desired{
		Ifaces: []Iface{{Name: "cali2"}},
		Routes: []Route{{Dst: p("10.65.0.2/32"), Dev: "cali2", LinkScope: true}},
	}
	mustApply(t, m, d)
	wantRoutes(t, f, unix.RT_TABLE_MAIN, "10.65.0.2/32 dev cali2 proto 3 scope link")

	// A route to an interface that does not exist yet is programmed once
	// it does (and the Manager is invalidated).
	d.Routes = append(d.Routes, Route{Dst: p("10.65.0.4/32"), Dev: "cali3", LinkScope: true})
	d.Ifaces = append(d.Ifaces, Iface{Name: "cali3"})
	mustApply(t, m, d)
	wantRoutes(t, f, unix.RT_TABLE_MAIN, "10.65.0.2/32 dev cali2 proto 3 scope link")
	f.addLink("cali3")
	if err := os.MkdirAll(filepath.Join(m.cfg.ProcSys, "net/ipv4/conf/cali3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(m.cfg.ProcSys, "net/ipv4/neigh/cali3"), 0o755); err != nil {
		t.Fatal(err)
	}
	m.Invalidate()
	mustApply(t, m, d)
	wantRoutes(t, f, unix.RT_TABLE_MAIN,
		"10.65.0.2/32 dev cali2 proto 3 scope link",
		"10.65.0.4/32 dev cali3 proto 3 scope link")
}

func TestManagerLeavesOthersRoutes(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "RemoveExternalRoutes", true: "KeepExternalRoutes"}[keep], func(t *testing.T) {
			f := newFakeKernel()
			eth0 := f.addLink("eth0")
			cali1 := f.addLink("cali1")
			for _, r := range []netlink.Route{
				// An operator's static route into a pool, with protocol boot.
				{Dst: ipn("10.65.7.0/24"), Gw: net.ParseIP("192.168.1.1").To4(), LinkIndex: eth0, Protocol: 3},
				// bgpd's route (protocol 12).
				{Dst: ipn("10.65.5.0/26"), Gw: net.ParseIP("192.168.1.30").To4(), LinkIndex: eth0, Protocol: 12},
				// An earlier felix's route to a remote block: felix's.
				{Dst: ipn("10.65.6.0/26"), Gw: net.ParseIP("192.168.1.40").To4(), LinkIndex: eth0, Protocol: 80},
				// Someone else's route on a workload interface.
				{Dst: ipn("10.65.0.9/32"), LinkIndex: cali1, Protocol: 12, Scope: netlink.SCOPE_LINK},
				// A stale workload route of felix's.
				{Dst: ipn("10.65.0.8/32"), LinkIndex: cali1, Protocol: 3, Scope: netlink.SCOPE_LINK},
				// Not the main table; not IPv4 (IPv6 is off).
				{Dst: ipn("10.65.0.8/32"), LinkIndex: cali1, Protocol: 3, Table: 100},
				{Dst: ipn("fd00::8/128"), LinkIndex: cali1, Protocol: 3},
			} {
				seed(t, f, r)
			}
			m := newFakeManager(t, f, Config{KeepExternalRoutes: keep}, 0, "cali1")
			mustApply(t, m, &Desired{Ifaces: []Iface{{Name: "cali1"}},
				Routes: []Route{{Dst: p("10.65.0.2/32"), Dev: "cali1", LinkScope: true}}})
			want := []string{
				"10.65.0.2/32 dev cali1 proto 3 scope link",
				"10.65.5.0/26 via 192.168.1.30 dev eth0 proto 12",
				"10.65.7.0/24 via 192.168.1.1 dev eth0 proto 3",
				"fd00::8/128 dev cali1 proto 3",
			}
			if keep {
				want = slices.Insert(want, 1, "10.65.0.9/32 dev cali1 proto 12 scope link")
			}
			wantRoutes(t, f, unix.RT_TABLE_MAIN, want...)
			wantRoutes(t, f, 100, "10.65.0.8/32 dev cali1 proto 3")
		})
	}
}

func TestManagerCleanupGrace(t *testing.T) {
	f := newFakeKernel()
	f.addLink("cali1")
	m := newFakeManager(t, f, Config{}, 10*time.Second)
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	// The CNI plugin's route, before felix hears of the workload.
	seed(t, f, netlink.Route{Dst: ipn("10.65.0.2/32"), LinkIndex: 2, Protocol: 3, Scope: netlink.SCOPE_LINK})
	mustApply(t, m, &Desired{})
	wantRoutes(t, f, unix.RT_TABLE_MAIN, "10.65.0.2/32 dev cali1 proto 3 scope link")
	now = now.Add(11 * time.Second)
	m.Invalidate()
	mustApply(t, m, &Desired{})
	wantRoutes(t, f, unix.RT_TABLE_MAIN)
}

// An interrupted dump fails the pass without acting on a partial view;
// the next Apply, even of the same Desired, converges.
func TestManagerResyncAfterInterruptedDump(t *testing.T) {
	for _, dump := range []string{"RouteListFiltered", "LinkList"} {
		t.Run(dump, func(t *testing.T) {
			f := newFakeKernel()
			eth0 := f.addLink("eth0")
			f.addLink("cali1")
			seed(t, f, netlink.Route{Dst: ipn("10.65.6.0/26"), Gw: net.ParseIP("192.168.1.40").To4(), LinkIndex: eth0, Protocol: 80})
			m := newFakeManager(t, f, Config{}, 0, "cali1")
			d := &Desired{Ifaces: []Iface{{Name: "cali1"}},
				Routes: []Route{{Dst: p("10.65.0.2/32"), Dev: "cali1", LinkScope: true}}}

			f.interrupt[dump] = 1
			writes := f.writes
			if err := m.Apply(d); !errors.Is(err, netlink.ErrDumpInterrupted) {
				t.Fatalf("Apply during an interrupted dump: %v", err)
			}
			if f.writes != writes {
				t.Fatal("routes were changed on an interrupted dump")
			}
			wantRoutes(t, f, unix.RT_TABLE_MAIN, "10.65.6.0/26 via 192.168.1.40 dev eth0 proto 80")

			mustApply(t, m, d)
			wantRoutes(t, f, unix.RT_TABLE_MAIN, "10.65.0.2/32 dev cali1 proto 3 scope link")
		})
	}
}

func TestManagerTidyTables(t *testing.T) {
	f := newFakeKernel()
	eth0 := f.addLink("eth0")
	seed(t, f, netlink.Route{Dst: ipn("10.65.0.0/16"), LinkIndex: eth0, Table: 250})
	seed(t, f, netlink.Route{Dst: ipn("10.66.0.0/16"), LinkIndex: eth0, Table: 251})
	f.rules = []netlink.Rule{
		{Family: netlink.FAMILY_V4, Table: 250, Priority: 99},
		{Family: netlink.FAMILY_V4, Table: 250, Priority: 100},
		{Family: netlink.FAMILY_V4, Table: 251, Priority: 99},
	}
	m := newFakeManager(t, f, Config{TidyTable4: 250}, 0)
	mustApply(t, m, &Desired{})
	wantRoutes(t, f, 250)
	wantRoutes(t, f, 251, "10.66.0.0/16 dev eth0 proto 3")
	if len(f.rules) != 2 || f.rules[0].Priority != 100 || f.rules[1].Table != 251 {
		t.Fatalf("rules left: %+v", f.rules)
	}
}

func TestManagerVXLAN(t *testing.T) {
	f := newFakeKernel()
	eth0 := f.addLink("eth0")
	if err := f.LinkSetMTU(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: eth0}}, 9000); err != nil {
		t.Fatal(err)
	}
	if err := f.AddrReplace(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: eth0}}, &netlink.Addr{IPNet: ipn("192.168.1.10/24")}); err != nil {
		t.Fatal(err)
	}
	m := newFakeManager(t, f, Config{}, 0)
	d := &Desired{
		VXLAN: &VXLAN{Name: VXLANDevice, VNI: 4096, Port: 4789, LocalIP: a("192.168.1.10"), MAC: "66:00:00:00:00:0a",
			Addr: p("10.65.0.1/32")},
		Routes: []Route{{Dst: p("10.65.1.0/26"), Dev: VXLANDevice, Gw: a("10.65.1.1"), OnLink: true, Cluster: true}},
		Neighs: []Neigh{{Dev: VXLANDevice, IP: a("10.65.1.1"), MAC: "66:00:00:00:00:14"}},
		FDBs:   []FDB{{Dev: VXLANDevice, MAC: "66:00:00:00:00:14", Dst: a("192.168.1.20")}},
	}
	mustApply(t, m, d)
	l, err := f.LinkByName(VXLANDevice)
	if err != nil {
		t.Fatal(err)
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok || vx.VxlanId != 4096 || vx.Port != 4789 || vx.MTU != 8950 || vx.VtepDevIndex != eth0 ||
		vx.HardwareAddr.String() != "66:00:00:00:00:0a" || vx.Flags&net.FlagUp == 0 || vx.Learning {
		t.Fatalf("device %+v", l)
	}
	addrs, _ := f.AddrList(l, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.65.0.1/32" {
		t.Fatalf("device addresses %v", addrs)
	}
	wantRoutes(t, f, unix.RT_TABLE_MAIN, "10.65.1.0/26 via 10.65.1.1 dev vxlan.calico proto 80")

	// Stale entries of a host that left are removed; the device is kept.
	stale := []netlink.Neigh{
		{LinkIndex: vx.Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: net.ParseIP("10.65.2.1").To4(),
			HardwareAddr: net.HardwareAddr{0x66, 0, 0, 0, 0, 0x1e}},
		{LinkIndex: vx.Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF,
			IP: net.ParseIP("192.168.2.30").To4(), HardwareAddr: net.HardwareAddr{0x66, 0, 0, 0, 0, 0x1e}},
	}
	for i := range stale {
		if err := f.NeighSet(&stale[i]); err != nil {
			t.Fatal(err)
		}
	}
	m.Invalidate()
	mustApply(t, m, d)
	var got []string
	for _, nf := range []int{netlink.FAMILY_V4, unix.AF_BRIDGE} {
		ns, _ := f.NeighList(vx.Index, nf)
		for _, n := range ns {
			got = append(got, n.IP.String()+" "+n.HardwareAddr.String())
		}
	}
	if want := []string{"10.65.1.1 66:00:00:00:00:14", "192.168.1.20 66:00:00:00:00:14"}; !slices.Equal(got, want) {
		t.Fatalf("neighbours %q, want %q", got, want)
	}
	if l2, _ := f.LinkByName(VXLANDevice); l2 == nil || l2.Attrs().Index != vx.Index {
		t.Fatal("device was recreated without a change")
	}

	// No VXLAN: the device goes, and with it its routes and neighbours.
	mustApply(t, m, &Desired{})
	if _, err := f.LinkByName(VXLANDevice); err == nil {
		t.Fatal("device not removed")
	}
	wantRoutes(t, f, unix.RT_TABLE_MAIN)
}

func TestDumpRetry(t *testing.T) {
	for _, fails := range []int{0, 1, dumpAttempts - 1, dumpAttempts} {
		calls := 0
		got, err := dumpRetry(func() ([]int, error) {
			calls++
			if calls <= fails {
				return []int{1}, netlink.ErrDumpInterrupted
			}
			return []int{1, 2}, nil
		})
		if fails < dumpAttempts && (err != nil || len(got) != 2 || calls != fails+1) {
			t.Errorf("%d interruptions: %v %v after %d calls", fails, got, err, calls)
		}
		if fails == dumpAttempts && (!errors.Is(err, netlink.ErrDumpInterrupted) || got != nil || calls != dumpAttempts) {
			t.Errorf("%d interruptions: %v %v after %d calls", fails, got, err, calls)
		}
	}
	if _, err := dumpRetry(func() ([]int, error) { return nil, unix.EPERM }); !errors.Is(err, unix.EPERM) {
		t.Errorf("other error: %v", err)
	}
}
