package calc

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// What the configuration-dependent parts of the dataplane need from the
// datastore: rule annotations (iptables comments), a workload's
// allowSpoofedSourcePrefixes, the service ranges BGPConfiguration
// "default" advertises (service loop prevention) and other hosts'
// workload addresses (RouteSource WorkloadIPs).
func TestStateCarriesOptionInputs(t *testing.T) {
	g := New(me, nil)
	local := wep("ns", "a", me, lbl("app", "web"), "10.1.0.1/32")
	local.Spec.AllowSpoofedSourcePrefixes = []string{"10.99.0.0/24"}
	pol := gnp("annotated", ord(1), "all()", []v3.Rule{{Action: v3.Allow,
		Metadata: &v3.RuleMetadata{Annotations: map[string]string{"team": "net", "ticket": "OPS-1"}}}}, nil)
	bgp := v3.NewBGPConfiguration()
	bgp.Name = "default"
	bgp.Spec.ServiceClusterIPs = []v3.ServiceClusterIPBlock{{CIDR: "10.96.0.0/12"}}
	bgp.Spec.ServiceExternalIPs = []v3.ServiceExternalIPBlock{{CIDR: "192.0.2.0/24"}}
	bgp.Spec.ServiceLoadBalancerIPs = []v3.ServiceLoadBalancerIPBlock{{CIDR: "fd00:96::/112"}}
	nodeBGP := v3.NewBGPConfiguration()
	nodeBGP.Name = "node.host-a"
	g.OnUpdates([]syncer.Update{put(local), put(pol), put(bgp), put(nodeBGP),
		put(wep("ns", "b", "host-b", nil, "10.1.1.5/32")), put(wep("ns", "c", "host-c", nil, "10.1.2.6/32"))})
	g.OnStatusUpdated(syncer.InSync)
	s := g.State()

	w := s.Workloads[wepID("ns", local.Name)]
	if w == nil || !slices.Equal(w.AllowSpoofedSourcePrefixes, []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}) {
		t.Errorf("workload %+v", w)
	}
	p := s.Policies[dpapi.PolicyID{Tier: "default", Name: "annotated"}]
	if p == nil || len(p.Inbound) != 1 || !slices.Equal(p.Inbound[0].Annotations, []string{"team=net", "ticket=OPS-1"}) {
		t.Errorf("policy %+v", p)
	}
	wantSvc := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("fd00:96::/112")}
	if !slices.Equal(s.ServiceCIDRs, wantSvc) {
		t.Errorf("service CIDRs %v", s.ServiceCIDRs)
	}
	wantRemote := []dpapi.RemoteBlock{{CIDR: netip.MustParsePrefix("10.1.1.5/32"), Host: "host-b"}, {CIDR: netip.MustParsePrefix("10.1.2.6/32"), Host: "host-c"}}
	if !slices.Equal(s.RemoteWorkloads, wantRemote) {
		t.Errorf("remote workloads %v", s.RemoteWorkloads)
	}

	// Deletions.
	g.OnUpdates([]syncer.Update{del(bgp), del(wep("ns", "b", "host-b", nil))})
	s = g.State()
	if len(s.ServiceCIDRs) != 0 || len(s.RemoteWorkloads) != 1 || s.RemoteWorkloads[0].Host != "host-c" {
		t.Errorf("after deletions: services %v remote %v", s.ServiceCIDRs, s.RemoteWorkloads)
	}
}
