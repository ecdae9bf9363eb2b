package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// FuzzReadManifests fuzzes calicoctl's manifest reading: -f - through
// readFiles, and the parallel parser on the input repeated past the size
// from which it splits. It never panics; the parallel parse gives what
// v3.ParseManifests gives (resources, or the same error); every resource
// read encodes, decodes strictly to the same value and encodes to the
// same bytes again.
// issue 23 item 9
func FuzzReadManifests(f *testing.F) {
	f.Add([]byte(gnsYAML("g", "10.0.0.0/24")))
	f.Add([]byte("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\n  labels: {}\nspec:\n  cidr: 10.0.0.0/8\n---\n...\n"))
	f.Add([]byte(`{"kind":"List","apiVersion":"v1","items":[{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"a"},"spec":{"ingress":[{"action":"Allow"}]}}]}`))
	f.Add([]byte("- kind: NetworkPolicy\n  apiVersion: projectcalico.org/v3\n  metadata: {name: n, namespace: x}\n  spec: {selector: all(), order: 1e3}\n"))
	f.Add([]byte("kind: GlobalNetworkSet\napiVersion: projectcalico.org/v3\nmetadata:\n  name: g\nspec:\n  nets: [\n"))
	f.Add([]byte("--- \nkind: Tier\n--- # c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env := &Env{Deps: Deps{Stdin: bytes.NewReader(data)}}
		rs, err := env.readFiles(&fileFlags{filename: "-", skipEmpty: true})
		if err == nil {
			for _, r := range rs {
				roundTrip(t, r)
			}
		}

		// The same documents, enough of them for parseManifests to split.
		var big []byte
		for len(big) < parallelParseMin {
			big = append(append(big, data...), "\n---\n"...)
		}
		want, werr := v3.ParseManifests(big)
		got, gerr := parseManifests(big)
		if fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Fatalf("errors differ:\n got  %v\n want %v", gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parallel parse read %d resources, serial %d, or different ones", len(got), len(want))
		}
	})
}

// roundTrip checks that r encodes, decodes strictly to the same value and
// encodes to the same bytes again (the first trip may drop empty lists
// and maps; from then on it is exact).
func roundTrip(t *testing.T, r v3.Resource) {
	t.Helper()
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("marshal %T: %v", r, err)
	}
	back, err := v3.DecodeJSON(out)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", out, err)
	}
	again, err := json.Marshal(back)
	if err != nil || !bytes.Equal(out, again) {
		t.Fatalf("re-encoding differs (%v):\n%s\n%s", err, out, again)
	}
	third, err := v3.DecodeJSON(again)
	if err != nil || !reflect.DeepEqual(back, third) {
		t.Fatalf("re-decoded values differ (%v):\n%#v\n%#v", err, back, third)
	}
	if strings.TrimSpace(r.GetTypeMeta().Kind) == "" {
		t.Fatalf("resource without a kind: %s", out)
	}
}
