package printer

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func pools(n int) []v3.Resource {
	out := make([]v3.Resource, n)
	for i := range out {
		p := v3.NewIPPool()
		p.Name = fmt.Sprintf("pool-%d", i)
		p.ResourceVersion = fmt.Sprint(10 + i)
		p.Labels = map[string]string{"a": "1", "multi": "line\nvalue"}
		p.Spec.CIDR = fmt.Sprintf("10.%d.0.0/16", i)
		p.Spec.IPIPMode = v3.IPIPModeAlways
		p.Spec.NATOutgoing = true
		p.Default()
		out[i] = p
	}
	return out
}

func TestYAMLListMatchesWholeMarshal(t *testing.T) {
	for _, n := range []int{0, 1, 7} {
		l := NewList(v3.KindIPPool, "42")
		l.Items = append(l.Items, pools(n)...)
		want, err := yaml.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := (YAML{}).Print(&got, []any{l}); err != nil {
			t.Fatal(err)
		}
		if got.String() != string(want) {
			t.Fatalf("n=%d:\ngot:\n%s\nwant:\n%s", n, got.String(), want)
		}
	}
}

func TestYAMLSeveralMatchesWholeMarshal(t *testing.T) {
	ps := pools(3)
	objs := []any{ps[0], ps[1], ps[2]}
	want, _ := yaml.Marshal(objs)
	var got bytes.Buffer
	if err := (YAML{}).Print(&got, objs); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Fatalf("got:\n%s\nwant:\n%s", got.String(), want)
	}
}

func TestJoinAndTruncate(t *testing.T) {
	if got := joinAndTruncate([]string{"aaaa", "bbbb", "cccc"}, ",", 8); got != "aaaa,..." {
		t.Fatal(got)
	}
	if got := join(map[string]string{"b": "2", "a": "1"}, ","); got != "a=1,b=2" {
		t.Fatal(got)
	}
	if got := join(nil, ","); got != "" {
		t.Fatal(got)
	}
}

func TestJSONPath(t *testing.T) {
	p := pools(1)[0]
	for path, want := range map[string]string{
		".metadata.name":       "pool-0",
		".spec.natOutgoing":    "true",
		".spec.allowedUses[1]": "Tunnel",
		".spec.allowedUses":    `["Workload","Tunnel"]`,
		".spec.nothing":        "<none>",
		".spec.blockSize":      "26",
	} {
		got, err := jsonPath(p, path)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", path, got, err, want)
		}
	}
}

func TestUnknownFormatAndHeading(t *testing.T) {
	if _, err := New("xml", Options{}); err == nil || !strings.Contains(err.Error(), "unrecognized output format 'xml'") {
		t.Fatal(err)
	}
	tbl, _ := New("custom-columns=NAME,BOGUS", Options{})
	err := tbl.Print(&bytes.Buffer{}, []any{pools(1)[0]})
	if err == nil || !strings.Contains(err.Error(), "unknown heading BOGUS") {
		t.Fatal(err)
	}
}
