package apiconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "calicoctl.cfg")
	os.WriteFile(f, []byte(`apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata:
spec:
  datastoreType: "etcdv3"
  etcdEndpoints: "https://etcd1:2379, https://etcd2:2379"
  etcdKeyFile: /k.pem
  etcdCertFile: /c.pem
  etcdCACertFile: /ca.pem
`), 0o600)
	s, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Endpoints(); len(got) != 2 || got[1] != "https://etcd2:2379" {
		t.Fatalf("endpoints = %v", got)
	}
	ec := s.EtcdConfig(0)
	if ec.KeyFile != "/k.pem" || ec.CACertFile != "/ca.pem" {
		t.Fatalf("etcd config = %+v", ec)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"kube":    "kind: CalicoAPIConfig\nspec:\n  datastoreType: kubernetes\n",
		"unknown": "kind: CalicoAPIConfig\nspec:\n  etcdEndpoint: http://x:2379\n",
		"kind":    "kind: Other\nspec: {}\n",
		"scheme":  "kind: CalicoAPIConfig\nspec:\n  etcdEndpoints: etcd:2379\n",
		"yaml":    "kind: [\n",
	} {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(body), 0o600)
		if _, err := Load(f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing explicit file accepted")
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{"ETCD_ENDPOINTS": "http://a:2379", "CALICO_ETCD_USERNAME": "u", "ETCD_USERNAME": "ignored"}
	s, err := FromEnv(func(k string) string { return env[k] })
	if err != nil || s.EtcdEndpoints != "http://a:2379" || s.EtcdUsername != "u" {
		t.Fatalf("spec = %+v, %v", s, err)
	}
	s, err = FromEnv(func(string) string { return "" })
	if err != nil || !strings.Contains(s.EtcdEndpoints, "127.0.0.1:2379") {
		t.Fatalf("default endpoint: %+v %v", s, err)
	}
}
