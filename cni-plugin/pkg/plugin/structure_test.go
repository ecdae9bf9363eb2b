package plugin

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStructure keeps the packages to one job each: the dataplane knows
// nothing of the datastore, the endpoint store nothing of the kernel, and
// every package says what it is for.
func TestStructure(t *testing.T) {
	forbidden := map[string][]string{
		"../dataplane": {"github.com/calico-etcd/calico/libcalico", "github.com/containernetworking/cni"},
		"../wep":       {"github.com/vishvananda/netlink", "github.com/containernetworking/plugins"},
	}
	// Pure helpers any package may use.
	allowed := map[string]bool{"github.com/calico-etcd/calico/libcalico/netaddr": true}
	dirs := []string{".", "../dataplane", "../wep", "../agent", "../front", "../../cmd/calico", "../../cmd/calico-direct",
		"../../cmd/calico-cni-agent", "../../internal/nettest", "../../acceptance"}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		documented := false
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil {
				doc := af.Doc.Text()
				documented = documented || strings.HasPrefix(doc, "Package ") || strings.HasPrefix(doc, "Command ")
			}
			for _, imp := range af.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				for _, bad := range forbidden[dir] {
					if strings.HasPrefix(path, bad) && !allowed[path] {
						t.Errorf("%s imports %s", f, imp.Path.Value)
					}
				}
			}
		}
		if !documented {
			t.Errorf("package in %s has no package doc", dir)
		}
	}
}
