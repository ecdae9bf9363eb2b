package calc

import (
	"hash/maphash"
	"maps"
	"math/bits"
	"slices"
)

// labelSets shares equal label maps between items: the replicas of a
// workload carry the same labels, and the endpoints of a namespace the
// same implicit ones, so a large cluster holds far fewer distinct label
// maps than endpoints. Items hold the shared maps, which are never
// written to. The table forgets the maps no item holds any longer when
// it has doubled since it last did (sweep), so a put stays O(1)
// amortised and churn does not grow it.
type labelSets struct {
	m     map[uint64][]map[string]string // hash of the labels → the shared maps
	n     int                            // maps in m
	limit int                            // n at which sweep rebuilds m
	seed  maphash.Seed
	// merged remembers items' merged labels by their own and implicit
	// labels and parents, until a profile's labels change or sweep.
	merged  map[mergedKey][]mergedLabels
	scratch map[string]string
}

type mergedKey struct{ own, implicit, parents uint64 }

type mergedLabels struct {
	own, implicit map[string]string
	parents       []string
	labels        map[string]string
}

const minLabelSetsLimit = 1024

func newLabelSets() *labelSets {
	return &labelSets{m: map[uint64][]map[string]string{}, limit: minLabelSetsLimit, seed: maphash.MakeSeed(),
		merged: map[mergedKey][]mergedLabels{}, scratch: map[string]string{}}
}

// share returns the shared map equal to m (m itself the first time).
func (s *labelSets) share(m map[string]string) map[string]string {
	shared, _ := s.shareHashed(m)
	return shared
}

// shareHashed is share, and m's hash.
func (s *labelSets) shareHashed(m map[string]string) (map[string]string, uint64) {
	if len(m) == 0 {
		return m, 0
	}
	shared, h := s.find(m)
	if shared == nil {
		shared = m
		s.add(h, m)
	}
	return shared, h
}

// labels shares it's own and implicit labels and returns its shared
// merged labels: those of an item with the same own and implicit labels
// and parents, or else what merge puts in a cleared map.
func (s *labelSets) labels(it *item, merge func(out map[string]string, it *item)) map[string]string {
	var k mergedKey
	it.own, k.own = s.shareHashed(it.own)
	it.implicit, k.implicit = s.shareHashed(it.implicit)
	for _, p := range it.parents {
		k.parents = k.parents*31 + maphash.String(s.seed, p)
	}
	for _, m := range s.merged[k] {
		if maps.Equal(m.own, it.own) && maps.Equal(m.implicit, it.implicit) && slices.Equal(m.parents, it.parents) {
			return m.labels
		}
	}
	clear(s.scratch)
	merge(s.scratch, it)
	labels := s.shareCopy(s.scratch)
	s.merged[k] = append(s.merged[k], mergedLabels{own: it.own, implicit: it.implicit, parents: it.parents, labels: labels})
	return labels
}

// forgetMerged forgets the merged labels labels remembers: a profile's
// labels changed.
func (s *labelSets) forgetMerged() { clear(s.merged) }

// shareCopy is share for a map the caller goes on writing to: the first
// time, a copy of m is shared.
func (s *labelSets) shareCopy(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	shared, h := s.find(m)
	if shared == nil {
		shared = maps.Clone(m)
		s.add(h, shared)
	}
	return shared
}

// find returns the shared map equal to m, if any, and m's hash.
func (s *labelSets) find(m map[string]string) (map[string]string, uint64) {
	// The sum of the pairs' hashes does not depend on the maps' order.
	var h uint64
	for k, v := range m {
		h += maphash.String(s.seed, k) ^ bits.RotateLeft64(maphash.String(s.seed, v), 29)
	}
	for _, c := range s.m[h] {
		if maps.Equal(c, m) {
			return c, h
		}
	}
	return nil, h
}

func (s *labelSets) add(h uint64, m map[string]string) {
	s.m[h] = append(s.m[h], m)
	s.n++
}

// shareItem replaces it's label maps with the shared ones.
func (s *labelSets) shareItem(it *item) {
	it.own, it.implicit, it.labels = s.share(it.own), s.share(it.implicit), s.share(it.labels)
}

// sweep rebuilds the table from items' maps once it has reached its
// limit, and reports whether it did.
func (s *labelSets) sweep(items map[string]*item) bool {
	if s.n < s.limit {
		return false
	}
	s.m, s.n = make(map[uint64][]map[string]string, s.n/2), 0
	clear(s.merged)
	for _, it := range items {
		s.shareItem(it)
	}
	s.limit = max(2*s.n, minLabelSetsLimit)
	return true
}
