package calc

import (
	"net/netip"
	"testing"

	"github.com/calico-etcd/calico/felix/calc/calctest"
	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

const me = "host-a"

// The resource builders shared with calctest's benchmark datastore.
var (
	keyOf      = calctest.KeyOf
	put        = calctest.Put
	wep        = calctest.WEP
	gnp        = calctest.GNP
	profileRes = calctest.Profile
	ord        = calctest.Ord
	tcp        = calctest.TCP
	allowFrom  = calctest.AllowFrom
	lbl        = calctest.Labels
	ipOf       = calctest.IPOf
)

func del(r v3.Resource) syncer.Update {
	return syncer.Update{Key: keyOf(r), Type: syncer.UpdateDeleted}
}

func hep(name, node, iface string, labels map[string]string, ips ...string) *v3.HostEndpoint {
	h := v3.NewHostEndpoint()
	h.Name, h.Labels = name, labels
	h.Spec = v3.HostEndpointSpec{Node: node, InterfaceName: iface, ExpectedIPs: ips}
	return h
}

func np(ns, name string, order *float64, sel string, ingress, egress []v3.Rule) *v3.NetworkPolicy {
	p := v3.NewNetworkPolicy()
	p.Namespace, p.Name = ns, name
	p.Spec = v3.NetworkPolicySpec{Order: order, Selector: sel, Ingress: ingress, Egress: egress}
	return p
}

func tierRes(name string, order float64, action v3.Action) *v3.Tier {
	t := v3.NewTier()
	t.Name = name
	t.Spec.Order = &order
	t.Spec.DefaultAction = &action
	return t
}

func gns(name string, labels map[string]string, nets ...string) *v3.GlobalNetworkSet {
	n := v3.NewGlobalNetworkSet()
	n.Name, n.Labels, n.Spec.Nets = name, labels, nets
	return n
}

func nset(ns, name string, labels map[string]string, nets ...string) *v3.NetworkSet {
	n := v3.NewNetworkSet()
	n.Namespace, n.Name, n.Labels, n.Spec.Nets = ns, name, labels, nets
	return n
}

// run feeds updates to a fresh graph, in sync, and returns its state.
func run(t testing.TB, ups ...syncer.Update) (*Graph, *dpapi.State) {
	t.Helper()
	g := New(me, nil)
	g.OnUpdates(ups)
	g.OnStatusUpdated(syncer.InSync)
	return g, g.State()
}

// setOf returns the members of the IP set a rule references first.
func setOf(t testing.TB, st *dpapi.State, id string) []string {
	t.Helper()
	s, ok := st.IPSets[id]
	if !ok {
		t.Fatalf("IP set %s not in state (have %d sets)", id, len(st.IPSets))
	}
	return s.Members
}

func pid(ns, name string) dpapi.PolicyID {
	return dpapi.PolicyID{Tier: "default", Namespace: ns, Name: name}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
