package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mtuConf(t testing.TB, extra string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"net1","type":"calico","nodename":"node1",
 "etcd_endpoints":"http://127.0.0.1:1","ipam":{"type":"calico-ipam"}` + extra + `}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPodMTU(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mtu")
	if c := mtuConf(t, ""); c.MTUFile != DefaultMTUFile {
		t.Errorf("default mtu_file %q", c.MTUFile)
	}
	for _, tc := range []struct {
		extra, content string
		want           int
		err            string
	}{
		{extra: `,"mtu_file":"` + file + `"`, want: 0},                                // no file: kernel default
		{extra: `,"mtu_file":"` + file + `"`, content: "1450\n", want: 1450},          // felix's file
		{extra: `,"mtu":1300,"mtu_file":"` + file + `"`, content: "1450", want: 1300}, // the conflist wins
		{extra: `,"mtu_file":"` + file + `"`, content: "x", err: "not an MTU"},
		{extra: `,"mtu_file":"` + file + `"`, content: "40", err: "not an MTU"},
		{extra: `,"mtu_file":"` + file + `","require_mtu_file":true`, err: "require_mtu_file"},
	} {
		_ = os.Remove(file)
		if tc.content != "" {
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := mtuConf(t, tc.extra).PodMTU()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s with %q: %d, %v; want error %q", tc.extra, tc.content, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s with %q: %d, %v; want %d", tc.extra, tc.content, got, err, tc.want)
		}
	}
}

// BenchmarkPodMTU is what reading felix's file adds to an ADD.
func BenchmarkPodMTU(b *testing.B) {
	file := filepath.Join(b.TempDir(), "mtu")
	if err := os.WriteFile(file, []byte("1450"), 0o644); err != nil {
		b.Fatal(err)
	}
	c := mtuConf(b, `,"mtu_file":"`+file+`"`)
	for b.Loop() {
		if n, err := c.PodMTU(); err != nil || n != 1450 {
			b.Fatal(n, err)
		}
	}
}
