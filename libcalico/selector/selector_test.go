package selector

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// labelMap adapts a map to Labels, to exercise EvaluateLabels.
type labelMap map[string]string

func (m labelMap) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }

type L = map[string]string

var evalTests = []struct {
	sel      string
	match    []L
	nonMatch []L
}{
	// Empty and constant selectors.
	{``, []L{{}, {"a": "b"}, nil}, nil},
	{" \t ", []L{{}, {"a": "b"}}, nil},
	{`all()`, []L{{}, {"a": "b"}}, nil},
	{` all( ) `, []L{{}, {"a": "b"}}, nil},
	{`global()`, []L{{}, {"a": "b"}}, nil},
	{`!all()`, nil, []L{{}, {"a": "b"}}},
	{`!global()`, nil, []L{{}, {"a": "b"}}},

	// has.
	{`has(a)`, []L{{"a": ""}, {"a": "b"}}, []L{{}, {"b": "a"}, nil}},
	{`has( a )`, []L{{"a": "b"}}, []L{{}}},
	{`!has(a)`, []L{{}, {"b": "a"}, nil}, []L{{"a": ""}}},
	{`! has(a)`, []L{{"b": "b"}}, []L{{"a": "b"}}},
	{`!!has(a)`, []L{{"a": "b"}}, []L{{"b": "b"}}},
	{`!!!has(a)`, []L{{"b": "b"}}, []L{{"a": "b"}}},
	{`!! ! has(a)`, []L{{"b": "b"}}, []L{{"a": "b"}}},

	// Equality; != is true when the label is absent.
	{`a == 'b'`, []L{{"a": "b"}, {"a": "b", "c": "d"}}, []L{{}, {"a": "c"}, {"c": "b"}, {"a": ""}}},
	{`a == "b"`, []L{{"a": "b"}}, []L{{"a": "B"}}},
	{`a==''`, []L{{"a": ""}}, []L{{}, {"a": "x"}}},
	{`a != 'b'`, []L{{}, {"a": "c"}, {"a": ""}, nil}, []L{{"a": "b"}}},
	{`a!="b"`, []L{{"a": "c"}}, []L{{"a": "b"}}},
	{`!a == 'b'`, []L{{}, {"a": "c"}}, []L{{"a": "b"}}},

	// Sets; not in is true when the label is absent.
	{`a in {'x', "y"}`, []L{{"a": "x"}, {"a": "y"}}, []L{{}, {"a": "z"}, {"a": "x,y"}}},
	{`a in {"'", '"', "c"}`, []L{{"a": "c"}, {"a": `"`}, {"a": `'`}}, []L{{}, {"a": "e"}}},
	{`a in {}`, nil, []L{{}, {"a": ""}}},
	{`a in {'x',}`, []L{{"a": "x"}}, []L{{"a": ""}}},
	{`a in{'x'}`, []L{{"a": "x"}}, nil},
	{`a not in {'x', 'y'}`, []L{{}, {"a": "z"}, {"b": "x"}}, []L{{"a": "x"}, {"a": "y"}}},
	{`a notin {'x'}`, []L{{"a": "z"}}, []L{{"a": "x"}}},
	{`a not in {}`, []L{{}, {"a": "x"}}, nil},
	{`!a in {'x'}`, []L{{}, {"a": "y"}}, []L{{"a": "x"}}},
	{`a in {'0','1','2','3','4','5','6','7','8','9'}`, []L{{"a": "0"}, {"a": "9"}}, []L{{}, {"a": "10"}}},
	{`a not in {'0','1','2','3','4','5','6','7','8','9'}`, []L{{}, {"a": "10"}}, []L{{"a": "5"}}},

	// String operators.
	{`a contains 'b'`, []L{{"a": "b"}, {"a": "abc"}}, []L{{}, {"a": "a"}, {"b": "b"}}},
	{`a contains ''`, []L{{"a": ""}}, []L{{}}},
	{`a starts with 'ab'`, []L{{"a": "ab"}, {"a": "abc"}}, []L{{}, {"a": "cab"}, {"a": "a"}}},
	{`a startswith 'ab'`, []L{{"a": "abc"}}, []L{{"a": "cab"}}},
	{`a starts	 with "ab"`, []L{{"a": "abc"}}, []L{{"a": "cab"}}},
	{`a ends with 'bc'`, []L{{"a": "bc"}, {"a": "abc"}}, []L{{}, {"a": "bca"}}},
	{`a endswith 'bc'`, []L{{"a": "abc"}}, []L{{"a": "bca"}}},

	// Keys.
	{`projectcalico.org/namespace == 'prod'`, []L{{"projectcalico.org/namespace": "prod"}}, []L{{"namespace": "prod"}}},
	{`kubernetes.io/hostname in {'n1', 'n2'}`, []L{{"kubernetes.io/hostname": "n2"}}, []L{{"hostname": "n2"}}},
	{`a.b-c_d == 'x'`, []L{{"a.b-c_d": "x"}}, []L{{"a": "x"}}},
	{`has(-/.9Z)`, []L{{"-/.9Z": ""}}, []L{{}}},
	{`in == 'x' && has == 'y' && all == 'z'`, []L{{"in": "x", "has": "y", "all": "z"}}, []L{{}}},

	// Values are raw: no escapes, any bytes.
	{`a == 'x"y'`, []L{{"a": `x"y`}}, nil},
	{`a == "x'y"`, []L{{"a": "x'y"}}, nil},
	{"a == 'é\x00\n\\'", []L{{"a": "é\x00\n\\"}}, nil},

	// Boolean operators and precedence: && binds tighter than ||.
	{`a == 'a' && b == 'b'`, []L{{"a": "a", "b": "b"}}, []L{{}, {"a": "a"}, {"b": "b"}, {"a": "a", "b": "c"}}},
	{`a == 'a' || b == 'b'`, []L{{"a": "a"}, {"b": "b"}, {"a": "a", "b": "b"}}, []L{{}, {"a": "b", "b": "a"}}},
	{`has(a) || has(b) && has(c)`, []L{{"a": ""}, {"b": "", "c": ""}}, []L{{"b": ""}, {"c": ""}}},
	{`has(a) && has(b) || has(c)`, []L{{"c": ""}, {"a": "", "b": ""}}, []L{{"a": ""}, {"b": ""}}},
	{`(has(a) || has(b)) && has(c)`, []L{{"a": "", "c": ""}, {"b": "", "c": ""}}, []L{{"a": ""}, {"c": ""}}},
	{`has(a) && (has(b) || has(c))`, []L{{"a": "", "c": ""}}, []L{{"c": ""}, {"a": ""}}},
	{`!(has(a) || has(b))`, []L{{}, {"c": ""}}, []L{{"a": ""}, {"b": ""}}},
	{`!has(a) || has(b)`, []L{{}, {"a": "", "b": ""}}, []L{{"a": ""}}},
	{`!(!has(a) || has(b))`, []L{{"a": "a"}}, []L{{}, {"a": "", "b": ""}}},
	{`!(!has(a))`, []L{{"a": ""}}, []L{{}}},
	{`((((has(a)))))`, []L{{"a": ""}}, []L{{}}},
	{`has(a)&&has(b)||has(c)&&!has(d)`, []L{{"a": "", "b": ""}, {"c": ""}}, []L{{"c": "", "d": ""}, {"a": ""}}},
	{`a != 'a1' || b != 'b1'`, []L{{"a": "a1"}}, []L{{"a": "a1", "b": "b1"}}},
	{`all() && a == 'x'`, []L{{"a": "x"}}, []L{{}}},
	{`global() || a == 'x'`, []L{{}, {"a": "y"}}, nil},
	{`role == 'db' && env in {'prod','staging'} && !has(quarantine)`,
		[]L{{"role": "db", "env": "prod"}, {"role": "db", "env": "staging", "x": "y"}},
		[]L{{"role": "db", "env": "dev"}, {"role": "db", "env": "prod", "quarantine": "true"}, {"env": "prod"}}},
}

func TestEvaluate(t *testing.T) {
	for _, tc := range evalTests {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.sel, err)
			continue
		}
		canon, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse(%q) (canonical of %q): %v", sel.String(), tc.sel, err)
			continue
		}
		for _, s := range []Selector{sel, canon} {
			for _, want := range []bool{true, false} {
				sets := tc.match
				if !want {
					sets = tc.nonMatch
				}
				for _, l := range sets {
					if got := s.Evaluate(l); got != want {
						t.Errorf("%q.Evaluate(%v) = %v, want %v", s, l, got, want)
					}
					if got := s.EvaluateLabels(labelMap(l)); got != want {
						t.Errorf("%q.EvaluateLabels(%v) = %v, want %v", s, l, got, want)
					}
				}
			}
		}
	}
}

func TestEvaluateLabelsNil(t *testing.T) {
	if !MustParse("!has(a)").EvaluateLabels(nil) {
		t.Error("!has(a) should match nil Labels")
	}
	if MustParse("has(a)").EvaluateLabels(nil) {
		t.Error("has(a) should not match nil Labels")
	}
}

var canonicalTests = []struct {
	in, want, uid string
}{
	// UIDs are Calico's own test vectors.
	{"", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
	{" all() ", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
	{" (all() )", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
	{`! (has( b)||! has(a ))`, "!(has(b) || !has(a))", "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"},
	{`! (a == "b"&&! c != "d")`, `!(a == "b" && !c != "d")`, "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"},
	{"global( )", "global()", ""},
	{`a=='b'`, `a == "b"`, ""},
	{`a == "'"`, `a == "'"`, ""},
	{`a == '"'`, `a == '"'`, ""},
	{`a contains '"'`, `a contains '"'`, ""},
	{`a contains "'"`, `a contains "'"`, ""},
	{`a startswith '"'`, `a starts with '"'`, ""},
	{`a endswith "'"`, `a ends with "'"`, ""},
	{`a!='"'`, `a != '"'`, ""},
	{`a in {"d"}`, `a in {"d"}`, ""},
	{`a in {"d", "a", "b"}`, `a in {"a", "b", "d"}`, ""},
	{`a in {"z", "z", "x", "y", "x", "a"}`, `a in {"a", "x", "y", "z"}`, ""},
	{`a notin{'y','x',}`, `a not in {"x", "y"}`, ""},
	{`a in {}`, `a in {}`, ""},
	{`!(a == 'b')`, `!a == "b"`, ""},
	{`!!a == 'b'`, `a == "b"`, ""},
	{`!(!has(a))`, `has(a)`, ""},
	{`!(!(!has(a)))`, `!has(a)`, ""},
	{`a == 'b' && has(c)`, `(a == "b" && has(c))`, ""},
	{`has(a) || has(b) && has(c)`, `(has(a) || (has(b) && has(c)))`, ""},
	{`has(a) && (has(b) && has(c))`, `(has(a) && (has(b) && has(c)))`, ""},
	{`!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))`,
		`!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})`, ""},
}

func TestCanonical(t *testing.T) {
	for _, tc := range canonicalTests {
		sel, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := sel.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		again := MustParse(sel.String())
		if again.String() != sel.String() || again.UniqueID() != sel.UniqueID() {
			t.Errorf("%q does not round-trip: %q %q", tc.in, again, again.UniqueID())
		}
		if tc.uid != "" && sel.UniqueID() != tc.uid {
			t.Errorf("Parse(%q).UniqueID() = %q, want %q", tc.in, sel.UniqueID(), tc.uid)
		}
	}
}

func TestUniqueID(t *testing.T) {
	groups := [][]string{
		{`a == 'b' && has(c)`, `a=="b"&&has(c)`, " a\t==  'b'  &&  has( c ) ", `(a == "b") && (has(c))`},
		{`a in {'x', 'y'}`, `a in {"y","x","x"}`, `a in{'x','y',}`},
		{``, ` `, `all()`, `(all())`},
		{`!has(a)`, `!!!has(a)`, `! ( has(a) )`},
	}
	seen := map[string]string{}
	for _, g := range groups {
		id := MustParse(g[0]).UniqueID()
		if !strings.HasPrefix(id, "s:") || len(id) != 2+38 {
			t.Errorf("UniqueID %q has unexpected form", id)
		}
		if prev, ok := seen[id]; ok {
			t.Errorf("%q and %q share UniqueID %q", g[0], prev, id)
		}
		seen[id] = g[0]
		for _, s := range g[1:] {
			if got := MustParse(s).UniqueID(); got != id {
				t.Errorf("UniqueID(%q) = %q, want %q as for %q", s, got, id, g[0])
			}
		}
	}
	if MustParse("all()").UniqueID() == MustParse("global()").UniqueID() {
		t.Error("all() and global() share a UniqueID")
	}
}

var errorTests = []struct {
	in  string
	pos int
	msg string // substring of Msg
}{
	{`a == `, 5, "expected a quoted value"},
	{`a ==`, 4, "expected a quoted value"},
	{`a == 'b`, 5, "unterminated quoted value"},
	{`a == "b'`, 5, "unterminated quoted value"},
	{`'FOO`, 0, "expected a selector expression"},
	{`has(`, 4, "expected a label key"},
	{`has(a`, 5, "expected ')'"},
	{`has()`, 4, "expected a label key"},
	{`has (a)`, 4, "expected an operator"},
	{`all(`, 4, "expected ')'"},
	{`global(x)`, 7, "expected ')'"},
	{`a in {'x'`, 9, "expected ',' or '}'"},
	{`a in {'x' 'y'}`, 10, "expected ',' or '}'"},
	{`a in {,}`, 6, "expected a quoted value or '}'"},
	{`a in {'x',,}`, 10, "expected a quoted value or '}'"},
	{`a in 'x'`, 5, "expected '{'"},
	{`a not {'x'}`, 6, `expected "in"`},
	{`a starts 'x'`, 9, `expected "with"`},
	{`a ends`, 6, `expected "with"`},
	{`&&`, 0, "expected a selector expression"},
	{`)`, 0, "expected a selector expression"},
	{`()`, 1, "expected a selector expression"},
	{`(`, 1, "expected a selector expression"},
	{`(a == 'b'`, 9, "expected ')'"},
	{`a == 'b')`, 8, "expected '&&', '||' or end of selector"},
	{`!`, 1, "expected a selector expression"},
	{`!= 'x'`, 0, "expected a selector expression"},
	{`a = 'b'`, 2, "expected an operator"},
	{`a === 'b'`, 4, "expected a quoted value"},
	{`a like 'b'`, 2, "expected an operator"},
	{`a`, 1, "expected an operator"},
	{`b == b`, 5, "expected a quoted value"},
	{`'b1' == b`, 0, "expected a selector expression"},
	{`a b`, 2, "expected an operator"},
	{`a% == 'b'`, 1, "invalid character '%': expected an operator"},
	{`has(a%)`, 5, "invalid character '%': expected ')'"},
	{`é == 'b'`, 0, "invalid character 'é': expected a selector expression"},
	{"a == 'b'\n", 8, `invalid character '\n': expected '&&', '||'`},
	{`a == 'b' &`, 9, "expected '&&', '||' or end of selector"},
	{`a == 'b' |`, 9, "expected '&&', '||' or end of selector"},
	{`a == 'b' && `, 12, "expected a selector expression"},
	{`has(a) ||`, 9, "expected a selector expression"},
	{`a == 'b' c == 'd'`, 9, "expected '&&', '||' or end of selector"},
	{`a == 'b' has(c)`, 9, "expected '&&', '||' or end of selector"},
	{`all() all()`, 6, "expected '&&', '||' or end of selector"},
	{`foo in {"", ||`, 12, "expected a quoted value or '}'"},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorTests {
		sel, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) = %q, want error", tc.in, sel)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error %T is not *ParseError", tc.in, err)
			continue
		}
		if pe.Input != tc.in || pe.Pos != tc.pos || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("Parse(%q) = %v (pos %d), want pos %d and %q", tc.in, err, pe.Pos, tc.pos, tc.msg)
		}
	}
}

func TestParseErrorString(t *testing.T) {
	_, err := Parse("a == ")
	want := `selector "a == " position 5: expected a quoted value`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	long := strings.Repeat("x", 1000) + " %"
	_, err = Parse(long)
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("error for long input not shortened: %v", err)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Error("MustParse did not panic")
		} else if _, ok := r.(*ParseError); !ok {
			t.Errorf("MustParse panicked with %T, want *ParseError", r)
		}
	}()
	MustParse("a ==")
}

func nest(n int) string {
	return strings.Repeat("(", n) + "has(a)" + strings.Repeat(")", n)
}

func TestLimits(t *testing.T) {
	if _, err := Parse(nest(MaxDepth)); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	for _, n := range []int{MaxDepth + 1, 100, 30000} {
		_, err := Parse(nest(n))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Pos != MaxDepth || !strings.Contains(pe.Msg, "nested deeper") {
			t.Errorf("depth %d: got %v", n, err)
		}
	}
	// Unbalanced opening parens hit the same limit.
	if _, err := Parse(strings.Repeat("(!", 10000)); err == nil {
		t.Error("deep unbalanced parens parsed")
	}

	// Long flat chains and negations are not recursive and are fine.
	chain := strings.Repeat("has(a) && ", 5000) + "has(a)"
	if sel, err := Parse(chain); err != nil || !sel.Evaluate(L{"a": ""}) {
		t.Errorf("long chain: %v", err)
	}
	if sel, err := Parse(strings.Repeat("!", 50000) + "has(a)"); err != nil || !sel.Evaluate(L{"a": ""}) {
		t.Errorf("long negation: %v", err)
	}

	okLen := "a == '" + strings.Repeat("x", MaxLength-len("a == ''")) + "'"
	if _, err := Parse(okLen); err != nil {
		t.Errorf("%d-byte selector: %v", len(okLen), err)
	}
	_, err := Parse(okLen + " ")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Pos != MaxLength || !strings.Contains(pe.Msg, "longer than") {
		t.Errorf("over-long selector: got %v", err)
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	sel := MustParse(`role == 'db' && env in {'prod','staging'} && !has(quarantine) || ` +
		`a in {'0','1','2','3','4','5','6','7','8','9'} || b contains 'x' || c starts with 'y' || d ends with 'z'`)
	labels := L{"role": "db", "env": "dev", "a": "11", "b": "b", "c": "c", "d": "d"}
	if n := testing.AllocsPerRun(100, func() { sel.Evaluate(labels) }); n != 0 {
		t.Errorf("Evaluate allocates %v times", n)
	}
	lm := labelMap(labels)
	if n := testing.AllocsPerRun(100, func() { sel.EvaluateLabels(lm) }); n != 0 {
		t.Errorf("EvaluateLabels allocates %v times", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	sel := MustParse(`a in {'x','y'} || has(b)`)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 1000 {
				l := L{"a": fmt.Sprint(i * j % 3)}
				_ = sel.Evaluate(l)
				_ = sel.EvaluateLabels(labelMap(l))
				_ = sel.String() + sel.UniqueID()
			}
		}()
	}
	wg.Wait()
}

func ExampleParse() {
	sel, err := Parse(`role=='db' && env in {'staging','prod'}`)
	if err != nil {
		panic(err)
	}
	fmt.Println(sel)
	fmt.Println(sel.Evaluate(map[string]string{"role": "db", "env": "prod"}))
	_, err = Parse("a == ")
	fmt.Println(err)
	// Output:
	// (role == "db" && env in {"prod", "staging"})
	// true
	// selector "a == " position 5: expected a quoted value
}
