package linux

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/testutil"
)

// NATOutgoingExclusions IPPoolsAndHostIPs leaves traffic to other Calico
// hosts un-NATed; NATPortRange limits the source ports NAT outgoing uses.
func TestKernelNATOutgoingExclusionsAndPortRange(t *testing.T) {
	for _, tc := range []struct {
		name, exclusions string
		min, max         uint16
		wantSrc          string // the source the other host sees
	}{
		{"pools-only", "IPPoolsOnly", 0, 0, "192.168.91.1"},
		{"pools-and-hosts", "IPPoolsAndHostIPs", 0, 0, "10.65.0.2"},
		{"port-range", "", 40000, 40009, "192.168.91.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newHostNS(t)
			other := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
			h := attach(t, ns, dpapi.Config{NATOutgoingExclusions: tc.exclusions, NATPortMin: tc.min, NATPortMax: tc.max})
			s := baseState(w.endpoint("allow-all"))
			s.Pools["pool1"].NATOutgoing = true
			s.Hosts["host2"] = &dpapi.Host{Name: "host2", IPv4: mustPrefix("192.168.91.2/24")}
			must(t, h.dp.Apply(t.Context(), s))
			seen := listenRecord(t, other.ns, 8080)
			for i := 0; i < 3; i++ {
				if !w.canConnect(t, other.ip, 8080) {
					t.Fatalf("workload cannot reach the other host\n%s", h.diag(t))
				}
				src, ok := received(seen)
				if !ok || src.Addr().String() != tc.wantSrc {
					t.Fatalf("other host saw %v, want source %s", src, tc.wantSrc)
				}
				if tc.max != 0 && (src.Port() < tc.min || src.Port() > tc.max) {
					t.Errorf("source port %d outside NATPortRange %d:%d", src.Port(), tc.min, tc.max)
				}
			}
		})
	}
}

// sendTCPFlags sends one bare TCP segment with the given flags from ns
// (whose address is src) to dst:port, by raw socket.
func sendTCPFlags(t testing.TB, ns *testutil.NetNS, src, dst netip.Addr, port uint16, flags byte) {
	t.Helper()
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], 40404)
	binary.BigEndian.PutUint16(seg[2:], port)
	binary.BigEndian.PutUint32(seg[4:], 1000)
	seg[12] = 5 << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], 65535)
	var sum uint32
	pseudo := append(append(src.AsSlice(), dst.AsSlice()...), 0, syscall.IPPROTO_TCP, 0, byte(len(seg)))
	for _, b := range [][]byte{pseudo, seg} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
	must(t, ns.RunIn(func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		return syscall.Sendto(fd, seg, 0, &syscall.SockaddrInet4{Addr: dst.As4()})
	}))
}

// DisableConntrackInvalidCheck: a segment conntrack calls INVALID (SYN and
// FIN together) is dropped in the workload's chain by default, and goes
// on to the workload's policy with the check disabled.
func TestKernelDisableConntrackInvalidCheck(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		t.Run(map[bool]string{false: "check", true: "no-check"}[disabled], func(t *testing.T) {
			ns := newHostNS(t)
			c := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
			h := attach(t, ns, dpapi.Config{DisableConntrackInvalidCheck: disabled})
			must(t, h.dp.Apply(t.Context(), baseState(w.endpoint("allow-all"))))
			const synFin = 0x03
			sendTCPFlags(t, c.ns, c.ip, w.ip4, 8080, synFin)
			var dropped, toPolicy int
			eventuallyOK(3*time.Second, func() bool { // until the segment is counted somewhere
				dropped = h.packets(t, "filter", "cali-tw-calia1", "ctstate INVALID")
				toPolicy = h.packets(t, "filter", "cali-pri-allow-all", "")
				return dropped > 0 || toPolicy > 0
			})
			if disabled && (dropped != -1 || toPolicy <= 0) {
				t.Errorf("check disabled: INVALID rule counter %d (want no rule), reached the profile %d times\n%s", dropped, toPolicy, h.diag(t))
			}
			if !disabled && (dropped <= 0 || toPolicy != 0) {
				t.Errorf("check on: INVALID dropped %d, reached the profile %d times\n%s", dropped, toPolicy, h.diag(t))
			}
		})
	}
}

// sendIPIP sends one IP-in-IP packet (a bare inner header) from ns to dst.
func sendIPIP(t testing.TB, ns *testutil.NetNS, dst netip.Addr) {
	t.Helper()
	inner := make([]byte, 20)
	inner[0] = 0x45
	binary.BigEndian.PutUint16(inner[2:], 20)
	inner[8], inner[9] = 64, syscall.IPPROTO_UDP
	must(t, ns.RunIn(func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_IPIP)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		return syscall.Sendto(fd, inner, 0, &syscall.SockaddrInet4{Addr: dst.As4()})
	}))
}

// countIPIP counts IP-in-IP packets arriving in ns until stop is called.
func countIPIP(t testing.TB, ns *testutil.NetNS) (stop func() int) {
	t.Helper()
	var fd int
	must(t, ns.RunIn(func() error {
		var err error
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_IPIP)
		if err != nil {
			return err
		}
		tv := syscall.Timeval{Usec: 200000}
		return syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	}))
	return func() int {
		defer syscall.Close(fd)
		n := 0
		buf := make([]byte, 2048)
		for {
			if _, _, err := syscall.Recvfrom(fd, buf, 0); err != nil {
				return n
			}
			n++
		}
	}
}

// AllowVXLANPacketsFromWorkloads / AllowIPIPPacketsFromWorkloads: the
// encapsulated packets a workload sends are dropped unless allowed.
func TestKernelEncapFromWorkloads(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "dropped", true: "allowed"}[allow], func(t *testing.T) {
			ns := newHostNS(t)
			other := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
			h := attach(t, ns, dpapi.Config{AllowVXLANPacketsFromWorkloads: allow, AllowIPIPPacketsFromWorkloads: allow})
			must(t, h.dp.Apply(t.Context(), baseState(w.endpoint("allow-all"))))
			vxlan := recvUDP(t, other.ns, 4789)
			ipip := countIPIP(t, other.ns)
			sendUDP(t, w.ns, netip.Addr{}, other.ip.String(), 4789)
			sendIPIP(t, w.ns, other.ip)
			_, gotVXLAN := received(vxlan)
			gotIPIP := ipip() > 0
			if gotVXLAN != allow || gotIPIP != allow {
				t.Errorf("VXLAN arrived %v, IPIP arrived %v; want %v\n%s", gotVXLAN, gotIPIP, allow, h.diag(t))
			}
		})
	}
}

// ExternalNodesCIDRList: VXLAN packets from a non-Calico host are dropped
// unless its address is in the list (the all-hosts IP set).
func TestKernelExternalNodesCIDRList(t *testing.T) {
	for _, listed := range []bool{false, true} {
		t.Run(map[bool]string{false: "unlisted", true: "listed"}[listed], func(t *testing.T) {
			ns := newHostNS(t)
			ext := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			cfg := dpapi.Config{}
			if listed {
				cfg.ExternalNodes = []netip.Prefix{mustPrefix("192.168.91.0/24")}
			}
			h := attach(t, ns, cfg)
			s := baseState()
			s.Pools["pool1"].VXLAN = dpapi.EncapAlways
			must(t, h.dp.Apply(t.Context(), s))
			sendUDP(t, ext.ns, netip.Addr{}, "192.168.91.1", 4789)
			var allowed, dropped int
			eventuallyOK(3*time.Second, func() bool { // until the packet is counted somewhere
				allowed = h.packets(t, "filter", "cali-INPUT", "Allow VXLAN packets from Calico hosts")
				dropped = h.packets(t, "filter", "cali-INPUT", "Drop VXLAN packets from non-Calico hosts")
				return allowed > 0 || dropped > 0
			})
			set, _ := ns.Output("ipset", "list", "cali40all-hosts-net")
			if listed != strings.Contains(set, "192.168.91.0/24") {
				t.Errorf("all-hosts set:\n%s", set)
			}
			if listed && (allowed <= 0 || dropped != 0) || !listed && (allowed != 0 || dropped <= 0) {
				t.Errorf("VXLAN from 192.168.91.2: allowed %d, dropped %d\n%s", allowed, dropped, h.diag(t))
			}
		})
	}
}

// A workload may send from its AllowSpoofedSourcePrefixes only with
// WorkloadSourceSpoofing Any; otherwise the reverse-path check drops it.
func TestKernelAllowSpoofedSourcePrefixes(t *testing.T) {
	for _, spoofing := range []bool{false, true} {
		t.Run(map[bool]string{false: "Disabled", true: "Any"}[spoofing], func(t *testing.T) {
			ns := newHostNS(t)
			other := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
			w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
			must(t, w.ns.Exec("ip", "addr", "add", "10.99.0.5/32", "dev", "eth0"))
			h := attach(t, ns, dpapi.Config{WorkloadSourceSpoofing: spoofing})
			ep := w.endpoint("allow-all")
			ep.AllowSpoofedSourcePrefixes = []netip.Prefix{mustPrefix("10.99.0.0/24")}
			must(t, h.dp.Apply(t.Context(), baseState(ep)))
			got := recvUDP(t, other.ns, 9999)
			sendUDP(t, w.ns, netip.MustParseAddr("10.99.0.5"), other.ip.String(), 9999)
			from, ok := received(got)
			if ok != spoofing || ok && from.Addr().String() != "10.99.0.5" {
				t.Errorf("spoofed packet arrived %v (from %v), want %v\n%s", ok, from, spoofing, h.diag(t))
			}
			// The workload's own address always passes.
			sendUDP(t, w.ns, w.ip4, other.ip.String(), 9999)
			if _, ok := received(got); !ok {
				t.Error("the workload's own address was dropped")
			}
		})
	}
}

// LogActionRateLimit: a Log rule logs at most its burst at once, then
// LogActionRateLimit's rate; the packets go on to the next rule either
// way. LogPrefix's %-specifiers name the policy.
func TestKernelLogRateLimitAndPrefix(t *testing.T) {
	ns := newHostNS(t)
	c := addClient(t, ns, "eth1", "192.168.91.1", "192.168.91.2")
	w := addWorkload(t, ns, "calia1", "10.65.0.2", "")
	h := attach(t, ns, dpapi.Config{LogRateLimit: "1/minute", LogRateLimitBurst: 2, LogPrefix: "%k-%t-%p"})
	s := baseState()
	pol := dpapi.PolicyID{Tier: "default", Namespace: "prod", Name: "web"}
	s.Policies[pol] = &dpapi.Policy{Inbound: []dpapi.Rule{{Action: dpapi.Log, Protocol: "udp"}, {Action: dpapi.Allow}}}
	ep := w.endpoint()
	ep.Tiers = []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{pol}}}
	s.Workloads[ep.ID] = ep
	must(t, h.dp.Apply(t.Context(), s))
	sv := h.save(t, 4)
	if !hasRule(sv, "-m limit --limit 1/min --limit-burst 2", `--log-prefix "np-default-prod/web: "`) {
		t.Fatalf("no rate-limited Log rule:\n%s", sv)
	}
	got := recvUDP(t, w.ns, 9999)
	const sent = 8
	for i := 0; i < sent; i++ {
		sendUDP(t, c.ns, netip.Addr{}, w.ip4.String(), 9999)
		if _, ok := received(got); !ok {
			t.Fatalf("packet %d did not reach the workload\n%s", i, h.diag(t))
		}
	}
	if logged := h.packets(t, "filter", "cali-pi-default/prod/web", "-j LOG"); logged != 2 {
		t.Errorf("the Log rule matched %d of %d packets, want its burst of 2", logged, sent)
	}
}
