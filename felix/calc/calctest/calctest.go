// Package calctest builds syncer updates for calc's tests and benchmarks,
// and for benchmarks elsewhere that drive the calculation graph with the
// same synthetic datastore (the dataplane's end-to-end benchmark).
package calctest

import (
	"fmt"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// Scale of the benchmark datastore, as issue 6 asks.
const (
	BenchLocal    = 100  // WorkloadEndpoints on the local host
	BenchRemote   = 5000 // WorkloadEndpoints on 200 other hosts
	BenchPolicies = 500  // GlobalNetworkPolicies
	BenchApps     = 50   // distinct app labels
)

// KeyOf returns the datastore key of r.
func KeyOf(r v3.Resource) model.ResourceKey {
	m := r.GetObjectMeta()
	return model.ResourceKey{Kind: r.GetTypeMeta().Kind, Namespace: m.Namespace, Name: m.Name}
}

// Put returns the update that creates (or replaces) r, defaulted.
func Put(r v3.Resource) syncer.Update {
	r.Default()
	return syncer.Update{Key: KeyOf(r), Value: r, Type: syncer.UpdateNew}
}

// WEP returns a k8s WorkloadEndpoint on node with interface "cali"+name
// and the namespace's profile.
func WEP(ns, name, node string, labels map[string]string, ips ...string) *v3.WorkloadEndpoint {
	w := v3.NewWorkloadEndpoint()
	w.Namespace, w.Name, w.Labels = ns, name, labels
	w.Spec = v3.WorkloadEndpointSpec{
		Orchestrator: "k8s", Node: node, Pod: name, Endpoint: "eth0",
		InterfaceName: "cali" + name, IPNetworks: ips,
		Profiles: []string{"kns." + ns},
	}
	return w
}

// GNP returns a GlobalNetworkPolicy.
func GNP(name string, order *float64, sel string, ingress, egress []v3.Rule) *v3.GlobalNetworkPolicy {
	p := v3.NewGlobalNetworkPolicy()
	p.Name = name
	p.Spec = v3.GlobalNetworkPolicySpec{Order: order, Selector: sel, Ingress: ingress, Egress: egress}
	return p
}

// Profile returns a Profile.
func Profile(name string, labels map[string]string, ingress, egress []v3.Rule) *v3.Profile {
	p := v3.NewProfile()
	p.Name = name
	p.Spec = v3.ProfileSpec{LabelsToApply: labels, Ingress: ingress, Egress: egress}
	return p
}

// Ord returns a pointer to f, for policy and tier orders.
func Ord(f float64) *float64 { return &f }

// TCP returns a pointer to the TCP protocol.
func TCP() *v3.Protocol { p := v3.ProtocolFromString("TCP"); return &p }

// AllowFrom is an Allow rule for sources matching sel.
func AllowFrom(sel string) v3.Rule {
	return v3.Rule{Action: v3.Allow, Source: v3.EntityRule{Selector: sel}}
}

// Labels builds a label map from key, value pairs.
func Labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// IPOf returns a distinct /32 for each i.
func IPOf(i int) string { return fmt.Sprintf("10.%d.%d.%d/32", (i>>16)&255, (i>>8)&255, i&255) }

// BenchUpdates is the whole datastore at benchmark scale, with local the
// name of the host whose state is computed: endpoints in 10 namespaces
// (BenchLocal on local, BenchRemote on 200 other hosts) with app/tier
// labels and a named port, and BenchPolicies policies whose rules use
// ~1,000 distinct selectors (each matching ~100 endpoints), named ports
// and port ranges. Local endpoint i has interface "caliw<i>".
func BenchUpdates(local string) []syncer.Update {
	var ups []syncer.Update
	for i := range 10 {
		ups = append(ups, Put(Profile(fmt.Sprintf("kns.ns%d", i), Labels("pcns.team", fmt.Sprint(i%3)), nil, nil)))
	}
	for i := range BenchLocal + BenchRemote {
		node := local
		if i >= BenchLocal {
			node = fmt.Sprintf("host-%d", i%200)
		}
		w := WEP(fmt.Sprintf("ns%d", i%10), fmt.Sprintf("w%d", i), node,
			Labels("app", fmt.Sprintf("app%d", i%BenchApps), "tier", fmt.Sprint(i%5)), IPOf(i))
		w.Spec.Ports = []v3.WorkloadEndpointPort{{Name: "http", Protocol: v3.ProtocolFromString("TCP"), Port: 8080}}
		ups = append(ups, Put(w))
	}
	for i := range BenchPolicies {
		app := fmt.Sprintf("app%d", i%BenchApps)
		p := GNP(fmt.Sprintf("pol%d", i), Ord(float64(i%20)), fmt.Sprintf("app == '%s'", app), []v3.Rule{
			AllowFrom(fmt.Sprintf("app == 'app%d' && ver != 'v%d'", (i+1)%BenchApps, i)),
			{Action: v3.Allow, Protocol: TCP(), Source: v3.EntityRule{Selector: fmt.Sprintf("tier in {'%d', '%d'}", i%5, (i+2)%5), NamespaceSelector: "team == '1'"},
				Destination: v3.EntityRule{Ports: []v3.Port{v3.NamedPort("http"), {MinPort: 9000, MaxPort: 9100}}}},
			{Action: v3.Deny, Source: v3.EntityRule{Nets: []string{"192.168.0.0/16"}}},
		}, []v3.Rule{AllowFrom(fmt.Sprintf("app == 'app%d' && ver != 'w%d'", (i+7)%BenchApps, i))})
		ups = append(ups, Put(p))
	}
	return ups
}

// BenchPolicyChange is the i'th edit of one policy (pol7, which applies
// to local endpoints) of BenchUpdates: its rules become one ingress rule
// whose source selector depends on i.
func BenchPolicyChange(i int) syncer.Update {
	return Put(GNP("pol7", Ord(3), "app == 'app7'",
		[]v3.Rule{AllowFrom(fmt.Sprintf("tier == '%d' && app == 'app%d'", i%5, i%BenchApps))}, nil))
}
