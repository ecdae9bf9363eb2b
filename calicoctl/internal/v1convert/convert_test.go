package v1convert

import (
	"net/netip"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func TestNames(t *testing.T) {
	if got := cidrToName(netip.MustParsePrefix("10.0.0.0/16")); got != "10-0-0-0-16" {
		t.Error(got)
	}
	if got := cidrToName(netip.MustParsePrefix("fd00:1::/64")); got != "fd00-1---64" {
		t.Error(got)
	}
	if got := ipToName(netip.MustParseAddr("192.168.1.1")); got != "192-168-1-1" {
		t.Error(got)
	}
	if got := ipToName(netip.MustParseAddr("aa:bb::1")); got != "00aa-00bb-0000-0000-0000-0000-0000-0001" {
		t.Error(got)
	}
	for in, want := range map[string]string{"Node_1.Example": "node-1.example", "-a--b.-c-": "a--b.c", "rack1/host1": "rack1.host1"} {
		if got := normalizeName(in); got != want {
			t.Errorf("normalize %q: %q want %q", in, got, want)
		}
	}
	if got := convertName("ok-name"); got != "ok-name" {
		t.Error(got)
	}
	if got := convertName("Bad_Name"); !strings.HasPrefix(got, "bad-name-") || len(got) != len("bad-name-")+8 {
		t.Error(got)
	}
	if got := convertProfileName("k8s_ns.default"); !strings.HasPrefix(got, "kns.default") {
		t.Error(got)
	}
	if got := mergeTag("has(calico/k8s_ns)", "tag1"); got != "(has(calico/k8s_ns)) && tag1 == ''" {
		t.Error(got)
	}
	if got := convertSelector("calico/k8s_ns in {'default'}"); got != "projectcalico.org/namespace in {'default'}" {
		t.Error(got)
	}
}

func TestIPPoolExample(t *testing.T) {
	rs, err := Convert([]byte(`apiVersion: v1
kind: ipPool
metadata:
  cidr: 10.1.0.0/16
spec:
  ipip:
    enabled: true
    mode: cross-subnet
  nat-outgoing: true
  disabled: false
`))
	if err != nil {
		t.Fatal(err)
	}
	p := rs[0].(*v3.IPPool)
	if p.Name != "10-1-0-0-16" || p.Spec.IPIPMode != v3.IPIPModeCrossSubnet || !p.Spec.NATOutgoing || p.Spec.BlockSize != 26 {
		t.Fatalf("%+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	for name, c := range map[string]struct{ in, want string }{
		"unknown field":   {"apiVersion: v1\nkind: ipPool\nmetadata:\n  cidr: 10.0.0.0/8\nspec:\n  nat_outgoing: true\n", `unknown field "nat_outgoing"`},
		"unknown kind":    {"apiVersion: v1\nkind: tier\nmetadata:\n  name: a\n", "conversion for the resource type 'tier' is not supported"},
		"v3 input":        {"apiVersion: projectcalico.org/v3\nkind: IPPool\n", `unsupported apiVersion "projectcalico.org/v3"`},
		"bad cidr":        {"apiVersion: v1\nkind: ipPool\nmetadata:\n  cidr: 10.0.0.300/8\n", "metadata.cidr = '10.0.0.300/8'"},
		"bad ipip mode":   {"apiVersion: v1\nkind: ipPool\nmetadata:\n  cidr: 10.0.0.0/8\nspec:\n  ipip:\n    enabled: true\n    mode: sometimes\n", "spec.ipip.mode = 'sometimes'"},
		"bad scope":       {"apiVersion: v1\nkind: bgpPeer\nmetadata:\n  peerIP: 1.2.3.4\n  scope: cluster\nspec:\n  asNumber: 1\n", "metadata.scope = 'cluster'"},
		"malformed":       {"apiVersion: v1\nkind: [\n", "document 1"},
		"bad k8s wep":     {"apiVersion: v1\nkind: workloadEndpoint\nmetadata:\n  name: eth0\n  workload: nodot\n  orchestrator: k8s\n  node: host1\n", "malformed k8s workload ID"},
		"tag label clash": {"apiVersion: v1\nkind: profile\nmetadata:\n  name: p\n  tags: [a]\n  labels:\n    a: b\n", "have the same value"},
	} {
		_, err := Convert([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
}

func TestListAndTagsAndTypes(t *testing.T) {
	rs, err := Convert([]byte(`- apiVersion: v1
  kind: policy
  metadata:
    name: Allow_All
  spec:
    selector: calico/k8s_ns == 'prod'
    egress:
    - action: next-tier
      source:
        tag: web
        net: 10.0.0.5/24
- apiVersion: v1
  kind: bgpPeer
  metadata:
    peerIP: 192.168.1.1
    scope: node
    node: Rack1-Host1
  spec:
    asNumber: 63400
`))
	if err != nil {
		t.Fatal(err)
	}
	p := rs[0].(*v3.GlobalNetworkPolicy)
	if !strings.HasPrefix(p.Name, "default.allow-all-") || p.Spec.Selector != "projectcalico.org/namespace == 'prod'" {
		t.Errorf("%s %s", p.Name, p.Spec.Selector)
	}
	if len(p.Spec.Types) != 1 || p.Spec.Types[0] != v3.PolicyTypeEgress {
		t.Errorf("types %v", p.Spec.Types)
	}
	e := p.Spec.Egress[0]
	if e.Action != v3.Pass || e.Source.Selector != "web == ''" || e.Source.Nets[0] != "10.0.0.0/24" {
		t.Errorf("%+v", e)
	}
	b := rs[1].(*v3.BGPPeer)
	if b.Name != "rack1-host1.192-168-1-1" || b.Spec.Node != "rack1-host1" || b.Spec.ASNumber != 63400 {
		t.Errorf("%+v", b)
	}
}
