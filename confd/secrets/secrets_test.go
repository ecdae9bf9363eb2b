package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bgp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bgp", "tor"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := Dir(dir).Lookup("bgp", "tor"); err != nil || v != "s3cret" {
		t.Fatalf("Lookup = %q, %v", v, err)
	}
	for _, tc := range [][2]string{{"bgp", "missing"}, {"..", "tor"}, {"bgp", "a/b"}, {"", "tor"}} {
		if _, err := Dir(dir).Lookup(tc[0], tc[1]); err == nil {
			t.Errorf("Lookup(%q, %q) succeeded", tc[0], tc[1])
		}
	}
	if _, err := Dir("").Lookup("bgp", "tor"); err == nil || !strings.Contains(err.Error(), "no secrets directory") {
		t.Errorf("empty dir: %v", err)
	}
}
