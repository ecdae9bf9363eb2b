package printer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// tricky strings go-yaml quotes or folds in particular ways.
var tricky = []string{
	"", " ", "a", "yes", "Yes", "no", "on", "OFF", "y", "n", "true", "null", "~", "<<", ".inf", "-.inf", ".nan",
	"123", "-12", "+12", "0x1F", "0o17", "017", "1_000", "0b101", "-0b11", "1e3", "1.5", ".5", "5.", "1.2.3",
	"2024-01-02", "2024-1-2", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05", "12:30", "1:20:30", "190:20:30.15",
	"10.0.0.0/16", "fd00::/64", "::1", "a: b", "a:b", "a:", ":a", "?a", "? a", "-a", "- a", "-", "--", "---", "...x",
	"#a", "a#b", "a #b", "a, b", "[a]", "{a}", "&a", "*a", "!a", "|a", ">a", "'a", "\"a", "%a", "@a", "`a",
	"it's", `back\slash`, `q"uote`, "role == 'db'", "has(a) && b in {'x', 'y'}", " lead", "trail ", "two  spaces",
	"é", "tab\tx", "line\nbreak", "A9", "a10", "a9", "a09", "a010", "b01", "_x", "0", "00", "-0", "+",
	strings.Repeat("word ", 20), strings.Repeat("x", 100), strings.Repeat("ab cd ", 12),
}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return tricky[r.IntN(len(tricky))]
	}
	const alphabet = "abcXYZ0123456789 .-_/:#'\"@,[]{}?!&*|>%`=()~+"
	n := r.IntN(12)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func randValue(r *rand.Rand, depth int) any {
	switch k := r.IntN(10); {
	case depth > 3 || k < 4:
		return randString(r)
	case k == 4:
		return []any{1, -7, 3.25, 1e6, 1e21, 0.000001, 12345678901234}[r.IntN(7)]
	case k == 5:
		return []any{true, false, nil}[r.IntN(3)]
	case k < 8:
		m := map[string]any{}
		for range r.IntN(5) {
			m[randString(r)] = randValue(r, depth+1)
		}
		return m
	default:
		var s []any
		for range r.IntN(4) {
			s = append(s, randValue(r, depth+1))
		}
		if s == nil {
			s = []any{}
		}
		return s
	}
}

// TestFastYAMLMatchesGoYAML checks the fast emitter against go-yaml on
// random trees: whenever it answers, the bytes must be identical.
func TestFastYAMLMatchesGoYAML(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	answered := 0
	n := 20000
	if s := os.Getenv("FASTYAML_CASES"); s != "" {
		fmt.Sscan(s, &n)
	}
	for i := range n {
		v := map[string]any{"k": randValue(r, 0), randString(r): randValue(r, 0), "list": []any{randValue(r, 1), randValue(r, 1)}}
		want, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := fastYAML(v)
		if !ok {
			continue
		}
		answered++
		if string(got) != string(want) {
			t.Fatalf("case %d: %#v\ngot:\n%s\nwant:\n%s", i, v, got, want)
		}
	}
	t.Logf("the fast path answered %d of %d", answered, n)
	if answered < n/2 {
		t.Errorf("the fast path answered only %d of %d", answered, n)
	}
}

func TestFastYAMLScalars(t *testing.T) {
	for _, s := range tricky {
		want, _ := yaml.Marshal(map[string]any{"v": s, s: 1})
		if got, ok := fastYAML(map[string]any{"v": s, s: 1}); ok && string(got) != string(want) {
			t.Errorf("%q:\ngot:\n%s\nwant:\n%s", s, got, want)
		}
	}
}

// TestFastYAMLOnResources runs real resources through both emitters.
func TestFastYAMLOnResources(t *testing.T) {
	data, err := os.ReadFile("../../commands/testdata/all-kinds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := v3.ParseManifests(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		r.Default()
		want, _ := yaml.Marshal(r)
		got, ok := fastYAML(r)
		if !ok {
			t.Errorf("%s: fast path declined", r.GetObjectMeta().Name)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", r.GetObjectMeta().Name, got, want)
		}
	}
}
