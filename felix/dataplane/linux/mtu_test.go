package linux

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/calico-etcd/calico/felix/dpapi"
)

func link(name string, mtu int, up bool, oper netlink.LinkOperState) netlink.Link {
	a := netlink.LinkAttrs{Name: name, MTU: mtu, OperState: oper}
	if up {
		a.Flags = net.FlagUp
	}
	return &netlink.Dummy{LinkAttrs: a}
}

func TestHostMTU(t *testing.T) {
	re := regexp.MustCompile(DefaultMTUIfacePattern)
	links := []netlink.Link{
		link("lo", 65536, true, netlink.OperUnknown),
		link("eth0", 9000, true, netlink.OperUp),
		link("ens3", 1500, true, netlink.OperUp),
		link("eth1", 1400, false, netlink.OperDown),  // down: ignored
		link("cali1234", 1300, true, netlink.OperUp), // not a host interface
		link("vxlan.calico", 1450, true, netlink.OperUnknown),
	}
	if got := HostMTU(links, re); got != 1500 {
		t.Errorf("HostMTU = %d, want 1500 (smallest matching interface that is up)", got)
	}
	if got := HostMTU(links[:1], re); got != 1460 {
		t.Errorf("no matching interface: %d, want Calico's 1460", got)
	}
}

func TestPodMTU(t *testing.T) {
	pools := func(ps ...*dpapi.Pool) *dpapi.State {
		s := &dpapi.State{Pools: map[string]*dpapi.Pool{}}
		for i, p := range ps {
			s.Pools[string(rune('a'+i))] = p
		}
		return s
	}
	v4 := func(vx, ipip dpapi.EncapMode) *dpapi.Pool {
		return &dpapi.Pool{CIDR: mustPrefix("10.65.0.0/16"), VXLAN: vx, IPIP: ipip}
	}
	v6 := &dpapi.Pool{CIDR: mustPrefix("fd00:65::/64"), VXLAN: dpapi.EncapCrossSubnet}
	for _, tc := range []struct {
		name string
		s    *dpapi.State
		cfg  dpapi.Config
		want int
	}{
		{"no encapsulation", pools(v4(dpapi.EncapNever, dpapi.EncapNever)), dpapi.Config{}, 1500},
		{"VXLAN", pools(v4(dpapi.EncapAlways, dpapi.EncapNever)), dpapi.Config{}, 1450},
		{"VXLAN CrossSubnet", pools(v4(dpapi.EncapCrossSubnet, dpapi.EncapNever)), dpapi.Config{}, 1450},
		{"IPIP", pools(v4(dpapi.EncapNever, dpapi.EncapAlways)), dpapi.Config{}, 1480},
		{"IPv6 VXLAN", pools(v6), dpapi.Config{}, 1430},
		{"VXLAN and IPIP pools: the smaller", pools(v4(dpapi.EncapAlways, dpapi.EncapNever), v4(dpapi.EncapNever, dpapi.EncapAlways)), dpapi.Config{}, 1450},
		{"configured VXLANMTU", pools(v4(dpapi.EncapAlways, dpapi.EncapNever)), dpapi.Config{VXLANMTU: 1400, IPIPMTU: 1000}, 1400},
		{"configured but unused", pools(v4(dpapi.EncapNever, dpapi.EncapNever)), dpapi.Config{VXLANMTU: 1400}, 1500},
	} {
		if got := PodMTU(1500, tc.s, tc.cfg); got != tc.want {
			t.Errorf("%s: PodMTU = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestKernelMTUFile: the dataplane writes the pod MTU for the CNI plugin
// from the host interface's MTU and the pools' encapsulation, and
// rewrites it when the pools change.
func TestKernelMTUFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "lib", "mtu")
	ns := newHostNS(t)
	must(t, ns.Exec("ip", "link", "set", "eth0", "mtu", "1400"))
	h := attach(t, ns, dpapi.Config{MTUFile: file})
	read := func() string {
		b, _ := os.ReadFile(file)
		return strings.TrimSpace(string(b))
	}
	s := baseState()
	if _, err := os.Stat(file); err == nil {
		t.Fatal("MTU file written before the first Apply")
	}
	must(t, h.dp.Apply(t.Context(), s))
	if got := read(); got != "1400" {
		t.Fatalf("no encapsulation: MTU file %q, want 1400 (eth0's)", got)
	}
	vxlan := *s.Pools["pool1"] // a changed object is a new one
	vxlan.VXLAN = dpapi.EncapAlways
	s.Pools["pool1"] = &vxlan
	must(t, h.dp.Apply(t.Context(), s))
	if got := read(); got != "1350" {
		t.Fatalf("VXLAN: MTU file %q, want 1350", got)
	}
	info, err := os.Stat(file)
	must(t, err)
	if info.Mode().Perm() != 0o644 {
		t.Errorf("MTU file mode %v", info.Mode())
	}
	// The same State again writes nothing.
	before := info.ModTime()
	time.Sleep(20 * time.Millisecond)
	must(t, h.dp.Apply(t.Context(), s))
	if info, _ := os.Stat(file); !info.ModTime().Equal(before) {
		t.Error("MTU file rewritten without a change")
	}
	// A felix that restarts finds the file right and leaves it.
	h2 := attach(t, ns, dpapi.Config{MTUFile: file})
	must(t, h2.dp.Apply(t.Context(), s))
	if info, _ := os.Stat(file); !info.ModTime().Equal(before) || read() != "1350" {
		t.Error("restart rewrote an up-to-date MTU file")
	}
	novxlan := vxlan
	novxlan.VXLAN = dpapi.EncapNever
	s.Pools["pool1"] = &novxlan
	must(t, h.dp.Apply(t.Context(), s))
	if got := read(); got != "1400" {
		t.Fatalf("VXLAN off: MTU file %q, want 1400", got)
	}
}
