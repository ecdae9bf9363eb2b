package calc

import (
	"fmt"
	"slices"
	"testing"

	"github.com/calico-etcd/calico/libcalico/selector"
)

func TestRequiredKV(t *testing.T) {
	for _, c := range []struct {
		sel  string
		key  string
		vals []string
	}{
		{"a == 'x'", "a", []string{"x"}},
		{"a == 'x' && has(b)", "a", []string{"x"}},
		{"has(b) && a in {'y', 'x'}", "a", []string{"x", "y"}},
		{"(a == 'x' || b == 'y')", "", nil},
		{"!(a == 'x') && b != 'z'", "", nil},
		{`a == 'say "hi" && b == "c"'`, "a", []string{`say "hi" && b == "c"`}},
		{"c == 'p, q' && d == 'e'", "c", []string{"p, q"}},
		{"all()", "", nil},
		{"has(a)", "", nil},
		{"a in {'x, y', 'z'}", "a", []string{"x, y", "z"}},
	} {
		h := requiredKV(selector.MustParse(c.sel).String())
		if h.key != c.key || !slices.Equal(h.vals, c.vals) {
			t.Errorf("%s: hint %q %q, want %q %q", c.sel, h.key, h.vals, c.key, c.vals)
		}
	}
}

// The index's hints must never hide a match: compare with evaluating
// every selector against every item.
func TestIndexHintsMatchBruteForce(t *testing.T) {
	sels := []string{"a == '1'", "a == '1' && b == '2'", "a in {'1', '3'}", "b == '2' || a == '3'",
		"!has(a)", "a != '1' && b == '1'", "all()", "a == '9'"}
	x := newIndex()
	want := map[string]setRef{}
	for _, s := range sels {
		r := selSet(newEntitySel(nsAny, "", nil, nil, nil, selector.MustParse(s)))
		want[r.id] = r
	}
	x.setActive(want) // sets first, items after
	var items []*item
	for i := range 40 {
		it := &item{key: fmt.Sprint(i), labels: map[string]string{}}
		if i%4 != 0 {
			it.labels["a"] = fmt.Sprint(i % 5)
		}
		if i%3 != 0 {
			it.labels["b"] = fmt.Sprint(i % 3)
		}
		items = append(items, it)
		x.upsertItem(it)
	}
	check := func(when string) {
		for id, e := range x.sets {
			for _, it := range x.items {
				_, in := e.matches[it.key]
				if want := e.ref.sel.matches(it.namespace, it.labels); in != want {
					t.Errorf("%s: set %s item %s labels %v: in=%v want %v", when, e.ref.sel.str, it.key, it.labels, in, want)
				}
			}
			_ = id
		}
	}
	check("items after sets")
	for i, it := range items { // relabel half of them
		if i%2 == 0 {
			cp := *it
			cp.labels = map[string]string{"a": "1", "b": "2"}
			x.upsertItem(&cp)
		}
	}
	check("after relabel")
	x.setActive(map[string]setRef{})
	if len(x.byLabel) != 0 || len(x.hintKeys) != 0 || len(x.hinted) != 0 {
		t.Errorf("with no set active, %d label keys are still indexed", len(x.byLabel))
	}
	for i, it := range items { // relabel while nothing is indexed
		if i%3 == 0 {
			cp := *it
			cp.labels = map[string]string{"a": "3"}
			x.upsertItem(&cp)
		}
	}
	x.setActive(want) // items first, sets after
	check("sets after items")
}
