package v3

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/testutil/fixtures"
)

func TestNewCoversAllKinds(t *testing.T) {
	for _, k := range Kinds() {
		r, err := New(k.Kind)
		if err != nil {
			t.Fatalf("%s: %v", k.Kind, err)
		}
		if tm := r.GetTypeMeta(); tm.Kind != k.Kind || tm.APIVersion != APIVersion {
			t.Errorf("%s: type meta %+v", k.Kind, *tm)
		}
	}
	if _, err := New("Pod"); err == nil || !strings.Contains(err.Error(), `unknown kind "Pod"`) {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	r, err := DecodeJSON([]byte(`{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","asNumber":"1.10"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := r.(*BGPPeer); !ok || p.Spec.ASNumber != 65546 || p.Name != "p" {
		t.Errorf("decoded %#v", r)
	}

	bad := []struct{ name, in, want string }{
		{"unknown field", `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/8","ipip":{"enabled":true}}}`, `unknown field "ipip"`},
		{"unknown top field", `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},"extra":1}`, `unknown field "extra"`},
		{"unknown kind", `{"kind":"Pod","apiVersion":"projectcalico.org/v3"}`, `unknown kind "Pod"`},
		{"no kind", `{"apiVersion":"projectcalico.org/v3"}`, "kind is required"},
		{"bad version", `{"kind":"IPPool","apiVersion":"crd.projectcalico.org/v1"}`, `unsupported apiVersion "crd.projectcalico.org/v1"`},
		{"no version", `{"kind":"IPPool"}`, "apiVersion is required"},
		{"trailing", `{"kind":"IPPool","apiVersion":"projectcalico.org/v3"} {}`, "unexpected data after the object"},
		{"trailing brace", `{"kind":"IPPool","apiVersion":"projectcalico.org/v3"}}`, "IPPool"},
		{"syntax", "{\"kind\":\"IPPool\",\n\"apiVersion\": }", "line 2"},
		{"wrong type", `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","spec":{"blockSize":"26"}}`, "blockSize"},
		{"list", `{"kind":"IPPoolList","apiVersion":"projectcalico.org/v3","items":[]}`, "ParseManifests"},
		{"null", `null`, "kind is required"},
		{"empty", ``, "reading kind"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeJSON([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestDecodeLenient(t *testing.T) {
	r, err := DecodeLenient(KindFelixConfiguration, []byte(`{"metadata":{"name":"default"},"spec":{"ipipEnabled":true,"someFutureField":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	fc := r.(*FelixConfiguration)
	if fc.Kind != KindFelixConfiguration || fc.APIVersion != APIVersion || fc.Spec.IPIPEnabled == nil || !*fc.Spec.IPIPEnabled {
		t.Errorf("decoded %+v", fc)
	}
	if _, err := DecodeLenient(KindIPPool, []byte(`{"kind":"BGPPeer"}`)); err == nil {
		t.Error("mismatched kind accepted")
	}
	if _, err := DecodeLenient("Nope", []byte(`{}`)); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := DecodeLenient(KindIPPool, []byte(`{`)); err == nil {
		t.Error("bad JSON accepted")
	}
}

func TestClone(t *testing.T) {
	p := infraPool("p", "10.0.0.0/16")
	p.Labels = map[string]string{"a": "b"}
	p.Default()
	c := Clone(p)
	c.Labels["a"] = "changed"
	*c.Spec.AssignmentMode = AssignmentModeManual
	c.Spec.AllowedUses[0] = IPPoolAllowedUseLoadBalancer
	if p.Labels["a"] != "b" || *p.Spec.AssignmentMode != AssignmentModeAutomatic || p.Spec.AllowedUses[0] != IPPoolAllowedUseWorkload {
		t.Errorf("clone shares memory with the original: %+v", p)
	}
	var nilPool *IPPool
	if Clone(nilPool) != nil {
		t.Error("clone of nil")
	}
	var r Resource = p
	if rc := Clone(r); rc.(*IPPool) == p || rc.(*IPPool).Spec.CIDR != p.Spec.CIDR {
		t.Error("clone through the interface")
	}
}

const infraManifests = `# leading comment
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
  labels:
    tier: 1
spec:
  cidr: 10.1.0.0/16
  ipipMode: Always
  natOutgoing: yes
---
---
# only a comment
---
apiVersion: projectcalico.org/v3
kind: BGPPeerList
items:
- metadata:
    name: peer-1
  spec:
    peerIP: 192.168.1.1
    asNumber: 64567
- apiVersion: projectcalico.org/v3
  kind: BGPPeer
  metadata:
    name: peer-2
  spec:
    peerSelector: rr == 'true'
--- {"apiVersion": "projectcalico.org/v3", "kind": "ClusterInformation", "metadata": {"name": "default"}, "spec": {"clusterGUID": "abc"}}
---
apiVersion: v1
kind: List
items:
- apiVersion: projectcalico.org/v3
  kind: FelixConfiguration
  metadata:
    name: default
  spec:
    reportingInterval: 0s
    failsafeInboundHostPorts:
    - protocol: TCP
      port: 22
- apiVersion: projectcalico.org/v3
  kind: NetworkSet
  metadata:
    name: ns1
    namespace: prod
  spec:
    nets: [10.0.0.0/8]
...
`

func TestParseManifests(t *testing.T) {
	rs, err := ParseManifests([]byte(infraManifests))
	if err != nil {
		t.Fatal(err)
	}
	var kinds, names []string
	for _, r := range rs {
		kinds = append(kinds, r.GetTypeMeta().Kind)
		names = append(names, r.GetObjectMeta().Name)
	}
	want := "IPPool BGPPeer BGPPeer ClusterInformation FelixConfiguration NetworkSet"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("kinds %v, want %s", kinds, want)
	}
	if strings.Join(names, " ") != "pool-a peer-1 peer-2 default default ns1" {
		t.Errorf("names %v", names)
	}
	pool := rs[0].(*IPPool)
	if pool.Labels["tier"] != "1" || !pool.Spec.NATOutgoing || pool.Spec.IPIPMode != IPIPModeAlways {
		t.Errorf("pool %+v", pool)
	}
	if p := rs[1].(*BGPPeer); p.APIVersion != APIVersion || p.Spec.ASNumber != 64567 {
		t.Errorf("list item %+v", p)
	}
	fc := rs[4].(*FelixConfiguration)
	if fc.Spec.ReportingInterval == nil || fc.Spec.ReportingInterval.Duration != 0 || len(*fc.Spec.FailsafeInboundHostPorts) != 1 {
		t.Errorf("felix %+v", fc.Spec)
	}
}

func TestParseManifestsJSONAndEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "---\n---\n", "# nothing\n", "null"} {
		rs, err := ParseManifests([]byte(in))
		if err != nil || len(rs) != 0 {
			t.Errorf("%q: %d resources, %v", in, len(rs), err)
		}
	}
	rs, err := ParseManifests([]byte(`{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n1"},"spec":{"bgp":{"ipv4Address":"10.0.0.1/24"}}}`))
	if err != nil || len(rs) != 1 || rs[0].(*Node).Spec.BGP.IPv4Address != "10.0.0.1/24" {
		t.Errorf("json object: %v %v", rs, err)
	}
	rs, err = ParseManifests([]byte(`[{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n1"}},
		{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n2"}}]`))
	if err != nil || len(rs) != 2 {
		t.Errorf("json array: %v %v", rs, err)
	}
}

func TestParseManifestsErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unknown field", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/8\n  ipipmodes: Always\n",
			`document 1 (line 1): IPPool "p": json: unknown field "ipipmodes"`},
		{"unknown kind", "apiVersion: projectcalico.org/v3\nkind: Pod\n", `unknown kind "Pod"`},
		{"bad version", "apiVersion: projectcalico.org/v1\nkind: IPPool\n", `unsupported apiVersion "projectcalico.org/v1"`},
		{"malformed", "apiVersion: projectcalico.org/v3\nkind: IPPool\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: [x\n",
			"document 2 (line 4)"},
		{"malformed line", "# x\n---\n\nkind: IPPool\nspec:\n\tcidr: x\n", "document 2 (line 3): yaml: line 6"},
		{"duplicate key", "apiVersion: projectcalico.org/v3\nkind: IPPool\nkind: IPPool\n", `line 3: key "kind" already set`},
		{"list item", "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n  spec: {bogus: 1}\n",
			`document 1 (line 1): item 2: IPPool "b": json: unknown field "bogus"`},
		{"list field", "apiVersion: projectcalico.org/v3\nkind: List\nitemz: []\n", `unknown field "itemz"`},
		{"scalar", "hello\n", "a manifest must be a mapping"},
		{"missing kind", "apiVersion: projectcalico.org/v3\nmetadata: {name: x}\n", "kind is required"},
		{"port out of range", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination: {ports: [80, 70000]}\n",
			`GlobalNetworkPolicy "p": spec.ingress[0].destination.ports[1]: invalid port 70000`},
		{"port range", "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  egress:\n  - action: Allow\n  - action: Deny\n    protocol: UDP\n    source: {notPorts: [\"9:70000\"]}\n",
			`NetworkPolicy "p": spec.egress[1].source.notPorts[0]: invalid maximum port number in range (9:70000)`},
		{"protocol", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n  - action: Allow\n    protocol: 300\n",
			`spec.ingress[0].protocol: `},
		{"asNumber", "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 10.0.0.1, asNumber: -5}\n",
			`BGPPeer "p": spec.asNumber: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifests([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// DecodeJSON names the field of a value that refuses to decode.
func TestDecodeJSONNamesBadValue(t *testing.T) {
	_, err := DecodeJSON([]byte(`{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkPolicy","metadata":{"name":"p"},` +
		`"spec":{"egress":[{"action":"Allow","protocol":"TCP","destination":{"ports":["http",65536]}}]}}`))
	want := "decoding GlobalNetworkPolicy: spec.egress[0].destination.ports[1]: invalid port 65536"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want error containing %q", err, want)
	}
}

// The fixture's resources, of every kind, parse as a JSON array manifest.
func TestParseManifestsFixture(t *testing.T) {
	data, err := fixtures.Read(fixtureName)
	if err != nil {
		t.Fatal(err)
	}
	var all []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	for _, e := range all {
		if strings.HasPrefix(e.Key, "/calico/resources/v3/") {
			items = append(items, e.Value)
		}
	}
	arr, _ := json.Marshal(items)
	rs, err := ParseManifests(arr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(items) {
		t.Errorf("parsed %d of %d", len(rs), len(items))
	}
}

func FuzzParseManifests(f *testing.F) {
	f.Add([]byte(infraManifests))
	f.Add([]byte("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/8\n"))
	f.Add([]byte(`[{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","spec":{"asNumber":"1.1"}}]`))
	f.Add([]byte("--- &a [*a]\n"))
	f.Add([]byte("kind: List\nitems: [{kind: FelixConfiguration, apiVersion: projectcalico.org/v3, spec: {routeTableRanges: [{min: 1, max: 2}]}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseManifests(data)
		if err != nil {
			return
		}
		for _, r := range rs {
			checkRoundTrip(t, r)
			r.Default()
			_ = r.Validate()
			if c := Clone(r); !reflect.DeepEqual(c, r) {
				t.Fatalf("clone differs:\n%#v\n%#v", c, r)
			}
		}
	})
}

// checkRoundTrip checks that a parsed resource encodes, decodes strictly
// to the same value and encodes to the same bytes again. The first trip
// may turn an empty list or map into none (omitempty); from then on the
// trip is exact.
// issue 23 item 9
func checkRoundTrip(t *testing.T, r Resource) {
	t.Helper()
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("marshal %T: %v", r, err)
	}
	back, err := DecodeJSON(out)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", out, err)
	}
	again, err := json.Marshal(back)
	if err != nil {
		t.Fatalf("marshal the re-decoded %T: %v", back, err)
	}
	if !bytes.Equal(out, again) {
		t.Fatalf("re-encoding differs:\n%s\n%s", out, again)
	}
	third, err := DecodeJSON(again)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", again, err)
	}
	if !reflect.DeepEqual(back, third) {
		t.Fatalf("re-decoded values differ:\n%#v\n%#v", back, third)
	}
}
