package layering

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const prefix = "github.com/calico-etcd/calico/"

// workspace returns the checkout's root and its modules (go.work's use
// lines, as paths relative to the root).
func workspace(t *testing.T) (string, []string) {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.work above the test")
		}
		dir = filepath.Dir(dir)
	}
	f, err := os.Open(filepath.Join(dir, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mods []string
	inUse := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "use ("):
			inUse = true
		case inUse && line == ")":
			inUse = false
		case inUse && line != "":
			mods = append(mods, filepath.Clean(strings.TrimPrefix(line, "./")))
		case strings.HasPrefix(line, "use "):
			mods = append(mods, filepath.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "use "), "./")))
		}
	}
	if len(mods) < 2 {
		t.Fatalf("go.work lists %v", mods)
	}
	// Longest first, so deploy/lab wins over deploy.
	sort.Slice(mods, func(i, j int) bool { return len(mods[i]) > len(mods[j]) })
	return dir, mods
}

func moduleOf(mods []string, rel string) string {
	for _, m := range mods {
		if rel == m || strings.HasPrefix(rel, m+"/") {
			return m
		}
	}
	return ""
}

// forbidden are imports the API types must not have.
var forbidden = []string{"go.etcd.io/", "github.com/vishvananda/netlink", "github.com/spf13/cobra", "github.com/coreos/go-iptables"}

// importRule says why module from may not import another module to (""
// if it may); test is whether the importing file is test code.
func importRule(from, to string, test bool) string {
	switch {
	case from == "testutil":
		return "testutil imports no other module"
	case to == "libcalico":
		return ""
	case to != "testutil":
		return "modules import only libcalico, testutil and themselves"
	case from == "libcalico" && !test:
		return "libcalico's own code does not import testutil (the etcd server stays out of the daemons' builds)"
	case !test && from != "deploy/lab":
		return "only tests (and the lab, which embeds etcd for operators) import testutil"
	}
	return ""
}

// testCode is whether a file is test code: a _test.go file, or a file
// of a test-helper package named like net/http/httptest (cni-plugin's
// internal/nettest).
func testCode(rel, pkg string) bool {
	return strings.HasSuffix(rel, "_test.go") || strings.HasSuffix(pkg, "test")
}

func TestImportDirection(t *testing.T) {
	root, mods := workspace(t)
	fset := token.NewFileSet()
	files := 0
	for _, m := range mods {
		err := filepath.WalkDir(filepath.Join(root, m), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			if moduleOf(mods, rel) != m {
				return nil // a nested module's file
			}
			f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			files++
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if strings.HasPrefix(filepath.ToSlash(rel), "libcalico/api/v3/") {
					for _, bad := range forbidden {
						if strings.HasPrefix(path, bad) {
							t.Errorf("%s imports %s: the API types stay free of datastore, kernel and CLI libraries", rel, path)
						}
					}
				}
				if !strings.HasPrefix(path, prefix) {
					continue
				}
				target := moduleOf(mods, strings.TrimPrefix(path, prefix))
				if target == m {
					continue
				}
				if why := importRule(m, target, testCode(rel, f.Name.Name)); why != "" {
					t.Errorf("%s (module %s) imports %s (module %s): %s", rel, m, path, target, why)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 100 {
		t.Fatalf("read only %d files: is the workspace layout what this test expects?", files)
	}
}
