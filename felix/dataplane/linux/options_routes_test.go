package linux

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dpapi"
)

// RouteTableRanges: felix keeps the first two tables of the ranges (the
// tables Calico's WireGuard uses) empty, with WireGuard's routing rule
// removed, as Calico does with WireGuard off; other tables are left alone.
func TestKernelRouteTableRanges(t *testing.T) {
	for _, tc := range []struct {
		name         string
		ranges       []dpapi.TableRange
		tidy, intact []string // tables
	}{
		{"default", nil, []string{"1"}, []string{"100", "3"}},
		{"custom", []dpapi.TableRange{{Min: 100, Max: 120}}, []string{"100"}, []string{"1", "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newHostNS(t)
			for _, table := range []string{"1", "3", "100"} {
				must(t, ns.Exec("ip", "route", "add", "10.200.0.0/16", "dev", "eth0", "table", table))
			}
			must(t, ns.Exec("ip", "rule", "add", "priority", "99", "not", "fwmark", "0x100000/0x100000", "table", tc.tidy[0]))
			h := attach(t, ns, dpapi.Config{RouteTableRanges: tc.ranges})
			must(t, h.dp.Apply(t.Context(), baseState()))
			for _, table := range tc.tidy {
				if rt, _ := ns.Output("ip", "route", "show", "table", table); strings.Contains(rt, "10.200.0.0/16") {
					t.Errorf("table %s not emptied:\n%s", table, rt)
				}
			}
			for _, table := range tc.intact {
				if rt, _ := ns.Output("ip", "route", "show", "table", table); !strings.Contains(rt, "10.200.0.0/16") {
					t.Errorf("table %s (outside the WireGuard tables) was changed:\n%s", table, rt)
				}
			}
			if rules, _ := ns.Output("ip", "rule"); strings.Contains(rules, "99:") {
				t.Errorf("WireGuard's routing rule remains:\n%s", rules)
			}
		})
	}
}

// RemoveExternalRoutes (the default) removes routes to workload interfaces
// that felix did not program, whatever their protocol; false keeps those
// of other protocols. Routes elsewhere that felix does not own, such as an
// operator's static route into a pool via eth0 with protocol boot, stay
// either way.
func TestKernelRemoveExternalRoutes(t *testing.T) {
	for _, remove := range []bool{true, false} {
		t.Run(map[bool]string{true: "remove", false: "keep"}[remove], func(t *testing.T) {
			ns := newHostNS(t)
			w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
			must(t, ns.Exec("ip", "route", "add", "10.65.0.99/32", "dev", "calia1", "proto", "static"))
			must(t, ns.Exec("ip", "route", "add", "10.65.9.0/24", "via", "192.168.90.77", "dev", "eth0", "proto", "boot"))
			h := attach(t, ns, dpapi.Config{KeepExternalRoutes: !remove}, WithRouteCleanupGrace(-1))
			must(t, h.dp.Apply(t.Context(), baseState(w.endpoint("allow-all"))))
			rt, _ := ns.Output("ip", "route")
			if strings.Contains(rt, "10.65.0.99") == remove {
				t.Errorf("RemoveExternalRoutes %v: another program's route on calia1:\n%s", remove, rt)
			}
			if !strings.Contains(rt, "10.65.9.0/24 via 192.168.90.77 dev eth0") { // ip hides proto boot
				t.Errorf("the operator's static route into the pool was removed:\n%s", rt)
			}
			if !strings.Contains(rt, "10.65.0.2 dev calia1 scope link") {
				t.Errorf("workload route missing:\n%s", rt)
			}
		})
	}
}

// RouteSource WorkloadIPs routes each remote workload's address through
// the tunnel instead of its host's block, and traffic flows over it.
func TestKernelRouteSourceWorkloadIPs(t *testing.T) {
	hs := newTwoHosts(t)
	hs.a = attach(t, hs.a.ns, dpapi.Config{Hostname: "hosta", RouteSource: "WorkloadIPs"})
	wa := addWorkload(t, hs.a.ns, "calia1", "10.65.0.2", "")
	wb := addWorkload(t, hs.b.ns, "calib1", "10.65.1.2", "")
	sa := vxlanState(dpapi.EncapAlways, wa.endpoint("allow-all"))
	sa.RemoteWorkloads = []dpapi.RemoteBlock{{CIDR: mustPrefix("10.65.1.2/32"), Host: "hostb"}}
	must(t, hs.a.dp.Apply(t.Context(), sa))
	must(t, hs.b.dp.Apply(t.Context(), vxlanState(dpapi.EncapAlways, wb.endpoint("allow-all"))))
	rt, _ := hs.a.ns.Output("ip", "route", "show", "proto", "80")
	if !strings.Contains(rt, "10.65.1.2 via 10.65.1.1 dev vxlan.calico onlink") || strings.Contains(rt, "10.65.1.0/26") {
		t.Fatalf("routes to host B:\n%s", rt)
	}
	if !eventuallyOK(10*time.Second, func() bool { return ping(wa, wb.ip4) == nil }) {
		t.Fatalf("ping over the workload route failed\n%s\n%s", hs.a.diag(t), hs.b.diag(t))
	}
}

// DeviceRouteSourceAddress(IPv6) set the src of the routes to local workloads.
func TestKernelDeviceRouteSourceAddress(t *testing.T) {
	ns := newHostNS(t)
	must(t, ns.Exec("ip", "-6", "addr", "add", "fd00:90::1/64", "dev", "eth0", "nodad"))
	w := addWorkload(t, ns, "calia1", "10.65.0.2", "fd00:65::2")
	h := attach(t, ns, dpapi.Config{IPv6Support: true, DeviceRouteSourceAddress: "192.168.90.1", DeviceRouteSourceAddressV6: "fd00:90::1"})
	s := baseState(w.endpoint("allow-all"))
	s.Pools["pool6"] = &dpapi.Pool{Name: "pool6", CIDR: mustPrefix("fd00:65::/64")}
	must(t, h.dp.Apply(t.Context(), s))
	rt4, _ := ns.Output("ip", "route", "show", "dev", "calia1")
	rt6, _ := ns.Output("ip", "-6", "route", "show", "dev", "calia1")
	if !strings.Contains(rt4, "10.65.0.2 scope link src 192.168.90.1") || !strings.Contains(rt6, "fd00:65::2 src fd00:90::1") {
		t.Errorf("workload routes:\n%s%s", rt4, rt6)
	}
	// Traffic from the host to the workload comes from that address.
	seen := listenRecord(t, w.ns, 8080)
	must(t, dial(ns, "10.65.0.2", 8080))
	if src, ok := received(seen); !ok || src.Addr().String() != "192.168.90.1" {
		t.Errorf("the workload saw the host as %v", src)
	}
}

// IPForwarding Enabled (the default) turns forwarding on; Disabled leaves
// it as the host has it.
func TestKernelIPForwarding(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		t.Run(map[bool]string{false: "Enabled", true: "Disabled"}[disabled], func(t *testing.T) {
			ns := newHostNS(t)
			must(t, ns.Exec("sysctl", "-qw", "net.ipv4.ip_forward=0"))
			h := attach(t, ns, dpapi.Config{IPForwardingDisabled: disabled})
			must(t, h.dp.Apply(t.Context(), baseState()))
			out, err := ns.Output("sysctl", "-n", "net.ipv4.ip_forward")
			must(t, err)
			if want := map[bool]string{false: "1", true: "0"}[disabled]; strings.TrimSpace(out) != want {
				t.Errorf("ip_forward = %s, want %s", strings.TrimSpace(out), want)
			}
		})
	}
}

// MaxIpsetSize is the maxelem of felix's IP sets; a changed size replaces
// the sets (through a temporary set, keeping the members).
func TestKernelMaxIpsetSize(t *testing.T) {
	ns := newHostNS(t)
	s := baseState()
	s.IPSets["s:web"] = &dpapi.IPSet{ID: "s:web", Type: dpapi.IPSetNet, Members: []string{"10.65.0.2", "10.65.0.3"}}
	for _, size := range []int{1000, 2000} {
		h := attach(t, ns, dpapi.Config{MaxIPSetSize: size})
		must(t, h.dp.Apply(t.Context(), s))
		out, err := ns.Output("ipset", "save")
		must(t, err)
		for _, set := range []string{"cali40s:web", "cali40all-ipam-pools"} {
			if !hasRule(out, "create "+set, "maxelem "+strconv.Itoa(size)) {
				t.Errorf("size %d: %s:\n%s", size, set, out)
			}
		}
		if !strings.Contains(out, "add cali40s:web 10.65.0.3") {
			t.Errorf("members lost:\n%s", out)
		}
	}
}

// VXLANEnabled and IpInIpEnabled override the pools: true sets the device
// up with no such pool, false leaves it out although a pool asks for it.
func TestKernelEncapOverrides(t *testing.T) {
	yes, no := true, false
	ns := newHostNS(t)
	s := baseState()
	h := attach(t, ns, dpapi.Config{VXLANEnabled: &yes})
	must(t, h.dp.Apply(t.Context(), s))
	if _, err := ns.Output("ip", "link", "show", "vxlan.calico"); err != nil {
		t.Errorf("VXLANEnabled true without a VXLAN pool: no vxlan.calico: %v", err)
	}
	if !strings.Contains(h.save(t, 4), "Allow VXLAN packets from Calico hosts") {
		t.Error("VXLANEnabled true: no VXLAN input rules")
	}
	s.Pools["pool1"].VXLAN = dpapi.EncapAlways
	h = attach(t, ns, dpapi.Config{VXLANEnabled: &no})
	must(t, h.dp.Apply(t.Context(), s))
	if _, err := ns.Output("ip", "link", "show", "vxlan.calico"); err == nil {
		t.Error("VXLANEnabled false with a VXLAN pool: vxlan.calico remains")
	}
	if strings.Contains(h.save(t, 4), "VXLAN packets") {
		t.Error("VXLANEnabled false: VXLAN input rules remain")
	}
	h = attach(t, ns, dpapi.Config{IPIPEnabled: &no})
	s.Pools["pool1"].VXLAN, s.Pools["pool1"].IPIP = dpapi.EncapNever, dpapi.EncapAlways
	must(t, h.dp.Apply(t.Context(), s))
	if strings.Contains(h.save(t, 4), "IPIP packets") {
		t.Error("IpInIpEnabled false: IPIP rules remain")
	}
}
