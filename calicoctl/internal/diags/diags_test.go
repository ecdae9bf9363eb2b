package diags

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fakeRunner map[string]string

func (f fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	key := strings.Join(append([]string{name}, args...), " ")
	if out, ok := f[key]; ok {
		return []byte(out), nil
	}
	return []byte("command not found\n"), errors.New("exit status 127")
}

func readTar(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func TestCollect(t *testing.T) {
	logs := t.TempDir()
	os.MkdirAll(filepath.Join(logs, "felix"), 0o755)
	os.WriteFile(filepath.Join(logs, "felix", "current"), []byte("felix log line\n"), 0o644)
	out := t.TempDir()
	var progress bytes.Buffer
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	path, err := Collect(context.Background(), Options{
		Output: out, LogDir: logs, Now: now, Progress: &progress,
		Runner: fakeRunner{
			"hostname": "host1\n", "ip -4 route": "default via 10.0.0.1 dev eth0\n",
			"iptables-save -c": "*filter\nCOMMIT\n", "ipset list": "Name: cali40all-ipam-pools\n",
		},
		BGPStatus: func(context.Context) ([]byte, error) { return []byte(`{"peers4":[]}`), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "diags-20240506_070809.tar.gz"); path != want {
		t.Fatalf("path %s, want %s", path, want)
	}
	files := readTar(t, path)
	for name, want := range map[string]string{
		"diagnostics/hostname":           "host1",
		"diagnostics/ipv4_route":         "default via 10.0.0.1",
		"diagnostics/ipv4_tables":        "*filter",
		"diagnostics/ipsets":             "cali40all-ipam-pools",
		"diagnostics/bgpd_status":        "peers4",
		"diagnostics/logs/felix/current": "felix log line",
		"diagnostics/ipv6_route":         "exit status 127",
	} {
		if !strings.Contains(files[name], want) {
			t.Errorf("%s = %q, want it to contain %q", name, files[name], want)
		}
	}
	if !strings.Contains(progress.String(), "Failed to run command: ip -6 route") {
		t.Errorf("progress lacks the failure:\n%s", progress.String())
	}
}

func TestCollectToFileAndMissingLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bundle.tgz")
	var progress bytes.Buffer
	got, err := Collect(context.Background(), Options{Output: path, LogDir: "/nonexistent/calico", Runner: fakeRunner{}, Progress: &progress})
	if err != nil || got != path {
		t.Fatalf("got %s, %v", got, err)
	}
	if !strings.Contains(progress.String(), "No logs found in /nonexistent/calico") {
		t.Error(progress.String())
	}
	if _, ok := readTar(t, path)["diagnostics/date"]; !ok {
		t.Error("date missing")
	}
}

func TestCollectUnwritable(t *testing.T) {
	if _, err := Collect(context.Background(), Options{Output: "/nonexistent/dir/x.tar.gz", Runner: fakeRunner{}}); err == nil {
		t.Fatal("want an error")
	}
}
