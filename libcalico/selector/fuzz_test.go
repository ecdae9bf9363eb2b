package selector

import (
	"errors"
	"testing"
)

// fuzzLabels are label sets used to check that a selector and its canonical
// form agree.
var fuzzLabels = []map[string]string{
	nil,
	{"a": "a"},
	{"a": "b", "b": "b", "c": ""},
	{"a": `"`, "b": "'", "role": "db", "env": "prod"},
}

func FuzzParse(f *testing.F) {
	for _, tc := range evalTests {
		f.Add(tc.sel)
	}
	for _, tc := range canonicalTests {
		f.Add(tc.in)
	}
	for _, tc := range errorTests {
		f.Add(tc.in)
	}
	f.Add(nest(MaxDepth))
	f.Add(nest(MaxDepth + 1))
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T is not *ParseError", s, err)
			}
			if pe.Pos < 0 || pe.Pos > len(s) || pe.Input != s || pe.Msg == "" {
				t.Fatalf("Parse(%q) bad error %+v", s, pe)
			}
			_ = pe.Error()
			return
		}
		canon := sel.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) gave %q, which fails to parse: %v", s, canon, err)
		}
		if again.String() != canon {
			t.Fatalf("Parse(%q) gave %q, which re-parses as %q", s, canon, again)
		}
		if again.UniqueID() != sel.UniqueID() {
			t.Fatalf("UniqueID changed on re-parse of %q", canon)
		}
		for _, l := range fuzzLabels {
			want := sel.Evaluate(l)
			if again.Evaluate(l) != want || sel.EvaluateLabels(labelMap(l)) != want {
				t.Fatalf("%q and %q disagree on %v", s, canon, l)
			}
		}
	})
}
