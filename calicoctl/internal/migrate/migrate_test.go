package migrate

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
)

// TestOrderCoversEveryKind: an export holds every kind but the
// ClusterInformation, which has a part of its own.
func TestOrderCoversEveryKind(t *testing.T) {
	for _, k := range v3.Kinds() {
		if in := slices.Contains(Order, k.Kind); in == (k.Kind == v3.KindClusterInformation) {
			t.Errorf("kind %s: in Order %v", k.Kind, in)
		}
	}
	if slices.Index(Order, v3.KindTier) > slices.Index(Order, v3.KindGlobalNetworkPolicy) ||
		slices.Index(Order, v3.KindTier) > slices.Index(Order, v3.KindNetworkPolicy) {
		t.Error("tiers must come before the policies that name them")
	}
}

func TestSplit(t *testing.T) {
	p, err := Split([]byte("a: 1\n---\n===\n{}\n===\r\n{\"x\": 1}"))
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Resources) != "a: 1\n---\n" || string(p.ClusterInfo) != "{}\n" || string(p.IPAM) != `{"x": 1}` {
		t.Fatalf("%q %q %q", p.Resources, p.ClusterInfo, p.IPAM)
	}
	for _, bad := range []string{"", "a\n===\nb", "===\n===\n===\n", "a ===\nb\n=== x\n"} {
		if _, err := Split([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestDropUnknownLists keeps line numbers: a later error still names
// the file's line.
func TestDropUnknownLists(t *testing.T) {
	in := "apiVersion: projectcalico.org/v3\nitems: []\nkind: GlobalReportList\nmetadata:\n  resourceVersion: \"1\"\n---\n" +
		"apiVersion: projectcalico.org/v3\nitems: []\nkind: IPPoolList\n---\nkind: \"KubeControllersConfigurationList\"\nitems: []\n---\nkind: IPPool\nmetadata: [\n"
	out, dropped, err := DropUnknownLists([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(dropped, ",") != "GlobalReport,KubeControllersConfiguration" {
		t.Fatal(dropped)
	}
	if bytes.Count(out, []byte("\n")) != strings.Count(in, "\n") || bytes.Contains(out, []byte("GlobalReport")) || !bytes.Contains(out, []byte("IPPoolList")) {
		t.Fatalf("%q", out)
	}
	if _, err := v3.ParseManifests(out); err == nil || !strings.Contains(err.Error(), "line 15") {
		t.Fatalf("want an error naming line 15: %v", err)
	}
	if _, _, err := DropUnknownLists([]byte("kind: GlobalReportList\nitems:\n- metadata: {name: a}\n")); err == nil ||
		!strings.Contains(err.Error(), "1 GlobalReport resource(s)") {
		t.Fatal(err)
	}
}

// TestReadWriteParse exports a memory datastore and parses the file back.
func TestReadWriteParse(t *testing.T) {
	ctx := context.Background()
	be := memory.New()
	c := client.New(be)
	p := v3.NewIPPool()
	p.Name, p.Spec.CIDR = "p", "10.0.0.0/16"
	if _, err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[model.Key]string{
		model.HandleKey{HandleID: "h"}:                                `{"block":{"10.0.0.0/26":1}}`,
		model.IPAMConfigKey{}:                                         `{"strict_affinity":true}`,
		model.ResourceKey{Kind: v3.KindGlobalNetworkSet, Name: "bad"}: `{"spec": 7}`,
	} {
		if _, err := be.Create(ctx, &backend.KVPair{Key: k, Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Read(ctx, be)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Skipped) != 1 || !strings.Contains(s.Skipped[0].Error(), "globalnetworksets/bad") {
		t.Fatalf("skipped %v", s.Skipped)
	}
	if got := s.Resources[v3.KindIPPool]; len(got) != 1 || got[0].GetObjectMeta().UID != "" || got[0].GetObjectMeta().ResourceVersion != "" {
		t.Fatalf("pools %v", got)
	}
	var b bytes.Buffer
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	parts, err := Split(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := v3.ParseManifests(parts.Resources)
	if err != nil || len(rs) != 2 { // the pool and the tier default
		t.Fatalf("%v %v", rs, err)
	}
	if ci, err := ParseClusterInfo(parts.ClusterInfo); err != nil || ci.Spec.ClusterGUID == "" {
		t.Fatalf("%v %v", ci, err)
	}
	entries, err := ParseIPAM(parts.IPAM)
	if err != nil || len(entries) != 2 || string(entries[1].Value) != `{"strict_affinity":true}` {
		t.Fatalf("%v %v", entries, err)
	}

	dst := memory.New()
	if err := CheckEmpty(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if n, err := WriteIPAM(ctx, dst, entries); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	if err := CheckEmpty(ctx, dst); err == nil || err.Error() != "found existing IPAM resources" {
		t.Fatal(err)
	}
	if n, err := WriteIPAM(ctx, dst, entries); n != 0 || err == nil {
		t.Fatal("WriteIPAM overwrote existing keys")
	}
	if err := CheckEmpty(ctx, be); err == nil || err.Error() != "found existing Calico GlobalNetworkSet resource" {
		t.Fatal(err)
	}
}
