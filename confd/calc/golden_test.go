package calc

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// fakeSecrets maps "name/key" to a value.
type fakeSecrets map[string]string

func (f fakeSecrets) Lookup(name, key string) (string, error) {
	v, ok := f[name+"/"+key]
	if !ok {
		return "", fmt.Errorf("secret %s has no key %s", name, key)
	}
	return v, nil
}

// loadState reads manifests in order (later resources replace earlier
// ones with the same name) and adds the given affinities ("cidr" or
// "cidr=state").
func loadState(t testing.TB, files []string, affinities []string) *State {
	t.Helper()
	s := NewState()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata", f+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		rs, err := v3.ParseManifests(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatalf("%s: invalid fixture: %v", f, err)
			}
			if !s.Add(r) {
				t.Fatalf("%s: unexpected kind %s", f, r.GetTypeMeta().Kind)
			}
		}
	}
	for _, a := range affinities {
		cidr, state, _ := strings.Cut(a, "=")
		if state == "" {
			state = model.AffinityConfirmed
		}
		s.Affinities[netip.MustParsePrefix(cidr)] = &model.BlockAffinity{State: state}
	}
	return s
}

var commonAffinities = []string{
	"10.65.1.0/26", "10.66.1.0/26", "10.68.1.0/26", "10.67.1.0/26",
	"10.65.2.0/26=pending", "10.65.3.0/26=pendingDeletion", "fd00:65::/122",
}

var goldenCases = []struct {
	golden     string
	files      []string
	node       string
	affinities []string
	warnings   []string
}{
	{golden: "mesh", files: []string{"nodes-common", "mesh"}, node: "node-a", affinities: commonAffinities},
	{golden: "mesh-node-c", files: []string{"nodes-common", "mesh"}, node: "node-c"},
	{golden: "route-reflector", files: []string{"nodes-common", "route-reflector"}, node: "node-a", affinities: commonAffinities},
	{golden: "route-reflector-client", files: []string{"nodes-common", "route-reflector"}, node: "node-c"},
	{golden: "tor", files: []string{"nodes-common", "tor"}, node: "node-a", affinities: commonAffinities,
		warnings: []string{"BGPPeer missing-secret: password secret bgp-secrets/nope: secret bgp-secrets has no key nope; sessions left out"}},
	{golden: "tor-rack2", files: []string{"nodes-common", "tor"}, node: "node-c"},
	{golden: "per-node-as", files: []string{"nodes-common", "per-node-as"}, node: "node-a"},
}

func TestGolden(t *testing.T) {
	secrets := fakeSecrets{"bgp-secrets/tor-r1": "s3cret"}
	for _, tc := range goldenCases {
		t.Run(tc.golden, func(t *testing.T) {
			s := loadState(t, tc.files, tc.affinities)
			res, err := Compute(s, tc.node, secrets)
			if err != nil {
				t.Fatal(err)
			}
			if err := res.Config.Validate(); err != nil {
				t.Fatalf("output does not validate: %v", err)
			}
			if strings.Join(res.Warnings, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(res.Warnings, "\n"), strings.Join(tc.warnings, "\n"))
			}
			got, err := bgpconfig.Marshal(res.Config)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs (run go test -update to accept):\n%s", path, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff is a minimal diff: the first differing lines with context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, wl, gl)
		}
	}
	return "(equal)"
}
