package commands

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestApplyEveryKindLayout applies a multi-document file holding every
// kind calicoctl may write and checks the raw etcd keys and values
// against DESIGN.md's layout: the key of each resource, compact JSON with
// kind and apiVersion, uid and creationTimestamp set, no resourceVersion,
// defaults filled in, and the cluster initialized on the first write.
func TestApplyEveryKindLayout(t *testing.T) {
	c := fresh(t)
	data, err := os.ReadFile("testdata/all-kinds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := v3.ParseManifests(data)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range want {
		seen[r.GetTypeMeta().Kind] = true
	}
	for _, k := range v3.Kinds() {
		if !seen[k.Kind] && k.Kind != v3.KindClusterInformation {
			t.Fatalf("testdata/all-kinds.yaml lacks kind %s", k.Kind)
		}
	}

	start := time.Now().Add(-time.Second)
	r := c.mustRun("apply", "-f", "testdata/all-kinds.yaml")
	if r.stdout != "Successfully applied 20 resource(s)\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	stored := dump(t)

	expectKeys := map[string]bool{
		"/calico/resources/v3/projectcalico.org/clusterinformations/default": true,
		"/calico/resources/v3/projectcalico.org/tiers/default":               true,
	}
	for _, res := range want {
		info, _ := v3.LookupKind(res.GetTypeMeta().Kind)
		m := res.GetObjectMeta()
		key := "/calico/resources/v3/projectcalico.org/" + info.Plural + "/"
		if info.Namespaced {
			key += m.Namespace + "/"
		}
		key += m.Name
		expectKeys[key] = true

		val, ok := stored[key]
		if !ok {
			t.Errorf("%s: no key %s", ident(res), key)
			continue
		}
		checkStoredValue(t, key, val, start)

		// The stored spec is the file's spec with Calico's defaults.
		d := v3.Clone(res)
		d.Default()
		var got, exp struct {
			Kind     string          `json:"kind"`
			Metadata v3.ObjectMeta   `json:"metadata"`
			Spec     json.RawMessage `json:"spec"`
		}
		wantJSON, _ := json.Marshal(d)
		_ = json.Unmarshal(wantJSON, &exp)
		if err := json.Unmarshal([]byte(val), &got); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got.Kind != res.GetTypeMeta().Kind {
			t.Errorf("%s: kind %q", key, got.Kind)
		}
		if !jsonEqual(got.Spec, exp.Spec) {
			t.Errorf("%s: spec\n got  %s\n want %s", key, got.Spec, exp.Spec)
		}
		for k, v := range exp.Metadata.Labels {
			if got.Metadata.Labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q", key, k, got.Metadata.Labels[k], v)
			}
		}
	}
	for k := range stored {
		if !expectKeys[k] {
			t.Errorf("unexpected key %s", k)
		}
	}
	for k := range expectKeys {
		if _, ok := stored[k]; !ok {
			t.Errorf("missing key %s", k)
		}
	}

	// Policies carry their tier in spec and label.
	for _, k := range []string{
		"/calico/resources/v3/projectcalico.org/networkpolicies/prod/allow-web",
		"/calico/resources/v3/projectcalico.org/globalnetworkpolicies/security.deny-db",
	} {
		if !strings.Contains(stored[k], `"projectcalico.org/tier":`) || !strings.Contains(stored[k], `"tier":`) {
			t.Errorf("%s lacks its tier: %s", k, stored[k])
		}
	}
	// The built-in profile is synthesized, never stored; it still reads back.
	if _, ok := stored["/calico/resources/v3/projectcalico.org/profiles/projectcalico-default-allow"]; ok {
		t.Error("projectcalico-default-allow must not be stored")
	}
	if r := c.mustRun("get", "profile", "projectcalico-default-allow", "-o", "yaml"); !strings.Contains(r.stdout, "action: Allow") {
		t.Error(r)
	}
	// Re-applying changes nothing but the revisions.
	c.mustRun("apply", "-f", "testdata/all-kinds.yaml")
	for k, v := range dump(t) {
		if !jsonEqual([]byte(v), []byte(stored[k])) {
			t.Errorf("%s changed on re-apply:\n%s\n%s", k, stored[k], v)
		}
	}
}

// checkStoredValue checks the shape DESIGN.md gives every stored value.
func checkStoredValue(t *testing.T, key, val string, after time.Time) {
	t.Helper()
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(val)); err != nil || compact.String() != val {
		t.Errorf("%s: value is not compact JSON: %s", key, val)
	}
	if !strings.HasPrefix(val, `{"kind":"`) || !strings.Contains(val, `"apiVersion":"projectcalico.org/v3"`) {
		t.Errorf("%s: value must start with kind and apiVersion: %s", key, val)
	}
	var v struct {
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(val), &v); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	if _, ok := v.Metadata["resourceVersion"]; ok {
		t.Errorf("%s: resourceVersion must not be stored", key)
	}
	if uid, _ := v.Metadata["uid"].(string); !uuidV4.MatchString(uid) {
		t.Errorf("%s: uid %q is not a UUIDv4", key, uid)
	}
	ts, _ := v.Metadata["creationTimestamp"].(string)
	if pt, err := time.Parse(time.RFC3339, ts); err != nil || pt.Before(after) || !strings.HasSuffix(ts, "Z") {
		t.Errorf("%s: creationTimestamp %q", key, ts)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
