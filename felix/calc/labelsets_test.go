package calc

import (
	"fmt"
	"reflect"
	"testing"
)

func TestLabelSetsShareEqualMaps(t *testing.T) {
	s := newLabelSets()
	a := s.share(map[string]string{"app": "web", "tier": "1"})
	b := s.share(map[string]string{"tier": "1", "app": "web"})
	if reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b).UnsafePointer() {
		t.Error("equal maps are not shared")
	}
	// Forms that a plain concatenation would confuse stay apart.
	for _, m := range []map[string]string{{"app": "webtier1"}, {"ap": "p"}, {"a": "p:p"}, {"1:a": "b"}, {"1": ":ab"}} {
		got := s.share(m)
		if !reflect.DeepEqual(got, m) {
			t.Errorf("share(%v) = %v", m, got)
		}
	}
	if s.share(nil) != nil {
		t.Error("share(nil) is not nil")
	}
}

func TestLabelSetsSweepForgetsUnheldMaps(t *testing.T) {
	s := newLabelSets()
	items := map[string]*item{}
	for i := range 3 * minLabelSetsLimit {
		it := &item{key: fmt.Sprint(i), own: map[string]string{"pod": fmt.Sprint(i)}}
		s.shareItem(it)
		items[it.key] = it
		if i >= 10 {
			delete(items, fmt.Sprint(i-10)) // churn: ten items live at a time
		}
		s.sweep(items)
	}
	if s.n > 2*minLabelSetsLimit {
		t.Errorf("%d maps kept for %d items", s.n, len(items))
	}
	for _, it := range items {
		if got := s.share(map[string]string{"pod": it.key}); reflect.ValueOf(got).UnsafePointer() != reflect.ValueOf(it.own).UnsafePointer() {
			t.Errorf("item %s's map is no longer the shared one", it.key)
		}
	}
}
