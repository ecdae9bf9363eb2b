package netconf

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/calico-etcd/calico/libcalico/cerrors"
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
		// issue 23 item 9: what the fuzz target holds every accepted
		// config to.
		{in: `{"name":"a/b","ipam":{"type":"calico-ipam"}}`, err: "network name"},
		{in: `{"name":"n","ipam":{"type":"calico-ipam","assign_ipv4":"false"}}`, err: "neither IPv4 nor IPv6"},
		{in: `{"name":"n","ipam":{"assign_ipv4":"false","assign_ipv6":"false"}}`, err: "neither IPv4 nor IPv6"},
		{in: `{"name":"n","ipam":{"type":"host-local","assign_ipv4":"false"}}`},
		{in: `{"name":"n","ipam":{"ipv4_pools":["fd00::/64"]}}`, err: "other IP version"},
		{in: `{"name":"n","ipam":{"ipv6_pools":[""],"assign_ipv6":"true"}}`, err: "empty pool name"},
		{in: `{"name":"n","ipam":{"ipv4_pools":["10.0.0.0/16","pool-a"]}}`, v4: true},
		{in: `{"name":"n","log_file_max_size":-1}`, err: "log_file_max_size"},
	} {
		c, err := Parse([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%s) = %v, want error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if tc.v4 || tc.v6 {
			if err != nil || c.WantIPv4() != tc.v4 || c.WantIPv6() != tc.v6 {
				t.Errorf("Parse(%s) = %+v, %v", tc.in, c, err)
			}
			continue
		}
		if err != nil {
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

// issue 23 item 9: Parse never panics, and what it accepts has a name CNI
// allows and an ipam section calico-ipam can serve.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"calico","etcd_endpoints":"http://127.0.0.1:2379","ipam":{"type":"calico-ipam","assign_ipv4":"true","ipv4_pools":["10.0.0.0/16","pool2"]}}`))
	f.Add([]byte(`{"name":"n","prevResult":{"cniVersion":"1.0.0","ips":[]},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`))
	f.Add([]byte(`{"name":"n","ipam":{"type":"calico-ipam","assign_ipv4":"false"}}`))
	f.Add([]byte(`{"name":"n/../x","ipam":{"ipv6_pools":["10.0.0.0/8"],"assign_ipv6":"true"}}`))
	f.Add([]byte(`{"name":"n","log_file_max_count":-3,"ipam":{"ipv4_pools":[""]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if c.Name == "" || strings.ContainsAny(c.Name, "/ \t\n:") || utils.ValidateNetworkName(c.Name) != nil {
			t.Fatalf("accepted network name %q", c.Name)
		}
		checkIPAM(t, &c.IPAM)
		if c.LogFileMaxSize < 0 || c.LogFileMaxAge < 0 || c.LogFileMaxCount < 0 {
			t.Fatalf("accepted log rotation %d %d %d", c.LogFileMaxSize, c.LogFileMaxAge, c.LogFileMaxCount)
		}
		_ = HandleID(c.Name, "id")
	})
}

// checkIPAM fails unless an accepted ipam section is one calico-ipam can
// serve: assign flags "true" or "false", a family to assign, named pools
// of the right version.
func checkIPAM(t *testing.T, i *IPAM) {
	t.Helper()
	for _, v := range []*string{i.AssignIPv4, i.AssignIPv6} {
		if v != nil && *v != "true" && *v != "false" {
			t.Fatalf("accepted assign flag %q", *v)
		}
	}
	if i.Type != "" && i.Type != CalicoIPAM {
		return
	}
	if !i.WantIPv4() && !i.WantIPv6() {
		t.Fatalf("accepted calico-ipam section assigning nothing: %+v", i)
	}
	for _, p := range append(slices.Clone(i.IPv4Pools), i.IPv6Pools...) {
		if strings.TrimSpace(p) == "" {
			t.Fatalf("accepted empty pool name in %+v", i)
		}
	}
	for _, p := range i.IPv4Pools {
		if c, err := netip.ParsePrefix(p); err == nil && !c.Addr().Is4() {
			t.Fatalf("accepted IPv6 pool %s in ipv4_pools", p)
		}
	}
	for _, p := range i.IPv6Pools {
		if c, err := netip.ParsePrefix(p); err == nil && c.Addr().Is4() {
			t.Fatalf("accepted IPv4 pool %s in ipv6_pools", p)
		}
	}
}

// issue 23 item 9: an endpoint without a host, or of another scheme, is
// refused at once, naming it, rather than costing the dial timeout.
func TestDatastoreRefusesMalformedEndpoints(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, ep := range []string{"http://", "https://:2379", "http:///x", "ftp://h:2379", "127.0.0.1:2379", "http:host", "http://a:2379,http://"} {
		_, err := (&NetConf{EtcdEndpoints: ep}).Datastore(noEnv, 0)
		if err == nil {
			t.Errorf("endpoint %q accepted", ep)
			continue
		}
		if !strings.Contains(err.Error(), "http") {
			t.Errorf("endpoint %q: error %q does not say what is wanted", ep, err)
		}
	}
	_, err := (&NetConf{EtcdEndpoints: "http://"}).Datastore(noEnv, 0)
	if err == nil || !strings.Contains(err.Error(), `"http://"`) {
		t.Errorf("error %v does not name the endpoint", err)
	}
	for _, ep := range []string{"http://127.0.0.1:2379", "https://etcd.example:2379,http://[fd00::1]:2379", "http://h"} {
		if _, err := (&NetConf{EtcdEndpoints: ep}).Datastore(noEnv, 0); err != nil {
			t.Errorf("endpoint %q: %v", ep, err)
		}
	}
}

// issue 23 item 9: node names are checked as Calico checks a Node's name.
func TestValidateNodeName(t *testing.T) {
	for _, n := range []string{"node1", "node-1.example.com", "a"} {
		if err := ValidateNodeName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "Node_1", "node 1", "-node", "node..a", "a/b", strings.Repeat("a", 254)} {
		err := ValidateNodeName(n)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", n)) {
			t.Errorf("%q: %v", n, err)
		}
	}
}

// issue 23 item 9: the log file rotates as Calico's (lumberjack): at
// log_file_max_size megabytes the file is renamed and a new one started.
func TestLogFileRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cni.log")
	c := &NetConf{LogFilePath: path, LogFileMaxSize: 1}
	log, closer, err := c.Logger(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1000)
	for range 1500 { // about 1.5 MB
		log.Info(line)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rotated int
	for _, e := range ents {
		if e.Name() != "cni.log" && strings.HasPrefix(e.Name(), "cni-") && strings.HasSuffix(e.Name(), ".log") {
			rotated++
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if rotated != 1 || st.Size() >= 1<<20 {
		t.Fatalf("%d rotated files and %d bytes in the log file, want 1 and under 1 MiB: %v", rotated, st.Size(), ents)
	}

	// Calico's defaults, and the config's values over them.
	if l := (&NetConf{LogFilePath: path}).logFile(); l.MaxSize != 100 || l.MaxAge != 30 || l.MaxBackups != 10 {
		t.Errorf("defaults %d MB, %d days, %d files", l.MaxSize, l.MaxAge, l.MaxBackups)
	}
	if l := (&NetConf{LogFilePath: path, LogFileMaxSize: 5, LogFileMaxAge: 2, LogFileMaxCount: 3}).logFile(); l.MaxSize != 5 || l.MaxAge != 2 || l.MaxBackups != 3 {
		t.Errorf("configured %d MB, %d days, %d files", l.MaxSize, l.MaxAge, l.MaxBackups)
	}
}

// issue 23 item 9: both plugins give the same codes: 6 for what does not
// decode, 7 for invalid values, 11 when etcd does not answer.
func TestErrorCodes(t *testing.T) {
	code := func(err error) uint {
		var te *types.Error
		if !errors.As(err, &te) {
			return 0
		}
		return te.Code
	}
	_, syntax := Parse([]byte(`{"name":`))
	_, typ := Parse([]byte(`{"name":3}`))
	_, invalid := Parse([]byte(`{"name":"n","ipam":{"assign_ipv4":"maybe"}}`))
	_, endpoint := (&NetConf{EtcdEndpoints: "http://"}).Datastore(func(string) string { return "" }, 0)
	for _, tc := range []struct {
		err  error
		want uint
	}{
		{ConfigError(syntax), types.ErrDecodingFailure},
		{ConfigError(typ), types.ErrDecodingFailure},
		{ConfigError(invalid), types.ErrInvalidNetworkConfig},
		{ConfigError(endpoint), types.ErrInvalidNetworkConfig},
		{ConfigError(ValidateNodeName("Bad_Node")), types.ErrInvalidNetworkConfig},
		{ConfigError(ValidateContainerID("")), types.ErrInvalidEnvironmentVariables},
		{CNIError(fmt.Errorf("x: %w", &cerrors.Unavailable{Err: errors.New("down")})), types.ErrTryAgainLater},
		{CNIError(errors.New("other")), types.ErrInternal},
		{CNIError(fmt.Errorf("x: %w", types.NewError(50, "no pool", ""))), 50},
	} {
		if got := code(tc.err); got != tc.want {
			t.Errorf("%v: code %d, want %d", tc.err, got, tc.want)
		}
	}
	if CNIError(nil) != nil || ConfigError(nil) != nil {
		t.Error("nil error given a code")
	}
}

// Backends keeps one client per datastore configuration: the same
// settings share it, different ones do not, and Open with backends
// leaves the shared client open.
func TestBackendsShareByConfiguration(t *testing.T) {
	var b Backends
	defer b.Close()
	c1 := &NetConf{Name: "n", CNIVersion: "1.1.0", EtcdEndpoints: "http://127.0.0.1:1", Nodename: "node1"}
	c2 := *c1
	c2.EtcdEndpoints = "http://127.0.0.1:2"
	getenv := func(string) string { return "" }
	o1, close1, err := c1.Open(getenv, io.Discard, &b)
	if err != nil {
		t.Fatal(err)
	}
	close1()
	o1b, close1b, err := c1.Open(getenv, io.Discard, &b)
	if err != nil {
		t.Fatal(err)
	}
	close1b()
	o2, close2, err := c2.Open(getenv, io.Discard, &b)
	if err != nil {
		t.Fatal(err)
	}
	close2()
	if o1.Backend != o1b.Backend {
		t.Error("the same datastore settings got two clients")
	}
	if o1.Backend == o2.Backend {
		t.Error("different endpoints share a client")
	}
}
