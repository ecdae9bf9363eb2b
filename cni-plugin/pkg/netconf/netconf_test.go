package netconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		v4, v6  bool
	}{
		{in: `{"name":"n","ipam":{"type":"calico-ipam"}}`, v4: true},
		{in: `{"name":"n","ipam":{"assign_ipv4":"false","assign_ipv6":"true"}}`, v6: true},
		{in: `{"name":"n","ipam":{"assign_ipv6":"yes"}}`, err: "assign_ipv6"},
		{in: `{"ipam":{}}`, err: "no name"},
		{in: `{"name":"n","datastore_type":"kubernetes"}`, err: "not supported"},
		{in: `{"name":"n","log_level":"loud"}`, err: "log_level"},
		{in: `{"name":"n","ipam":{"subnet":"usePodCidr"}}`, err: "usePodCidr"},
		{in: `not json`, err: "parsing"},
	} {
		c, err := Parse([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%s) = %v, want error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || c.WantIPv4() != tc.v4 || c.WantIPv6() != tc.v6 {
			t.Errorf("Parse(%s) = %+v, %v", tc.in, c, err)
		}
	}
}

func TestNodeNamePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nodename")
	os.WriteFile(file, []byte("from-file\n"), 0o644)
	if n, _ := (&NetConf{Nodename: "explicit", NodenameFile: file}).NodeName(); n != "explicit" {
		t.Fatalf("nodename = %s", n)
	}
	if n, _ := (&NetConf{NodenameFile: file}).NodeName(); n != "from-file" {
		t.Fatalf("nodename_file = %s", n)
	}
	if _, err := (&NetConf{NodenameFile: filepath.Join(dir, "missing")}).NodeName(); err == nil {
		t.Fatal("missing nodename_file accepted")
	}
	h, _ := os.Hostname()
	if n, _ := (&NetConf{NodenameFile: filepath.Join(dir, "missing"), NodenameFileOptional: true}).NodeName(); n != strings.ToLower(h) {
		t.Fatalf("hostname fallback = %s", n)
	}
}

func TestDatastoreConfOverridesEnv(t *testing.T) {
	env := map[string]string{"CALICO_ETCD_ENDPOINTS": "http://env:2379", "ETCD_CA_CERT_FILE": "/env/ca"}
	c := &NetConf{EtcdEndpoints: "http://a:2379,http://b:2379", EtcdKeyFile: "/k", EtcdCertFile: "/c"}
	cfg, err := c.Datastore(func(k string) string { return env[k] }, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Endpoints) != 2 || cfg.Endpoints[1] != "http://b:2379" || cfg.KeyFile != "/k" || cfg.CertFile != "/c" || cfg.CACertFile != "/env/ca" {
		t.Fatalf("config %+v", cfg)
	}
	if cfg, _ := (&NetConf{}).Datastore(func(k string) string { return env[k] }, 0); cfg.Endpoints[0] != "http://env:2379" {
		t.Fatalf("env endpoints %+v", cfg)
	}
	if got := (&NetConf{}).LockFile(func(string) string { return "/run/h1" }); got != "/run/h1/ipam.lock" {
		t.Fatalf("lock file %s", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"calico","etcd_endpoints":"http://127.0.0.1:2379","ipam":{"type":"calico-ipam","assign_ipv4":"true","ipv4_pools":["10.0.0.0/16","pool2"]}}`))
	f.Add([]byte(`{"name":"n","prevResult":{"cniVersion":"1.0.0","ips":[]},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if c.Name == "" {
			t.Fatal("accepted config without a name")
		}
		_ = c.WantIPv4() || c.WantIPv6()
		_ = HandleID(c.Name, "id")
	})
}
