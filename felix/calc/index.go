package calc

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/calico-etcd/calico/felix/dpapi"
)

// item is anything a rule selector can match, cluster-wide: a workload or
// host endpoint (local or remote) or a network set.
type item struct {
	key       string // "wep/<ns>/<name>", "hep/<name>", "ns/<ns>/<name>", "gns/<name>"
	namespace string // "" for cluster-scoped items
	own       map[string]string
	// parents are the profiles whose labelsToApply the item inherits, in
	// order; the first to set a key wins, and the item's own labels win
	// over all of them.
	parents []string
	// implicit labels Calico adds (namespace, service account, ...).
	implicit map[string]string
	// labels is own + implicit + inherited, recomputed by the graph.
	labels map[string]string
	nets   []netip.Prefix
	// netStrs are nets as set members, made when first needed.
	netStrs []string
	ports   []namedPort
	// in are the active sets holding the item (a few: a slice costs less
	// than a map); the index moves them to the item that replaces it.
	in []*selEntry
}

// namedPort is one named port of an endpoint.
type namedPort struct {
	name  string
	proto string // lower case: tcp, udp, sctp
	port  uint16
}

// setRef names an IP set: the items a selector matches, or with np set
// their named port np.
type setRef struct {
	id  string
	sel *entitySel
	np  *npKey
}

type npKey struct{ name, proto string }

func selSet(sel *entitySel) setRef { return setRef{id: sel.id, sel: sel} }

func namedPortSet(sel *entitySel, proto, name string) setRef {
	k := &npKey{name: name, proto: proto}
	return setRef{id: hashID("n:", sel.id+","+proto+":"+name), sel: sel, np: k}
}

// selEntry is one active IP set and the items it holds.
type selEntry struct {
	ref     setRef
	hint    kvHint
	matches map[string]*item
	// cached is the set as last built (nil before the first build), and
	// recheck the members that may have come or gone since, by the net
	// they come from.
	cached  *dpapi.IPSet
	recheck map[string]netip.Prefix
}

// index keeps, for every active IP set, the items it contains. An item
// change re-evaluates the sets that may hold it; a new set is evaluated
// against the items that may match it. "May" comes from an inverted index
// of label values: a selector that requires k == v (or k in {...}) only
// looks at items with that label value. A set's members are patched
// after item changes: byNet finds the other items that may still supply
// a member one item took away.
type index struct {
	items map[string]*item
	byNet map[netip.Prefix][]string // net → keys of the items that have it
	sets  map[string]*selEntry
	// byLabel indexes items by the values of the label keys active sets'
	// hints name (hintKeys counts those sets per key); other keys, most
	// of an endpoint's labels, are not indexed.
	byLabel  map[string]map[string]map[string]*item // key → value → item key → item
	hintKeys map[string]int
	hinted   map[string]map[string]map[string]*selEntry
	unhinted map[string]*selEntry
}

func newIndex() *index {
	return &index{
		items:    map[string]*item{},
		byNet:    map[netip.Prefix][]string{},
		sets:     map[string]*selEntry{},
		byLabel:  map[string]map[string]map[string]*item{},
		hintKeys: map[string]int{},
		hinted:   map[string]map[string]map[string]*selEntry{},
		unhinted: map[string]*selEntry{},
	}
}

func (e *selEntry) wants(it *item) bool {
	if !e.ref.sel.matches(it.namespace, it.labels) {
		return false
	}
	if e.ref.np == nil {
		return true
	}
	return it.hasPort(*e.ref.np)
}

func (it *item) hasPort(k npKey) bool {
	for _, p := range it.ports {
		if p.name == k.name && p.proto == k.proto {
			return true
		}
	}
	return false
}

func nested[K1, K2 comparable, V any](m map[K1]map[K2]V, k K1) map[K2]V {
	inner := m[k]
	if inner == nil {
		inner = map[K2]V{}
		m[k] = inner
	}
	return inner
}

func (x *index) indexLabels(it *item, add bool) {
	for k, v := range it.labels {
		byVal := x.byLabel[k]
		if byVal == nil {
			continue // no active set's hint names k
		}
		if add {
			nested(byVal, v)[it.key] = it
			continue
		}
		if items := byVal[v]; items != nil {
			delete(items, it.key)
			if len(items) == 0 {
				delete(byVal, v)
			}
		}
	}
}

// useHintKey counts one more active set hinted by label key k, indexing
// every item's value of k when it is the first.
func (x *index) useHintKey(k string) {
	if x.hintKeys[k]++; x.hintKeys[k] > 1 {
		return
	}
	byVal := map[string]map[string]*item{}
	for _, it := range x.items {
		if v, ok := it.labels[k]; ok {
			nested(byVal, v)[it.key] = it
		}
	}
	x.byLabel[k] = byVal
}

// dropHintKey counts one fewer, dropping k's index with the last.
func (x *index) dropHintKey(k string) {
	if x.hintKeys[k]--; x.hintKeys[k] == 0 {
		delete(x.hintKeys, k)
		delete(x.byLabel, k)
	}
}

// candidateSets returns the sets that may hold it: those holding it now,
// the unhinted ones and those whose hint its labels satisfy.
func (x *index) candidateSets(it *item) map[string]*selEntry {
	if len(x.sets) == 0 {
		return nil
	}
	out := make(map[string]*selEntry, len(it.in)+len(x.unhinted))
	for _, e := range it.in {
		out[e.ref.id] = e
	}
	maps.Copy(out, x.unhinted)
	for k, v := range it.labels {
		if byVal := x.hinted[k]; byVal != nil {
			maps.Copy(out, byVal[v])
		}
	}
	return out
}

func (x *index) join(e *selEntry, it *item) {
	e.matches[it.key] = it
	if !slices.Contains(it.in, e) {
		it.in = append(it.in, e)
	}
}

// leave takes it, the current item of its key, out of e.
func (x *index) leave(e *selEntry, it *item) {
	delete(e.matches, it.key)
	if i := slices.Index(it.in, e); i >= 0 {
		it.in = slices.Delete(it.in, i, i+1)
	}
}

func (x *index) indexNets(it *item, add bool) {
	for _, n := range it.nets {
		keys := x.byNet[n]
		switch i := slices.Index(keys, it.key); {
		case add && i < 0:
			x.byNet[n] = append(keys, it.key)
		case !add && i >= 0:
			if keys = slices.Delete(keys, i, i+1); len(keys) == 0 {
				delete(x.byNet, n)
			} else {
				x.byNet[n] = keys
			}
		}
	}
}

// upsertItem adds or replaces an item (its labels already computed).
func (x *index) upsertItem(it *item) {
	old := x.items[it.key]
	if old != nil {
		x.indexLabels(old, false)
		x.indexNets(old, false)
		if old != it {
			it.in, old.in = old.in, nil
		}
	}
	x.items[it.key] = it
	x.indexLabels(it, true)
	x.indexNets(it, true)
	for _, e := range x.candidateSets(it) {
		prev, had := e.matches[it.key]
		if e.wants(it) {
			x.join(e, it)
			if !had || !sameMembers(prev, it) {
				e.noteChange(prev)
				e.noteChange(it)
			}
		} else if had {
			x.leave(e, it)
			e.noteChange(prev)
		}
	}
}

func (x *index) deleteItem(key string) {
	it, ok := x.items[key]
	if !ok {
		return
	}
	x.indexLabels(it, false)
	x.indexNets(it, false)
	delete(x.items, key)
	for _, e := range slices.Clone(it.in) {
		x.leave(e, it)
		e.noteChange(it)
	}
}

// noteChange records that the members it (nil: none) supplies to e may
// have come or gone.
func (e *selEntry) noteChange(it *item) {
	if it == nil || e.cached == nil {
		return // nothing to patch: the next build is a full one
	}
	if e.recheck == nil {
		e.recheck = map[string]netip.Prefix{}
	}
	e.members(it, func(m string, n netip.Prefix) { e.recheck[m] = n })
}

func sameMembers(a, b *item) bool {
	return slices.Equal(a.nets, b.nets) && slices.Equal(a.ports, b.ports)
}

// setActive makes the index hold exactly the sets in want.
func (x *index) setActive(want map[string]setRef) {
	for id, e := range x.sets {
		if _, ok := want[id]; ok {
			continue
		}
		for _, it := range e.matches {
			x.leave(e, it)
		}
		if e.hint.key == "" {
			delete(x.unhinted, id)
		} else {
			byVal := x.hinted[e.hint.key]
			for _, v := range e.hint.vals {
				if delete(byVal[v], id); len(byVal[v]) == 0 {
					delete(byVal, v)
				}
			}
			if len(byVal) == 0 {
				delete(x.hinted, e.hint.key)
			}
			x.dropHintKey(e.hint.key)
		}
		delete(x.sets, id)
	}
	for id, ref := range want {
		if _, ok := x.sets[id]; ok {
			continue
		}
		e := &selEntry{ref: ref, hint: ref.sel.hint}
		x.sets[id] = e
		if e.hint.key == "" {
			e.matches = map[string]*item{}
			x.unhinted[id] = e
			for _, it := range x.items {
				if e.wants(it) {
					x.join(e, it)
				}
			}
			continue
		}
		x.useHintKey(e.hint.key)
		n := 0 // the candidates: most selectors match most of them
		for _, v := range e.hint.vals {
			n += len(x.byLabel[e.hint.key][v])
		}
		e.matches = make(map[string]*item, n)
		byVal := nested(x.hinted, e.hint.key)
		for _, v := range e.hint.vals {
			nested(byVal, v)[id] = e
			for _, it := range x.byLabel[e.hint.key][v] {
				if e.wants(it) {
					x.join(e, it)
				}
			}
		}
	}
}

// members calls add with each member it supplies to e, and the net the
// member comes from.
func (e *selEntry) members(it *item, add func(m string, n netip.Prefix)) {
	if e.ref.np == nil {
		if it.netStrs == nil && len(it.nets) > 0 {
			it.netStrs = make([]string, len(it.nets))
			for i, n := range it.nets {
				it.netStrs[i] = n.String()
			}
		}
		for i, n := range it.nets {
			add(it.netStrs[i], n)
		}
		return
	}
	for _, p := range it.ports {
		if p.name != e.ref.np.name || p.proto != e.ref.np.proto {
			continue
		}
		for _, n := range it.nets {
			if n.IsSingleIP() {
				add(n.Addr().String()+","+p.proto+":"+strconv.Itoa(int(p.port)), n)
			}
		}
	}
}

// supplies reports whether some item e holds supplies member m, of net n.
func (x *index) supplies(e *selEntry, m string, n netip.Prefix) bool {
	for _, key := range x.byNet[n] {
		it := e.matches[key]
		if it == nil {
			continue
		}
		found := false
		e.members(it, func(m2 string, _ netip.Prefix) { found = found || m2 == m })
		if found {
			return true
		}
	}
	return false
}

// ipSet returns the set's current content: the last one if unchanged,
// else a new one (patched from the last when few members may differ).
// The result is never modified afterwards.
func (x *index) ipSet(e *selEntry) *dpapi.IPSet {
	if e.cached != nil && len(e.recheck) == 0 {
		return e.cached
	}
	if e.cached == nil || len(e.recheck) > 64+len(e.cached.Members)/8 {
		e.cached, e.recheck = e.build(), nil
		return e.cached
	}
	old := e.cached.Members
	var add []string
	drop := map[string]bool{}
	for m, n := range e.recheck {
		_, had := slices.BinarySearch(old, m)
		switch now := x.supplies(e, m, n); {
		case now && !had:
			add = append(add, m)
		case !now && had:
			drop[m] = true
		}
	}
	e.recheck = nil
	if len(add) == 0 && len(drop) == 0 {
		return e.cached
	}
	slices.Sort(add)
	members := make([]string, 0, len(old)+len(add)-len(drop))
	for _, m := range old {
		for len(add) > 0 && add[0] < m {
			members, add = append(members, add[0]), add[1:]
		}
		if !drop[m] {
			members = append(members, m)
		}
	}
	members = append(members, add...)
	if len(members) == 0 {
		members = nil // as build leaves an empty set
	}
	e.cached = &dpapi.IPSet{ID: e.cached.ID, Type: e.cached.Type, Members: members}
	return e.cached
}

// build computes the set's content from the items it holds.
func (e *selEntry) build() *dpapi.IPSet {
	s := &dpapi.IPSet{ID: e.ref.id, Type: dpapi.IPSetNet}
	if e.ref.np != nil {
		s.Type = dpapi.IPSetIPPort
	}
	if len(e.matches) > 0 {
		s.Members = make([]string, 0, len(e.matches))
	}
	for _, it := range e.matches {
		e.members(it, func(m string, _ netip.Prefix) { s.Members = append(s.Members, m) })
	}
	slices.Sort(s.Members)
	if s.Members = slices.Compact(s.Members); len(s.Members) == 0 {
		s.Members = nil
	}
	return s
}

// computeLabels sets out (empty) to it's own, implicit and
// inherited labels. Own labels with the namespace or service account
// prefix (pcns., pcsa.) are dropped, as Calico drops them: only the
// kns./ksa. profiles may supply those, or a pod could pass for another
// namespace.
func computeLabels(out map[string]string, it *item, profileLabels func(string) map[string]string) {
	for _, p := range it.parents {
		for k, v := range profileLabels(p) {
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	for k, v := range it.own {
		if !strings.HasPrefix(k, nsLabelPrefix) && !strings.HasPrefix(k, saLabelPrefix) {
			out[k] = v
		}
	}
	maps.Copy(out, it.implicit) // Calico's own labels are not the user's to change
}

// inherits reports whether the item takes labels from profile name.
func (it *item) inherits(name string) bool {
	return slices.Contains(it.parents, name)
}

// itemKey helpers.
func wepItemKey(id dpapi.WorkloadID) string { return "wep/" + string(id) }
func hepItemKey(name string) string         { return "hep/" + name }
func netsetItemKey(ns, name string) string {
	if ns == "" {
		return "gns/" + name
	}
	return "ns/" + ns + "/" + name
}

// namespaceParents returns the implicit parent profiles of a namespaced
// item: kns.<ns>, and ksa.<ns>.<sa> when it has a service account.
func namespaceParents(ns, sa string) []string {
	if ns == "" {
		return nil
	}
	out := []string{nsProfilePrefix + ns}
	if sa != "" {
		out = append(out, saProfilePrefix+ns+"."+sa)
	}
	return out
}

func lowerProto(p string) string { return strings.ToLower(p) }
