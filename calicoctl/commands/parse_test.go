package commands

import (
	"fmt"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// bigManifest returns n GlobalNetworkSets, the bad'th (1-based) broken
// by mutate, with "..." and empty documents sprinkled in.
func bigManifest(n, bad int, mutate func(string) string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		doc := gnsYAML(fmt.Sprintf("g%d", i), "10.0.0.0/24") + "  # padding to make the input large enough to split\n"
		if i == bad {
			doc = mutate(doc)
		}
		b.WriteString(doc)
		switch {
		case i%97 == 0:
			b.WriteString("...\n")
		case i%89 == 0:
			b.WriteString("---\n---\n")
		default:
			b.WriteString("---\n")
		}
	}
	return b.String()
}

func TestParallelParseMatchesSerial(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bad    int
		mutate func(string) string
	}{
		{"valid", 0, nil},
		{"yaml error late", 900, func(s string) string { return strings.Replace(s, "spec:", "spec: [", 1) }},
		{"unknown field late", 777, func(s string) string { return s + "bogus: 1\n" }},
		{"unknown kind middle", 555, func(s string) string { return strings.Replace(s, "GlobalNetworkSet", "Nope", 1) }},
		{"error first", 1, func(s string) string { return strings.Replace(s, "spec:", "spec: [", 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(bigManifest(1000, tc.bad, tc.mutate))
			if len(data) < parallelParseMin {
				t.Fatalf("input of %d bytes is too small to split", len(data))
			}
			want, werr := v3.ParseManifests(data)
			got, gerr := parseManifests(data)
			if fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Fatalf("errors differ:\n got  %v\n want %v", gerr, werr)
			}
			if len(got) != len(want) {
				t.Fatalf("%d resources, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i].GetObjectMeta().Name != want[i].GetObjectMeta().Name {
					t.Fatalf("resource %d: %s, want %s", i, got[i].GetObjectMeta().Name, want[i].GetObjectMeta().Name)
				}
			}
		})
	}
}
