package kinds

import (
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func TestEveryKindHasAnEntry(t *testing.T) {
	for _, k := range v3.Kinds() {
		in, ok := ByKind(k.Kind)
		if !ok {
			t.Errorf("no entry for %s", k.Kind)
			continue
		}
		for _, h := range append(append([]string{}, in.Headings...), in.WideHeadings...) {
			if _, ok := in.Columns[h]; !ok {
				t.Errorf("%s: heading %s has no column template", k.Kind, h)
			}
		}
		if got, ok := Lookup(k.Plural); !ok || got.Kind != k.Kind {
			t.Errorf("plural %s does not resolve to %s", k.Plural, k.Kind)
		}
		if got, ok := Lookup(strings.ToUpper(k.Kind)); !ok || got.Kind != k.Kind {
			t.Errorf("kind name %s does not resolve", k.Kind)
		}
	}
}

func TestCalicoAliases(t *testing.T) {
	for alias, kind := range map[string]string{
		"pool": "IPPool", "ipp": "IPPool", "gnp": "GlobalNetworkPolicy", "hep": "HostEndpoint",
		"wep": "WorkloadEndpoint", "bgpp": "BGPPeer", "bp": "BGPPeer", "policy": "NetworkPolicy",
		"pol": "NetworkPolicy", "netsets": "NetworkSet", "gnetsets": "GlobalNetworkSet",
		"felixconfig": "FelixConfiguration", "bgpconfig": "BGPConfiguration", "clusterinfo": "ClusterInformation",
		"no": "Node", "pro": "Profile", "reservation": "IPReservation", "bf": "BGPFilter", "Tier": "Tier",
	} {
		if got, ok := Lookup(alias); !ok || got.Kind != kind {
			t.Errorf("%s: got %q, want %s", alias, got.Kind, kind)
		}
	}
	if _, ok := Lookup("pod"); ok {
		t.Error("pod should not resolve")
	}
}

func TestLowerCamel(t *testing.T) {
	for in, want := range map[string]string{"IPPool": "ipPool", "BGPPeer": "bgpPeer", "HostEndpoint": "hostEndpoint", "Tier": "tier"} {
		if got := lowerCamel(in); got != want {
			t.Errorf("%s: got %s want %s", in, got, want)
		}
	}
}
