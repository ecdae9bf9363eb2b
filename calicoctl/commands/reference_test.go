package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReferenceUpToDate regenerates docs/calicoctl.md in memory and fails
// when the committed file differs: a changed command, flag or help text
// needs `cd calicoctl && go run ./internal/cmddoc`.
func TestReferenceUpToDate(t *testing.T) {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Skip("no go.work: calicoctl built on its own, outside the workspace")
		}
		dir = filepath.Dir(dir)
	}
	want := Reference()
	got, err := os.ReadFile(filepath.Join(dir, ReferencePath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale; run: cd calicoctl && go run ./internal/cmddoc", ReferencePath)
	}
	for _, cmd := range []string{"## calicoctl datastore migrate import", "## calicoctl ipam split", "## calicoctl cluster diags",
		"## calicoctl validate", "## calicoctl config unset", "--log-level", "## calicoctl node run"} {
		if !strings.Contains(string(want), cmd) {
			t.Errorf("the reference lacks %q", cmd)
		}
	}
}
