// Package calc is felix's calculation graph: pure code that turns
// datastore updates into the desired dataplane state of one host.
//
//	syncer updates ──► Graph.OnUpdates ──┬─ local endpoints ──┐
//	                                     ├─ policies, tiers ──┼─► resolve: per-endpoint ordered
//	                                     ├─ profiles ─────────┘   tier/policy lists, active
//	                                     │                        policies and profiles
//	                                     ├─ every endpoint and ──► index: active rule selector →
//	                                     │  network set             matching items → IP set members
//	                                     └─ pools, blocks, nodes
//	Graph.State() ──► *dpapi.State (its maps and the objects they point to are never modified)
//
// The graph does no I/O beyond logging. Work is split so that one change
// costs what it touches: an endpoint or network set change re-evaluates
// the active selectors against that one item and patches the IP sets it
// joins or leaves; a policy change reconverts that policy and evaluates
// its selector against the (few) local endpoints; a local endpoint change
// evaluates every policy's selector against it. Only the local endpoints
// whose matching policies changed have their policy lists rebuilt (all of
// them when a tier changes).
package calc

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// DefaultAllowProfile is the built-in profile that allows everything; the
// datastore synthesizes it on read and never stores it, so the graph
// supplies it too.
const DefaultAllowProfile = "projectcalico-default-allow"

// Graph is the calculation graph of one host. It is not safe for
// concurrent use: feed it from one goroutine.
type Graph struct {
	hostname string
	log      *logrus.Entry

	idx *index
	// labelSets shares equal label maps between items.
	labelSets *labelSets
	// polHints indexes policies for matchPolicies; nil after a policy
	// change.
	polHints *policyHints
	// implicitLabels are the endpoints' implicit label maps by namespace,
	// orchestrator and service account, dropped when labelSets sweeps.
	implicitLabels map[[3]string]map[string]string
	weps           map[dpapi.WorkloadID]*endpoint // local
	heps           map[string]*endpoint           // local
	policies       map[dpapi.PolicyID]*policy
	polByKey       map[model.ResourceKey]dpapi.PolicyID // the tier is in the value, not the key
	tiers          map[string]*tier
	profiles       map[string]*profile
	// missing holds the deny profiles that stand in for profiles local
	// endpoints list but that do not exist (see denyProfile), so that
	// each State hands the dataplane the same objects.
	missing map[string]*profile
	pools   cow[string, *dpapi.Pool]
	nodes   cow[string, *dpapi.Host]
	blocks  map[netip.Prefix]string // block → affine host
	affs    map[model.BlockAffinityKey]bool
	// remote holds other hosts' workload addresses, and remoteList their
	// sorted form as of the last State; remoteAdd and remoteDrop are the
	// entries to add to it and take from it, unless remoteRebuild says
	// there are too many to merge.
	remote                map[dpapi.WorkloadID]remoteWorkload
	remoteList            []dpapi.RemoteBlock
	remoteAdd, remoteDrop []dpapi.RemoteBlock
	remoteRebuild         bool
	// services are the service ranges BGPConfiguration "default" advertises.
	services []netip.Prefix
	numWEPs  int
	numHEPs  int
	inSync   bool
	dirty    bool // resolve is due
	// usesChanged: a policy, profile or tier changed since resolve last
	// worked out which of them (and which IP sets) local endpoints use.
	usesChanged bool
	updates     uint64
	resolved    resolved
	// applies holds, per local endpoint (by item key), the policies whose
	// selector matches it. rematchEP and rematchPol name the endpoints and
	// policies changed since it was brought up to date, stale the local
	// endpoints whose policy lists need rebuilding (allStale: all).
	applies    map[string]map[dpapi.PolicyID]*policy
	rematchEP  map[string]bool
	rematchPol map[dpapi.PolicyID]bool
	stale      map[string]bool
	allStale   bool
}

// remoteWorkload is another host's workload endpoint, for routes to it.
type remoteWorkload struct {
	host string
	nets []netip.Prefix
}

// resolved is the output of the last resolve.
type resolved struct {
	workloads cow[dpapi.WorkloadID, *dpapi.Workload]
	hostEPs   cow[string, *dpapi.HostEndpoint]
	// policies and profiles are made anew by each resolve.
	policies map[dpapi.PolicyID]*dpapi.Policy
	profiles map[string]*dpapi.Profile
	// sets are the IP sets the used policies and profiles refer to.
	sets usedSets
	// usedPols is resolve's scratch map, kept emptied between calls.
	usedPols map[dpapi.PolicyID]*policy
}

// New returns an empty graph for the host named hostname. log may be nil.
func New(hostname string, log *logrus.Entry) *Graph {
	if log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		log = logrus.NewEntry(l)
	}
	g := &Graph{
		hostname:       hostname,
		log:            log,
		idx:            newIndex(),
		labelSets:      newLabelSets(),
		implicitLabels: map[[3]string]map[string]string{},
		weps:           map[dpapi.WorkloadID]*endpoint{},
		heps:           map[string]*endpoint{},
		policies:       map[dpapi.PolicyID]*policy{},
		polByKey:       map[model.ResourceKey]dpapi.PolicyID{},
		tiers:          map[string]*tier{},
		profiles:       map[string]*profile{},
		missing:        map[string]*profile{},
		pools:          newCow[string, *dpapi.Pool](),
		nodes:          newCow[string, *dpapi.Host](),
		blocks:         map[netip.Prefix]string{},
		affs:           map[model.BlockAffinityKey]bool{},
		remote:         map[dpapi.WorkloadID]remoteWorkload{},
		dirty:          true,
		resolved: resolved{
			workloads: newCow[dpapi.WorkloadID, *dpapi.Workload](),
			hostEPs:   newCow[string, *dpapi.HostEndpoint](),
			sets:      newUsedSets(),
		},
		applies:    map[string]map[dpapi.PolicyID]*policy{},
		rematchEP:  map[string]bool{},
		rematchPol: map[dpapi.PolicyID]bool{},
		stale:      map[string]bool{},
	}
	g.putProfile(DefaultAllowProfile, nil)
	return g
}

// OnStatusUpdated records the syncer's status; the state is InSync from
// the first InSync on.
func (g *Graph) OnStatusUpdated(s syncer.Status) {
	if s == syncer.InSync {
		g.inSync = true
	}
}

// OnUpdates applies a batch of datastore changes. Values it cannot use
// are logged and treated as deletions.
func (g *Graph) OnUpdates(ups []syncer.Update) {
	for i := range ups {
		g.onUpdate(&ups[i])
	}
	g.updates += uint64(len(ups))
}

func (g *Graph) onUpdate(u *syncer.Update) {
	switch k := u.Key.(type) {
	case model.ResourceKey:
		g.onResource(k, u.Value)
	case model.BlockKey:
		if b, ok := u.Value.(*model.AllocationBlock); ok && b.Host() != "" {
			g.blocks[k.CIDR] = b.Host()
		} else {
			delete(g.blocks, k.CIDR)
		}
	case model.BlockAffinityKey:
		if a, ok := u.Value.(*model.BlockAffinity); ok && !a.Deleted && a.State != model.AffinityPendingDeletion {
			g.affs[k] = true
		} else {
			delete(g.affs, k)
		}
	}
}

func (g *Graph) onResource(k model.ResourceKey, v any) {
	// log is for warnings only: a field costs two allocations per update.
	log := func() *logrus.Entry { return g.log.WithField("key", k.String()) }
	switch k.Kind {
	case v3.KindWorkloadEndpoint:
		g.onWorkload(k, v)
	case v3.KindHostEndpoint:
		g.onHostEndpoint(k, v)
	case v3.KindNetworkSet, v3.KindGlobalNetworkSet:
		key := netsetItemKey(k.Namespace, k.Name)
		switch r := v.(type) {
		case *v3.NetworkSet:
			g.putItem(netsetItem(k.Namespace, k.Name, r.Labels, r.Spec.Nets))
		case *v3.GlobalNetworkSet:
			g.putItem(netsetItem("", k.Name, r.Labels, r.Spec.Nets))
		default:
			g.idx.deleteItem(key)
		}
	case v3.KindNetworkPolicy, v3.KindGlobalNetworkPolicy:
		if old, ok := g.polByKey[k]; ok {
			delete(g.policies, old)
			delete(g.polByKey, k)
			g.rematchPol[old] = true
		}
		g.dirty, g.usesChanged = true, true
		if v == nil {
			return
		}
		p, errs := policyOf(v)
		for _, err := range errs {
			log().WithError(err).Warn("Ignoring invalid part of policy")
		}
		if p != nil {
			g.policies[p.id] = p
			g.polByKey[k] = p.id
			g.rematchPol[p.id] = true
		}
	case v3.KindTier:
		g.dirty, g.allStale, g.usesChanged = true, true, true
		if t, ok := v.(*v3.Tier); ok {
			g.tiers[k.Name] = tierOf(t)
		} else {
			delete(g.tiers, k.Name)
		}
	case v3.KindProfile:
		if p, ok := v.(*v3.Profile); ok {
			g.putProfile(k.Name, p)
		} else {
			g.putProfile(k.Name, nil)
		}
	case v3.KindIPPool:
		p, ok := v.(*v3.IPPool)
		if !ok {
			g.pools.del(k.Name)
			return
		}
		dp, err := poolOf(p)
		if err != nil {
			log().WithError(err).Warn("Ignoring IP pool with invalid CIDR")
			g.pools.del(k.Name)
			return
		}
		g.pools.set(k.Name, dp)
	case v3.KindBGPConfiguration:
		if k.Name != "default" {
			return
		}
		g.services = nil
		if c, ok := v.(*v3.BGPConfiguration); ok {
			g.services = serviceCIDRs(c)
		}
	case v3.KindNode:
		if n, ok := v.(*v3.Node); ok {
			g.nodes.set(k.Name, hostOf(n))
		} else {
			g.nodes.del(k.Name)
		}
	}
}

func (g *Graph) onWorkload(k model.ResourceKey, v any) {
	id := wepID(k.Namespace, k.Name)
	key := wepItemKey(id)
	_, existed := g.idx.items[key]
	if _, wasLocal := g.weps[id]; wasLocal {
		delete(g.weps, id)
		delete(g.applies, key)
		g.dirty = true
	}
	w, ok := v.(*v3.WorkloadEndpoint)
	var it *item
	if ok {
		it = wepItem(w, g.wepImplicit)
	}
	g.setRemote(id, w, it)
	if !ok {
		if existed {
			g.numWEPs--
		}
		g.idx.deleteItem(key)
		return
	}
	if !existed {
		g.numWEPs++
	}
	g.putItem(it)
	if w.Spec.Node == g.hostname {
		g.weps[id] = &endpoint{key: it.key, workload: workloadOf(w), profiles: w.Spec.Profiles}
		g.rematchEP[it.key] = true
		g.dirty = true
	}
}

// setRemote records workload id's addresses if it is another host's (w
// nil: deleted), and the change to the remote list.
func (g *Graph) setRemote(id dpapi.WorkloadID, w *v3.WorkloadEndpoint, it *item) {
	old, had := g.remote[id]
	var now remoteWorkload
	is := w != nil && w.Spec.Node != g.hostname && w.Spec.Node != "" && len(it.nets) > 0
	if is {
		now = remoteWorkload{host: w.Spec.Node, nets: it.nets}
	}
	if had == is && old.host == now.host && slices.Equal(old.nets, now.nets) {
		return
	}
	switch {
	case g.remoteRebuild:
	case len(g.remoteAdd)+len(g.remoteDrop) > remoteMergeMax(len(g.remoteList)):
		g.remoteRebuild, g.remoteAdd, g.remoteDrop = true, nil, nil
	default:
		for _, n := range old.nets {
			g.remoteDrop = append(g.remoteDrop, dpapi.RemoteBlock{CIDR: n, Host: old.host})
		}
		for _, n := range now.nets {
			g.remoteAdd = append(g.remoteAdd, dpapi.RemoteBlock{CIDR: n, Host: now.host})
		}
	}
	if is {
		g.remote[id] = now
	} else {
		delete(g.remote, id)
	}
}

// cmpRemote orders remote blocks by address, host, then prefix length.
func cmpRemote(a, b dpapi.RemoteBlock) int {
	return cmp.Or(a.CIDR.Addr().Compare(b.CIDR.Addr()), strings.Compare(a.Host, b.Host), cmp.Compare(a.CIDR.Bits(), b.CIDR.Bits()))
}

// remoteMergeMax is how many changes remoteWorkloads merges into a list
// of n; more rebuild it.
func remoteMergeMax(n int) int { return 64 + n/8 }

// remoteWorkloads returns the sorted remote workload addresses, shared
// between States until the next change. A few changes are merged into
// the last list; many rebuild it.
func (g *Graph) remoteWorkloads() []dpapi.RemoteBlock {
	add, drop := g.remoteAdd, g.remoteDrop
	if len(add)+len(drop) == 0 && !g.remoteRebuild {
		return g.remoteList
	}
	g.remoteAdd, g.remoteDrop = nil, nil
	var out []dpapi.RemoteBlock
	if g.remoteRebuild || len(add)+len(drop) > remoteMergeMax(len(g.remoteList)) {
		g.remoteRebuild = false
		out = make([]dpapi.RemoteBlock, 0, len(g.remote))
		for _, r := range g.remote {
			for _, n := range r.nets {
				out = append(out, dpapi.RemoteBlock{CIDR: n, Host: r.host})
			}
		}
		slices.SortFunc(out, cmpRemote)
	} else {
		// Dropped entries are either added since the last list or in it.
		dropped := map[dpapi.RemoteBlock]int{}
		for _, b := range drop {
			dropped[b]++
		}
		add = slices.DeleteFunc(add, func(b dpapi.RemoteBlock) bool {
			if dropped[b] > 0 {
				dropped[b]--
				return true
			}
			return false
		})
		slices.SortFunc(add, cmpRemote)
		out = make([]dpapi.RemoteBlock, 0, len(g.remoteList)+len(add))
		for _, b := range g.remoteList {
			for len(add) > 0 && cmpRemote(add[0], b) < 0 {
				out, add = append(out, add[0]), add[1:]
			}
			if dropped[b] > 0 {
				dropped[b]--
				continue
			}
			out = append(out, b)
		}
		out = append(out, add...)
	}
	if len(out) == 0 {
		out = nil
	}
	g.remoteList = out
	return out
}

func (g *Graph) onHostEndpoint(k model.ResourceKey, v any) {
	key := hepItemKey(k.Name)
	_, existed := g.idx.items[key]
	if _, wasLocal := g.heps[k.Name]; wasLocal {
		delete(g.heps, k.Name)
		delete(g.applies, key)
		g.dirty = true
	}
	h, ok := v.(*v3.HostEndpoint)
	if !ok {
		if existed {
			g.numHEPs--
		}
		g.idx.deleteItem(key)
		return
	}
	if !existed {
		g.numHEPs++
	}
	it := hepItem(h)
	g.putItem(it)
	if h.Spec.Node == g.hostname {
		g.heps[k.Name] = &endpoint{key: it.key, host: hostEndpointOf(h), profiles: h.Spec.Profiles}
		g.rematchEP[it.key] = true
		g.dirty = true
	}
}

func (g *Graph) profileLabels(name string) map[string]string {
	if p, ok := g.profiles[name]; ok {
		return p.labels
	}
	return nil
}

func (g *Graph) putItem(it *item) {
	it.labels = g.labelSets.labels(it, func(out map[string]string, it *item) {
		computeLabels(out, it, g.profileLabels)
	})
	g.idx.upsertItem(it)
	if g.labelSets.sweep(g.idx.items) {
		clear(g.implicitLabels)
	}
}

// wepImplicit is wepImplicit, sharing one map per distinct set of labels.
func (g *Graph) wepImplicit(ns, orchestrator, sa string) map[string]string {
	k := [3]string{ns, orchestrator, sa}
	m, ok := g.implicitLabels[k]
	if !ok {
		m = g.labelSets.share(wepImplicit(ns, orchestrator, sa))
		g.implicitLabels[k] = m
	}
	return m
}

// putProfile stores (or with r nil deletes) a profile, and relabels the
// items that inherit from it when its labels changed.
func (g *Graph) putProfile(name string, r *v3.Profile) {
	g.dirty, g.usesChanged = true, true
	old := g.profiles[name]
	switch {
	case r != nil:
		p, errs := profileOf(name, r)
		if len(errs) > 0 {
			g.log.WithError(errors.Join(errs...)).WithField("profile", name).Warn("Invalid profile; its endpoints get deny rules in its place")
		}
		g.profiles[name] = p
	case name == DefaultAllowProfile:
		p, _ := profileOf(name, &v3.Profile{
			ObjectMeta: v3.ObjectMeta{Name: name},
			Spec:       v3.ProfileSpec{Ingress: []v3.Rule{{Action: v3.Allow}}, Egress: []v3.Rule{{Action: v3.Allow}}},
		})
		g.profiles[name] = p
	default:
		delete(g.profiles, name)
	}
	var oldLabels map[string]string
	if old != nil {
		oldLabels = old.labels
	}
	if equalLabels(oldLabels, g.profileLabels(name)) {
		return
	}
	g.labelSets.forgetMerged()
	for _, it := range g.idx.items {
		if it.inherits(name) {
			cp := *it
			g.putItem(&cp)
		}
	}
	for _, ep := range g.localEndpoints() {
		if g.idx.items[ep.key].inherits(name) {
			g.rematchEP[ep.key] = true
		}
	}
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Stats counts what the graph holds, for metrics.
type Stats struct {
	UpdatesProcessed     uint64
	LocalEndpoints       int
	ActivePolicies       int
	ActiveSelectors      int
	ClusterHosts         int
	ClusterPolicies      int
	ClusterProfiles      int
	ClusterWorkloads     int
	ClusterHostEndpoints int
}

// Stats returns the current counts; call after State for the active ones.
func (g *Graph) Stats() Stats {
	return Stats{
		UpdatesProcessed:     g.updates,
		LocalEndpoints:       len(g.weps) + len(g.heps),
		ActivePolicies:       len(g.resolved.policies),
		ActiveSelectors:      len(g.idx.sets),
		ClusterHosts:         len(g.nodes.m),
		ClusterPolicies:      len(g.policies),
		ClusterProfiles:      len(g.profiles),
		ClusterWorkloads:     g.numWEPs,
		ClusterHostEndpoints: g.numHEPs,
	}
}

// LocalWorkloads returns the IDs of this host's workload endpoints, sorted.
func (g *Graph) LocalWorkloads() []dpapi.WorkloadID {
	out := make([]dpapi.WorkloadID, 0, len(g.weps))
	for id := range g.weps {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
