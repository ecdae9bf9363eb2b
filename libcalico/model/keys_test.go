package model

import (
	"net/netip"
	"testing"
)

func TestKeyPathsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		key  Key
		path string
	}{
		{ResourceKey{Kind: "IPPool", Name: "pool1"}, "/calico/resources/v3/projectcalico.org/ippools/pool1"},
		{ResourceKey{Kind: "NetworkPolicy", Namespace: "production", Name: "allow-tcp-6379"}, "/calico/resources/v3/projectcalico.org/networkpolicies/production/allow-tcp-6379"},
		{ResourceKey{Kind: "WorkloadEndpoint", Namespace: "ns", Name: "node1-k8s-mypod-eth0"}, "/calico/resources/v3/projectcalico.org/workloadendpoints/ns/node1-k8s-mypod-eth0"},
		{BlockKey{CIDR: netip.MustParsePrefix("10.10.166.128/26")}, "/calico/ipam/v2/assignment/ipv4/block/10.10.166.128-26"},
		{BlockKey{CIDR: netip.MustParsePrefix("fd00:10::a680/122")}, "/calico/ipam/v2/assignment/ipv6/block/fd00:10::a680-122"},
		{BlockAffinityKey{Host: "node1", CIDR: netip.MustParsePrefix("10.30.0.0/30")}, "/calico/ipam/v2/host/node1/ipv4/block/10.30.0.0-30"},
		{HandleKey{HandleID: "k8s-pod-network.aaaa1111"}, "/calico/ipam/v2/handle/k8s-pod-network.aaaa1111"},
		{IPAMConfigKey{}, "/calico/ipam/v2/config"},
		{FelixStatusKey{Hostname: "h1"}, "/calico/felix/v2/no-region/host/h1/status"},
		{FelixStatusKey{Hostname: "h1", Last: true}, "/calico/felix/v2/no-region/host/h1/last_reported_status"},
		{WorkloadEndpointStatusKey{Hostname: "h1", OrchestratorID: "k8s", WorkloadID: "ns/pod", EndpointID: "eth0"}, ""},
	} {
		p, err := tc.key.Path()
		if tc.path == "" {
			if err == nil {
				t.Errorf("%v: want error for '/' in a segment, got %s", tc.key, p)
			}
			continue
		}
		if err != nil || p != tc.path {
			t.Errorf("%v.Path() = %q, %v; want %q", tc.key, p, err, tc.path)
		}
		if back := ParseKey(tc.path); back != tc.key {
			t.Errorf("ParseKey(%q) = %#v, want %#v", tc.path, back, tc.key)
		}
	}
}

func TestParseKeyRejectsForeignPaths(t *testing.T) {
	for _, p := range []string{
		"", "/", "/calico", "/calico/resources/v3/projectcalico.org/ippools/",
		"/calico/resources/v3/projectcalico.org/ippools/a/b",
		"/calico/resources/v3/projectcalico.org/networkpolicies/onlyname",
		"/calico/resources/v3/projectcalico.org/bogus/x",
		"/calico/ipam/v2/assignment/ipv4/block/10.0.0.1-26",
		"/calico/ipam/v2/assignment/ipv6/block/10.0.0.0-26",
		"/calico/ipam/v2/assignment/ipv4/block/nonsense",
		"/calico/ipam/v2/handle/", "/calico/felix/v2/no-region/host/h/other",
	} {
		if k := ParseKey(p); k != nil {
			t.Errorf("ParseKey(%q) = %#v, want nil", p, k)
		}
	}
}

func TestListOptionPrefixes(t *testing.T) {
	p, _ := ResourceListOptions{Kind: "NetworkPolicy", Namespace: "prod"}.Prefix()
	if p != "/calico/resources/v3/projectcalico.org/networkpolicies/prod/" {
		t.Errorf("namespaced prefix %q must end with '/' so prod2 is excluded", p)
	}
	if _, err := (ResourceListOptions{Kind: "Nope"}).Prefix(); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := (PrefixListOptions{Path: "/etc"}).Prefix(); err == nil {
		t.Error("prefix outside /calico/ accepted")
	}
	o := BlockAffinityListOptions{Host: "node1", IPVersion: 6}
	if o.Matches(BlockAffinityKey{Host: "node1", CIDR: netip.MustParsePrefix("10.0.0.0/26")}) {
		t.Error("v4 affinity matched a v6 list")
	}
}

func TestBlockOrdinals(t *testing.T) {
	b := &AllocationBlock{CIDR: CIDR{netip.MustParsePrefix("10.10.166.128/26")}}
	if b.NumAddresses() != 64 {
		t.Fatalf("NumAddresses = %d", b.NumAddresses())
	}
	for _, ord := range []int{0, 1, 63} {
		a := b.AddrAt(ord)
		got, err := b.OrdinalOf(a)
		if err != nil || got != ord {
			t.Errorf("ordinal %d -> %s -> %d, %v", ord, a, got, err)
		}
	}
	if b.AddrAt(63).String() != "10.10.166.191" {
		t.Errorf("AddrAt(63) = %s", b.AddrAt(63))
	}
	if _, err := b.OrdinalOf(netip.MustParseAddr("10.10.166.192")); err == nil {
		t.Error("address outside block accepted")
	}
	v6 := &AllocationBlock{CIDR: CIDR{netip.MustParsePrefix("fd00:10::a680/122")}}
	if v6.AddrAt(5).String() != "fd00:10::a685" {
		t.Errorf("v6 AddrAt(5) = %s", v6.AddrAt(5))
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"/calico/ipam/v2/host/n/ipv4/block/10.0.0.0-26", "/calico/resources/v3/projectcalico.org/ippools/x", "/calico/felix/v2/no-region/host/h/workload/k8s/w/endpoint/e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := ParseKey(s)
		if k == nil {
			return
		}
		p, err := k.Path()
		if err != nil || p != s {
			t.Fatalf("ParseKey(%q) = %#v whose path is %q (%v)", s, k, p, err)
		}
	})
}

func TestWorkloadEndpointStatusKeyRoundTrip(t *testing.T) {
	k := WorkloadEndpointStatusKey{Hostname: "h1", OrchestratorID: "k8s", WorkloadID: "ns.pod", EndpointID: "eth0"}
	p, err := k.Path()
	if err != nil || ParseKey(p) != k {
		t.Fatalf("%q -> %#v (%v)", p, ParseKey(p), err)
	}
}
