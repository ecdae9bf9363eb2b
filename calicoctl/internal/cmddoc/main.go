// Command cmddoc writes docs/calicoctl.md, the reference of every
// calicoctl command and flag (commands.Reference). Run it from anywhere
// inside the repository:
//
//	cd calicoctl && go run ./internal/cmddoc
//
// TestReferenceUpToDate fails when the committed file differs from what
// this program writes.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/calico-etcd/calico/calicoctl/commands"
)

func main() {
	root, err := RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := filepath.Join(root, commands.ReferencePath)
	if err := os.WriteFile(out, commands.Reference(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("wrote", out)
}

// RepoRoot walks up from the working directory to the one holding go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cmddoc: no go.work above the working directory")
		}
		dir = parent
	}
}
