package client_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

type fixtureKV struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// normalize decodes JSON to generic values, dropping resourceVersion and
// empty status objects, which Calico writes sometimes and we omit.
func normalize(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("bad JSON %s: %v", b, err)
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "resourceVersion")
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	return m
}

// TestCalicoFixtureRoundTrip loads an etcd written by Calico v3.34 and reads
// every object back through our client and IPAM types with nothing lost.
func TestCalicoFixtureRoundTrip(t *testing.T) {
	data := testutil.Fixture(t, "calico-etcd-state.json")
	var kvs []fixtureKV
	if err := json.Unmarshal(data, &kvs); err != nil {
		t.Fatal(err)
	}
	srv := testutil.StartEtcd(t)
	raw := srv.RawClient(t)
	for _, kv := range kvs {
		if _, err := raw.Put(ctx, kv.Key, string(kv.Value)); err != nil {
			t.Fatal(err)
		}
	}
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(be)
	defer c.Close()

	listed := map[string]map[string]bool{}
	resources, ipam := 0, 0
	for _, kv := range kvs {
		k := model.ParseKey(kv.Key)
		if k == nil {
			t.Errorf("key %s not understood", kv.Key)
			continue
		}
		if p, err := k.Path(); err != nil || p != kv.Key {
			t.Errorf("key %s maps back to %s (%v)", kv.Key, p, err)
		}
		var got []byte
		switch k := k.(type) {
		case model.ResourceKey:
			resources++
			r, err := c.Get(ctx, k.Kind, k.Namespace, k.Name)
			if err != nil {
				t.Errorf("get %s: %v", k, err)
				continue
			}
			if r.GetObjectMeta().ResourceVersion == "" {
				t.Errorf("get %s: no resourceVersion", k)
			}
			got, _ = json.Marshal(r)
			if listed[k.Kind] == nil {
				listed[k.Kind] = map[string]bool{}
				items, _, err := c.List(ctx, k.Kind, client.ListOptions{})
				if err != nil {
					t.Fatalf("list %s: %v", k.Kind, err)
				}
				for _, it := range items {
					listed[k.Kind][it.GetObjectMeta().Namespace+"/"+it.GetObjectMeta().Name] = true
				}
			}
			if !listed[k.Kind][k.Namespace+"/"+k.Name] {
				t.Errorf("list %s misses %s", k.Kind, k)
			}
		default:
			ipam++
			v, err := model.Decode(k, kv.Value, 1)
			if err != nil {
				t.Errorf("decode %s: %v", k, err)
				continue
			}
			got, _ = json.Marshal(v)
		}
		want := normalize(t, kv.Value)
		if have := normalize(t, got); !reflect.DeepEqual(have, want) {
			t.Errorf("%s lost or changed data:\n have %s\n want %s", kv.Key, js(have), js(want))
		}
	}
	if resources == 0 || ipam == 0 || !strings.Contains(string(data), "workloadendpoints") {
		t.Fatalf("fixture exercised %d resources and %d IPAM keys", resources, ipam)
	}
	t.Logf("%d resources and %d IPAM keys round-tripped", resources, ipam)
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

// goccy/go-json, which felix, confd and calicoctl decode with
// (client.WithUnmarshal, syncer.Config.Unmarshal), gives what
// encoding/json gives for every value Calico wrote, and fails where it
// fails.
func TestFixtureDecodesAlikeWithGoccy(t *testing.T) {
	var kvs []fixtureKV
	if err := json.Unmarshal(testutil.Fixture(t, "calico-etcd-state.json"), &kvs); err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, kv := range kvs {
		k := model.ParseKey(kv.Key)
		if k == nil {
			continue
		}
		for _, data := range [][]byte{kv.Value, kv.Value[:len(kv.Value)/2], []byte(`{"metadata":{"name":7}}`), []byte(`[]`)} {
			want, werr := model.Decode(k, data, 5)
			got, gerr := model.DecodeWith(gojson.Unmarshal, k, data, 5)
			if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s %.40q: goccy/go-json gave %#v (%v), encoding/json %#v (%v)", kv.Key, data, got, gerr, want, werr)
			}
			compared++
		}
	}
	if compared < 100 {
		t.Fatalf("compared only %d values", compared)
	}
}

// FuzzDecodeAlikeWithGoccy: goccy/go-json and encoding/json decode any
// stored value of these kinds alike, or both fail.
func FuzzDecodeAlikeWithGoccy(f *testing.F) {
	f.Add([]byte(`{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"a","labels":{"x":"y"}},"spec":{"nets":["10.0.0.0/8"]}}`))
	f.Add([]byte(`{"kind":"NetworkPolicy","metadata":{"name":"a","creationTimestamp":"2026-11-22T03:43:01Z"},"spec":{"order":1.5,"ingress":[{"action":"Allow","destination":{"ports":[80,"1:2"]}}]}}`))
	f.Add([]byte(`{"spec":{"ipNetworks":["10.0.0.1/32"],"profiles":["p"],"ports":[{"name":"h","port":80,"protocol":"TCP"}]}}`))
	f.Add([]byte(`{"spec":{"routeTableRanges":[{"min":1,"max":2}],"logSeverityScreen":"Info","ipipEnabled":true}}`))
	keys := []model.ResourceKey{
		{Kind: v3.KindGlobalNetworkSet, Name: "a"},
		{Kind: v3.KindNetworkPolicy, Namespace: "n", Name: "a"},
		{Kind: v3.KindWorkloadEndpoint, Namespace: "n", Name: "a"},
		{Kind: v3.KindFelixConfiguration, Name: "a"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range keys {
			want, werr := model.Decode(k, data, 5)
			got, gerr := model.DecodeWith(gojson.Unmarshal, k, data, 5)
			if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s %q: goccy/go-json gave %#v (%v), encoding/json %#v (%v)", k.Kind, data, got, gerr, want, werr)
			}
		}
	})
}
