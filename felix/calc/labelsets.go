package calc

import (
	"slices"
	"strconv"
	"strings"
)

// labelSets shares equal label maps between items: the replicas of a
// workload carry the same labels, and the endpoints of a namespace the
// same implicit ones, so a large cluster holds far fewer distinct label
// maps than endpoints. Items hold the shared maps, which are never
// written to. The table forgets the maps no item holds any longer when
// it has doubled since it last did (sweep), so a put stays O(1)
// amortised and churn does not grow it.
type labelSets struct {
	m     map[string]map[string]string // canonical form → the shared map
	limit int                          // size at which sweep rebuilds m
}

const minLabelSetsLimit = 1024

func newLabelSets() *labelSets {
	return &labelSets{m: map[string]map[string]string{}, limit: minLabelSetsLimit}
}

// share returns the shared map equal to m (m itself the first time).
func (s *labelSets) share(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	key := canonicalLabels(m)
	if shared, ok := s.m[key]; ok {
		return shared
	}
	s.m[key] = m
	return m
}

// shareItem replaces it's label maps with the shared ones.
func (s *labelSets) shareItem(it *item) {
	it.own, it.implicit, it.labels = s.share(it.own), s.share(it.implicit), s.share(it.labels)
}

// sweep rebuilds the table from items' maps once it has reached its limit.
func (s *labelSets) sweep(items map[string]*item) {
	if len(s.m) < s.limit {
		return
	}
	s.m = make(map[string]map[string]string, len(s.m)/2)
	for _, it := range items {
		s.shareItem(it)
	}
	s.limit = max(2*len(s.m), minLabelSetsLimit)
}

// canonicalLabels is m's keys and values, sorted by key, each prefixed
// with its length: equal maps, and only they, have equal forms.
func canonicalLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	n := 0
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 8
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(n)
	for _, k := range keys {
		v := m[k]
		b.WriteString(strconv.Itoa(len(k)))
		b.WriteByte(':')
		b.WriteString(k)
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String()
}
