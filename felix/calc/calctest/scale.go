package calctest

import (
	"fmt"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// Scale is the size of a ScaleUpdates datastore.
type Scale struct {
	Local, Remote int // WorkloadEndpoints on the local host, on others
	Policies      int // GlobalNetworkPolicies
	// Apps is how many distinct app labels the endpoints carry; a policy
	// selects one app, and sources mostly one app too, so a small set
	// holds about (Local+Remote)/Apps addresses.
	Apps int
	// Groups is how many "group" labels split the endpoints: a rule
	// allowing a group makes a large set of (Local+Remote)/Groups.
	Groups int
}

// Issue22Scale is issue 22's felix: 250 local endpoints, 100,000 remote,
// 5,000 policies, large sets of 20,000 addresses.
var Issue22Scale = Scale{Local: 250, Remote: 100_000, Policies: 5000, Apps: 1000, Groups: 5}

// ScaleUpdates is a datastore of sc's size, with local the host whose
// state is computed. Endpoints are in 10 namespaces on 1,000 other hosts,
// labelled app (of sc.Apps), tier (of 5) and group (of sc.Groups), with a
// named port. Policy i selects app i%Apps, so policies apply to the local
// endpoints' apps only (about Policies*Local/Apps of them); each allows
// the next app except one version (a small set), its group (a large
// set), a tier pair from team-1 namespaces to a named port and a range,
// and denies a net; egress allows another app. Local endpoint i has
// interface "caliw<i>".
func ScaleUpdates(local string, sc Scale) []syncer.Update {
	ups := make([]syncer.Update, 0, 10+sc.Local+sc.Remote+sc.Policies)
	ScaleBatches(local, sc, 1000, func(b []syncer.Update) { ups = append(ups, b...) })
	return ups
}

// ScaleBatches hands ScaleUpdates' updates to f, n at a time, making each
// batch only when it is due: the caller holds one batch at a time, as
// felix holds one syncer batch.
func ScaleBatches(local string, sc Scale, n int, f func([]syncer.Update)) {
	batch := make([]syncer.Update, 0, n)
	add := func(u syncer.Update) {
		if batch = append(batch, u); len(batch) == n {
			f(batch)
			batch = make([]syncer.Update, 0, n)
		}
	}
	for i := range 10 {
		add(Put(Profile(fmt.Sprintf("kns.ns%d", i), Labels("pcns.team", fmt.Sprint(i%3)), nil, nil)))
	}
	for i := range sc.Local + sc.Remote {
		add(Put(ScaleWEP(local, sc, i, 0)))
	}
	for i := range sc.Policies {
		add(Put(ScalePolicy(sc, i, 0)))
	}
	if len(batch) > 0 {
		f(batch)
	}
}

// ScaleWEP is endpoint i of ScaleUpdates; gen moves it to another group.
func ScaleWEP(local string, sc Scale, i, gen int) *v3.WorkloadEndpoint {
	node := local
	if i >= sc.Local {
		node = fmt.Sprintf("host-%d", i%1000)
	}
	w := WEP(fmt.Sprintf("ns%d", i%10), fmt.Sprintf("w%d", i), node,
		Labels("app", fmt.Sprintf("app%d", i%sc.Apps), "tier", fmt.Sprint(i%5), "group", fmt.Sprintf("g%d", (i+gen)%sc.Groups)), IPOf(i))
	w.Spec.Ports = []v3.WorkloadEndpointPort{{Name: "http", Protocol: v3.ProtocolFromString("TCP"), Port: 8080}}
	return w
}

// ScalePolicy is policy i of ScaleUpdates; gen changes its first rule.
func ScalePolicy(sc Scale, i, gen int) *v3.GlobalNetworkPolicy {
	return GNP(fmt.Sprintf("pol%d", i), Ord(float64(i%20)), fmt.Sprintf("app == 'app%d'", i%sc.Apps), []v3.Rule{
		AllowFrom(fmt.Sprintf("app == 'app%d' && ver != 'v%d'", (i+1+gen)%sc.Apps, i)),
		AllowFrom(fmt.Sprintf("group == 'g%d'", i%sc.Groups)),
		{Action: v3.Allow, Protocol: TCP(), Source: v3.EntityRule{Selector: fmt.Sprintf("tier in {'%d', '%d'}", i%5, (i+2)%5), NamespaceSelector: "team == '1'"},
			Destination: v3.EntityRule{Ports: []v3.Port{v3.NamedPort("http"), {MinPort: 9000, MaxPort: 9100}}}},
		{Action: v3.Deny, Source: v3.EntityRule{Nets: []string{"192.168.0.0/16"}}},
	}, []v3.Rule{AllowFrom(fmt.Sprintf("app == 'app%d' && ver != 'w%d'", (i+7)%sc.Apps, i))})
}
