package commands

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-etcd/calico/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// etcdServer is shared by the package's tests; each test starts from an
// empty /calico/ prefix (see fresh).
var etcdServer *testutil.Etcd

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "calicoctl-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	etcdServer, err = testutil.StartEtcdServer(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	etcdServer.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// cli runs calicoctl in-process against the shared etcd.
type cli struct {
	t     testing.TB
	deps  Deps
	env   map[string]string
	stdin string
}

func newCLI(t testing.TB) *cli {
	return &cli{t: t, env: map[string]string{"ETCD_ENDPOINTS": etcdServer.Endpoint}}
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	d := c.deps
	d.Stdin, d.Stdout, d.Stderr = strings.NewReader(c.stdin), &out, &errb
	d.Getenv = func(k string) string { return c.env[k] }
	code := Run(context.Background(), d, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// mustRun runs and fails the test unless the exit code is 0.
func (c *cli) mustRun(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("calicoctl %s:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// fresh empties the datastore and returns a CLI for it.
func fresh(t testing.TB) *cli {
	t.Helper()
	raw := rawClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := raw.Delete(ctx, "/calico/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	return newCLI(t)
}

func rawClient(t testing.TB) *clientv3.Client {
	t.Helper()
	return etcdServer.RawClient(t)
}

// dump returns every key under /calico/ and its value.
func dump(t testing.TB) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rawClient(t).Get(ctx, "/calico/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// writeFile writes content to a temp file and returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	uidRe  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	tsRe   = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`)
	rvRe   = regexp.MustCompile(`("?resourceVersion"?: *)"\d+"`)
	guidRe = regexp.MustCompile(`[0-9a-f]{32}`)
)

// normalize replaces values that change from run to run.
func normalize(s string) string {
	s = uidRe.ReplaceAllString(s, "<uid>")
	s = tsRe.ReplaceAllString(s, "<time>")
	s = rvRe.ReplaceAllString(s, `${1}"<rv>"`)
	return guidRe.ReplaceAllString(s, "<guid>")
}

// golden compares got with testdata/name.golden, rewriting it with -update.
func golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
