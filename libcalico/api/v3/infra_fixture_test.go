package v3

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/testutil/fixtures"
)

// fixtureName is the etcd dump written by Calico v3.34.
const fixtureName = "calico-etcd-state.json"

// infraFixturePlurals are the stored kinds this helper owns.
var infraFixturePlurals = []string{
	"ippools", "ipreservations", "nodes", "bgppeers", "bgpconfigurations", "bgpfilters",
	"felixconfigurations", "clusterinformations",
}

type infraFixtureEntry struct {
	Key    string
	Plural string
	Raw    json.RawMessage
}

// infraFixtureEntries returns the fixture values of infraFixturePlurals.
func infraFixtureEntries(t *testing.T) []infraFixtureEntry {
	t.Helper()
	data, err := fixtures.Read(fixtureName)
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	var all []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatalf("parsing fixture: %v", err)
	}
	var out []infraFixtureEntry
	seen := map[string]int{}
	for _, e := range all {
		rest, ok := strings.CutPrefix(e.Key, "/calico/resources/v3/projectcalico.org/")
		if !ok {
			continue
		}
		plural, _, _ := strings.Cut(rest, "/")
		for _, p := range infraFixturePlurals {
			if p == plural {
				out = append(out, infraFixtureEntry{Key: e.Key, Plural: plural, Raw: e.Value})
				seen[plural]++
			}
		}
	}
	for _, p := range []string{"ippools", "nodes", "bgppeers", "bgpconfigurations", "felixconfigurations", "clusterinformations"} {
		if seen[p] == 0 {
			t.Fatalf("fixture has no %s", p)
		}
	}
	return out
}

// infraJSONMap decodes JSON into a map, dropping an empty "status" so that
// `"status": {}` and no status compare equal. Both fixture tests use it.
func infraJSONMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	return m
}

func TestInfraFixtureRoundTrip(t *testing.T) {
	for _, e := range infraFixtureEntries(t) {
		t.Run(e.Key, func(t *testing.T) {
			r, err := DecodeJSON(e.Raw)
			if err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			info, _ := LookupKind(r.GetTypeMeta().Kind)
			if info.Plural != e.Plural {
				t.Fatalf("kind %s stored under %s", r.GetTypeMeta().Kind, e.Plural)
			}
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := infraJSONMap(t, out), infraJSONMap(t, e.Raw); !reflect.DeepEqual(got, want) {
				t.Errorf("round trip differs\n got: %s\nwant: %s", out, e.Raw)
			}
		})
	}
}

// Stored values already carry Calico's defaults, so Default must not change them.
func TestInfraFixtureDefaultIsNoop(t *testing.T) {
	for _, e := range infraFixtureEntries(t) {
		t.Run(e.Key, func(t *testing.T) {
			r, err := DecodeLenient(kindOfPlural(t, e.Plural), e.Raw)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := json.Marshal(r)
			r.Default()
			after, _ := json.Marshal(r)
			if string(before) != string(after) {
				t.Errorf("Default changed a stored value\nbefore: %s\n after: %s", before, after)
			}
		})
	}
}

func TestInfraFixtureValidates(t *testing.T) {
	for _, e := range infraFixtureEntries(t) {
		t.Run(e.Key, func(t *testing.T) {
			r, err := DecodeLenient(kindOfPlural(t, e.Plural), e.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Validate(); err != nil {
				t.Errorf("fixture value fails validation: %v", err)
			}
		})
	}
}

// The fixture's pools do not overlap each other.
func TestInfraFixturePoolsDoNotOverlap(t *testing.T) {
	var pools []*IPPool
	for _, e := range infraFixtureEntries(t) {
		if e.Plural != "ippools" {
			continue
		}
		r, err := DecodeLenient(KindIPPool, e.Raw)
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, r.(*IPPool))
	}
	for _, p := range pools {
		if err := CheckPoolOverlap(p, pools); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
	}
}

func TestInfraKindsImplementResource(t *testing.T) {
	for _, mk := range []func() Resource{
		func() Resource { return NewIPPool() }, func() Resource { return NewIPReservation() },
		func() Resource { return NewNode() }, func() Resource { return NewBGPPeer() },
		func() Resource { return NewBGPConfiguration() }, func() Resource { return NewBGPFilter() },
		func() Resource { return NewFelixConfiguration() }, func() Resource { return NewClusterInformation() },
	} {
		r := mk()
		tm := r.GetTypeMeta()
		if _, ok := LookupKind(tm.Kind); !ok || tm.APIVersion != APIVersion {
			t.Errorf("%T: type meta %+v", r, *tm)
		}
		// An empty resource must never panic in Default or Validate.
		r.Default()
		_ = r.Validate()
	}
}

func kindOfPlural(t *testing.T, plural string) string {
	t.Helper()
	info, ok := LookupPlural(plural)
	if !ok {
		t.Fatalf("unknown plural %s", plural)
	}
	return info.Kind
}

// infraWantErr asserts err is a *cerrors.Validation with a field error of
// that path and printed value whose reason contains reason.
func infraWantErr(t *testing.T, err error, field, value, reason string) {
	t.Helper()
	var ve *cerrors.Validation
	if !errors.As(err, &ve) {
		t.Fatalf("want validation error on %s, got %v", field, err)
	}
	if !errors.Is(err, cerrors.ErrValidation) {
		t.Errorf("error does not match ErrValidation")
	}
	for _, f := range ve.Fields {
		if f.Field == field && fmt.Sprint(f.Value) == value && strings.Contains(f.Reason, reason) {
			if !strings.Contains(err.Error(), "error with field "+field+" = '"+value+"'") {
				t.Errorf("message %q lacks Calico's form", err.Error())
			}
			return
		}
	}
	t.Errorf("no error %s = %q (%s) in: %v", field, value, reason, err)
}

// infraNoErr fails when err is not nil.
func infraNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("unexpected error: %v", err)
	}
}
