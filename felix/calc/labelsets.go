package calc

import (
	"hash/maphash"
	"maps"
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
}

const minLabelSetsLimit = 1024

func newLabelSets() *labelSets {
	return &labelSets{m: map[uint64][]map[string]string{}, limit: minLabelSetsLimit, seed: maphash.MakeSeed()}
}

// share returns the shared map equal to m (m itself the first time).
func (s *labelSets) share(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	shared, h := s.find(m)
	if shared == nil {
		shared = m
		s.add(h, m)
	}
	return shared
}

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
	var mh maphash.Hash
	mh.SetSeed(s.seed)
	for k, v := range m {
		mh.Reset()
		mh.WriteString(k)
		mh.WriteByte(0)
		mh.WriteString(v)
		h += mh.Sum64()
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
	for _, it := range items {
		s.shareItem(it)
	}
	s.limit = max(2*s.n, minLabelSetsLimit)
	return true
}
