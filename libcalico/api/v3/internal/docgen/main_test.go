package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestReferenceUpToDate regenerates docs/reference.md in memory and fails
// when the committed file differs: a changed api/v3 type or felix
// parameter needs `cd libcalico && go run ./api/v3/internal/docgen`.
func TestReferenceUpToDate(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Skip(err) // libcalico built on its own, outside the workspace
	}
	want, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, referencePath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale; run: cd libcalico && go run ./api/v3/internal/docgen", referencePath)
	}
}
