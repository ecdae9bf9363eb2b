package v3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/testutil/fixtures"
)

// polFixtureKinds maps the plurals this file covers to a constructor.
var polFixtureKinds = map[string]func() Resource{
	"networkpolicies":       func() Resource { return &NetworkPolicy{} },
	"globalnetworkpolicies": func() Resource { return &GlobalNetworkPolicy{} },
	"tiers":                 func() Resource { return &Tier{} },
	"profiles":              func() Resource { return &Profile{} },
	"networksets":           func() Resource { return &NetworkSet{} },
	"globalnetworksets":     func() Resource { return &GlobalNetworkSet{} },
	"workloadendpoints":     func() Resource { return &WorkloadEndpoint{} },
	"hostendpoints":         func() Resource { return &HostEndpoint{} },
}

type polFixtureEntry struct {
	Key    string
	Plural string
	Raw    json.RawMessage
}

// polFixtureEntries returns the fixture entries of the kinds above and
// fails the test if the fixture is missing or lacks any of them.
func polFixtureEntries(t *testing.T) []polFixtureEntry {
	t.Helper()
	data, err := fixtures.Read(fixtureName)
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	var kvs []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &kvs); err != nil {
		t.Fatalf("decoding fixture: %v", err)
	}
	const prefix = "/calico/resources/v3/projectcalico.org/"
	var out []polFixtureEntry
	seen := map[string]bool{}
	for _, kv := range kvs {
		rest, ok := strings.CutPrefix(kv.Key, prefix)
		if !ok {
			continue
		}
		plural, _, _ := strings.Cut(rest, "/")
		if polFixtureKinds[plural] == nil {
			continue
		}
		seen[plural] = true
		out = append(out, polFixtureEntry{Key: kv.Key, Plural: plural, Raw: kv.Value})
	}
	for plural := range polFixtureKinds {
		if !seen[plural] {
			t.Errorf("fixture has no %s", plural)
		}
	}
	return out
}

// polDecodeStrict decodes raw into a new resource, rejecting unknown
// fields so that every field in the fixture must exist in our types.
func polDecodeStrict(t *testing.T, e polFixtureEntry) Resource {
	t.Helper()
	r := polFixtureKinds[e.Plural]()
	dec := json.NewDecoder(bytes.NewReader(e.Raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		t.Fatalf("%s: decoding: %v", e.Key, err)
	}
	return r
}

func TestPolicyKindsFixtureRoundTrip(t *testing.T) {
	for _, e := range polFixtureEntries(t) {
		t.Run(e.Key, func(t *testing.T) {
			r := polDecodeStrict(t, e)
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("encoding: %v", err)
			}
			want, got := infraJSONMap(t, e.Raw), infraJSONMap(t, out)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip changed the value\nwant %s\n got %s", e.Raw, out)
			}
		})
	}
}

// Calico stores resources already defaulted, so Default must not change
// what it wrote.
func TestPolicyKindsFixtureDefaultIsNoop(t *testing.T) {
	for _, e := range polFixtureEntries(t) {
		t.Run(e.Key, func(t *testing.T) {
			r := polDecodeStrict(t, e)
			r.Default()
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("encoding: %v", err)
			}
			if want, got := infraJSONMap(t, e.Raw), infraJSONMap(t, out); !reflect.DeepEqual(want, got) {
				t.Errorf("Default changed Calico's value\nwant %s\n got %s", e.Raw, out)
			}
		})
	}
}

// Everything Calico wrote must pass our validation.
func TestPolicyKindsFixtureValidates(t *testing.T) {
	for _, e := range polFixtureEntries(t) {
		t.Run(e.Key, func(t *testing.T) {
			r := polDecodeStrict(t, e)
			if err := r.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestPolicyKindsImplementResource(t *testing.T) {
	for plural, mk := range polFixtureKinds {
		info, ok := LookupPlural(plural)
		if !ok {
			t.Fatalf("kind table lacks %s", plural)
		}
		r := mk()
		r.Default()
		if got := r.GetTypeMeta().Kind; got != info.Kind {
			t.Errorf("%s: Default set kind %q, want %q", plural, got, info.Kind)
		}
		if got := r.GetTypeMeta().APIVersion; got != APIVersion {
			t.Errorf("%s: Default set apiVersion %q", plural, got)
		}
		if got := r.GetObjectMeta().Namespace != ""; got != info.Namespaced {
			t.Errorf("%s: defaulted namespace set = %v, want %v", plural, got, info.Namespaced)
		}
	}
	for _, n := range []Resource{NewNetworkPolicy(), NewGlobalNetworkPolicy(), NewTier(), NewProfile(),
		NewNetworkSet(), NewGlobalNetworkSet(), NewWorkloadEndpoint(), NewHostEndpoint()} {
		if _, ok := LookupKind(n.GetTypeMeta().Kind); !ok || n.GetTypeMeta().APIVersion != APIVersion {
			t.Errorf("constructor set %+v", *n.GetTypeMeta())
		}
	}
}

// polWantErr fails unless err is a validation error with an entry naming
// field and value whose reason contains reason.
func polWantErr(t *testing.T, err error, field, value, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one for %s = %q", field, value)
	}
	var ve *cerrors.Validation
	if !errors.As(err, &ve) || !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("got %T %v, want *cerrors.Validation", err, err)
	}
	if want := "error with field " + field + " = '" + value + "'"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q\ndoes not contain %q", err, want)
	}
	for _, f := range ve.Fields {
		if f.Field == field && fmt.Sprint(f.Value) == value && strings.Contains(f.Reason, reason) {
			return
		}
	}
	t.Fatalf("error %q\nhas no %s = %q with reason containing %q", err, field, value, reason)
}
