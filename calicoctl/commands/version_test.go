package commands

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
)

func TestVersionFlags(t *testing.T) {
	c := offline(t)
	want := "Client Version:    " + buildinfo.Version + "\nGit commit:        " + buildinfo.GitCommit + "\n"
	for _, args := range [][]string{{"--version"}, {"version", "--client"}} {
		if r := c.mustRun(args...); r.stdout != want {
			t.Errorf("%v: %q", args, r.stdout)
		}
	}
	clientOnly := strings.ReplaceAll(c.mustRun("version", "--client").stdout, buildinfo.Version, "<version>")
	golden(t, "version-client", strings.ReplaceAll(clientOnly, buildinfo.GitCommit, "<commit>"))
	// Without --client the cluster's version is read; etcd is down.
	if r := c.run("version", "--timeout", "300ms"); r.code != 1 || !strings.Contains(r.stderr, "datastore unavailable") || r.stdout != want {
		t.Fatal(r)
	}

	// --poll prints the cluster version once, and again when it changes,
	// until the context ends.
	up := fresh(t)
	up.mustRun("datastore", "migrate", "lock")
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	code := Run(ctx, Deps{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return up.env[k] }}, []string{"version", "--poll", "100ms"})
	if code != 0 || strings.Count(out.String(), "Cluster Version:") != 1 || !strings.Contains(out.String(), "Cluster Type:      etcd") || errb.Len() != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

func TestNodeRun(t *testing.T) {
	r := offline(t).run("node", "run", "--ip=autodetect", "--as=64512")
	golden(t, "node-run", r.String())
}

// TestGetAllNamespacesAlias takes Calico's -a for -A.
func TestGetAllNamespacesAlias(t *testing.T) {
	c := loaded(t)
	if a, b := c.mustRun("get", "policy", "-a").stdout, c.mustRun("get", "policy", "-A").stdout; a != b || !strings.Contains(a, "allow-web") {
		t.Fatalf("%q vs %q", a, b)
	}
}

// TestLogLevel passes -l to the loggers of library calls.
func TestLogLevel(t *testing.T) {
	c := fresh(t)
	env := &Env{Deps: Deps{Stderr: &bytes.Buffer{}}}
	if env.warnLog().Logger.GetLevel().String() != "warning" {
		t.Fatal("without -l, warnings are shown")
	}
	env.LogLevel = "panic"
	if env.warnLog().Logger.GetLevel().String() != "panic" {
		t.Fatal("-l panic hides them")
	}
	if r := c.mustRun("-l", "debug", "get", "pools"); r.stderr != "" {
		t.Fatalf("debug logging printed: %s", r.stderr)
	}
}
