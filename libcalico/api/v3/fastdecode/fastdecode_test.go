package fastdecode

import (
	"encoding/json"
	"reflect"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/internal/fixtures"
	"github.com/calico-etcd/calico/libcalico/model"
)

// TestDecodesAsEncodingJSON decodes every resource a real Calico wrote
// (testdata/fixtures) through DecodeLenient, now json-iterator, and
// through encoding/json, and expects the same values.
func TestDecodesAsEncodingJSON(t *testing.T) {
	data, err := fixtures.Read("calico-etcd-state.json")
	if err != nil {
		t.Fatal(err)
	}
	var kvs []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &kvs); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, kv := range kvs {
		k, ok := model.ParseKey(kv.Key).(model.ResourceKey)
		if !ok {
			continue
		}
		got, err := v3.DecodeLenient(k.Kind, kv.Value)
		if err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		want, err := v3.New(k.Kind)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(kv.Value, want); err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		if want.GetTypeMeta().Kind == "" {
			want.GetTypeMeta().Kind = k.Kind
		}
		if want.GetTypeMeta().APIVersion == "" {
			want.GetTypeMeta().APIVersion = v3.APIVersion
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: json-iterator gave\n%+v\nencoding/json gave\n%+v", kv.Key, got, want)
		}
		kinds[k.Kind] = true
	}
	if len(kinds) < 5 {
		t.Fatalf("only %d kinds in the fixture: %v", len(kinds), kinds)
	}
	t.Logf("kinds compared: %v", kinds)
}
