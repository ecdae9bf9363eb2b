package calc

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

const me = "host-a"

func keyOf(r v3.Resource) model.ResourceKey {
	m := r.GetObjectMeta()
	return model.ResourceKey{Kind: r.GetTypeMeta().Kind, Namespace: m.Namespace, Name: m.Name}
}

func put(r v3.Resource) syncer.Update {
	r.Default()
	return syncer.Update{Key: keyOf(r), Value: r, Type: syncer.UpdateNew}
}

func del(r v3.Resource) syncer.Update {
	return syncer.Update{Key: keyOf(r), Type: syncer.UpdateDeleted}
}

func wep(ns, name, node string, labels map[string]string, ips ...string) *v3.WorkloadEndpoint {
	w := v3.NewWorkloadEndpoint()
	w.Namespace, w.Name, w.Labels = ns, name, labels
	w.Spec = v3.WorkloadEndpointSpec{
		Orchestrator: "k8s", Node: node, Pod: name, Endpoint: "eth0",
		InterfaceName: "cali" + name, IPNetworks: ips,
		Profiles: []string{"kns." + ns},
	}
	return w
}

func hep(name, node, iface string, labels map[string]string, ips ...string) *v3.HostEndpoint {
	h := v3.NewHostEndpoint()
	h.Name, h.Labels = name, labels
	h.Spec = v3.HostEndpointSpec{Node: node, InterfaceName: iface, ExpectedIPs: ips}
	return h
}

func gnp(name string, order *float64, sel string, ingress, egress []v3.Rule) *v3.GlobalNetworkPolicy {
	p := v3.NewGlobalNetworkPolicy()
	p.Name = name
	p.Spec = v3.GlobalNetworkPolicySpec{Order: order, Selector: sel, Ingress: ingress, Egress: egress}
	return p
}

func np(ns, name string, order *float64, sel string, ingress, egress []v3.Rule) *v3.NetworkPolicy {
	p := v3.NewNetworkPolicy()
	p.Namespace, p.Name = ns, name
	p.Spec = v3.NetworkPolicySpec{Order: order, Selector: sel, Ingress: ingress, Egress: egress}
	return p
}

func profileRes(name string, labels map[string]string, ingress, egress []v3.Rule) *v3.Profile {
	p := v3.NewProfile()
	p.Name = name
	p.Spec = v3.ProfileSpec{LabelsToApply: labels, Ingress: ingress, Egress: egress}
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

func ord(f float64) *float64 { return &f }

func tcp() *v3.Protocol { p := v3.ProtocolFromString("TCP"); return &p }

func allowFrom(sel string) v3.Rule {
	return v3.Rule{Action: v3.Allow, Source: v3.EntityRule{Selector: sel}}
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
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

func ipOf(i int) string { return fmt.Sprintf("10.%d.%d.%d/32", (i>>16)&255, (i>>8)&255, i&255) }
