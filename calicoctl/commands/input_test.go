package commands

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zeros is an endless stdin.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Every command that reads manifests stops at MaxInputBytes with an error
// naming the input and the cap, for a device (/dev/zero, which grew
// without bound before), an endless stdin, a regular file over the cap, and
// a directory whose files are over it together.
// issue 23 item 9
func TestManifestInputOverTheCapIsRefused(t *testing.T) {
	c := fresh(t)
	capMsg := fmt.Sprintf("larger than %d MiB, the most calicoctl reads in one command", MaxInputBytes>>20)

	// A generated manifest just over the cap: rejected by its size before
	// anything is read.
	one := []byte("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: gns\nspec:\n  nets: [10.0.0.0/8]\n---\n")
	big := filepath.Join(t.TempDir(), "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat(one, (1<<20)/len(one))
	for written := 0; written <= MaxInputBytes; written += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// A directory: a small manifest, then a (sparse) file that fits the
	// cap alone but not with the first.
	dir := t.TempDir()
	small := writeFile(t, "a.yaml", string(one))
	if err := os.Rename(small, filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	rest := filepath.Join(dir, "b.yaml")
	if err := os.WriteFile(rest, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(rest, MaxInputBytes-int64(len(one))+1); err != nil {
		t.Fatal(err)
	}

	verbs := [][]string{{"create"}, {"apply"}, {"replace"}, {"delete"}, {"get"}, {"convert"}}
	for _, v := range verbs {
		for _, in := range []struct{ file, want string }{
			{"/dev/zero", "/dev/zero is " + capMsg},
			{big, big + " is " + capMsg},
		} {
			r := c.run(append(v, "-f", in.file)...)
			if r.code != 1 || !strings.Contains(r.stderr, in.want) {
				t.Errorf("%s -f %s: want exit 1 and %q:\n%s", v[0], in.file, in.want, r)
			}
		}
		if v[0] != "convert" { // convert reads one file
			r := c.run(append(v, "-f", dir)...)
			if want := "the input, with " + rest + ", is " + capMsg; r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("%s -f %s: want exit 1 and %q:\n%s", v[0], dir, want, r)
			}
		}

		if v[0] != "apply" && v[0] != "convert" { // the other verbs read stdin as apply does
			continue
		}
		var out, errb bytes.Buffer
		code := Run(context.Background(), Deps{Stdin: zeros{}, Stdout: &out, Stderr: &errb,
			Getenv: func(k string) string { return c.env[k] }}, append(v, "-f", "-"))
		if want := "stdin is " + capMsg; code != 1 || !strings.Contains(errb.String(), want) {
			t.Errorf("%s -f - with endless stdin: exit %d, want 1 and %q:\n%s", v[0], code, want, errb.String())
		}
	}
	if len(dump(t)) != 0 {
		t.Errorf("a refused input wrote to the datastore: %v", dump(t))
	}

	// Under the cap, the same reading path works.
	if r := c.run("apply", "-f", filepath.Join(dir, "a.yaml")); r.code != 0 {
		t.Errorf("apply of a small file:\n%s", r)
	}
	if r := c.run("get", "gns", "-o", "go-template-file=/dev/zero"); r.code != 1 || !strings.Contains(r.stderr, "/dev/zero is "+capMsg) {
		t.Errorf("get -o go-template-file=/dev/zero:\n%s", r)
	}
	// ipam release reads its reports within the cap too (once the
	// cluster is initialised, which it checks first).
	if r := c.run("ipam", "release", "--from-report=/dev/zero"); r.code != 1 || !strings.Contains(r.stderr, "/dev/zero is "+capMsg) {
		t.Errorf("ipam release --from-report=/dev/zero:\n%s", r)
	}
}
