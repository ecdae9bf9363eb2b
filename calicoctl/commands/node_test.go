package commands

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// serveStatus runs a real bgpd control socket in dir answering st.
func serveStatus(t *testing.T, dir string, st bgpstatus.Status) {
	t.Helper()
	l, err := bgpstatus.Listen(bgpstatus.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bgpstatus.Serve(ctx, l, func() bgpstatus.Status { return st }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestNodeStatus(t *testing.T) {
	dir := t.TempDir()
	serveStatus(t, dir, bgpstatus.Status{
		RouterID: "172.17.8.101",
		Peers4: []bgpstatus.Peer{
			{Address: "172.17.8.102", Type: bgpstatus.PeerTypeMesh, State: "up", Since: "23:30:04", Info: "Established"},
			{Address: "172.17.8.254", Type: bgpstatus.PeerTypeGlobal, State: "start", Since: "23:30:04", Info: "Active Socket: Connection refused"},
			{Address: "172.17.8.103", Type: bgpstatus.PeerTypeNode, State: "up", Since: "2016-11-21", Info: "Established"},
		},
	})
	c := newCLI(t)
	golden(t, "node-status", c.mustRun("node", "status", "--run-dir", dir).stdout)
	// CALICO_RUN_DIR is honoured too.
	c.env["CALICO_RUN_DIR"] = dir
	if r := c.mustRun("node", "status"); !strings.Contains(r.stdout, "| 172.17.8.102 | node-to-node mesh | up    | 23:30:04   | Established") {
		t.Fatal(r)
	}
}

func TestNodeStatusNoPeers(t *testing.T) {
	dir := t.TempDir()
	serveStatus(t, dir, bgpstatus.Status{})
	r := newCLI(t).mustRun("node", "status", "--run-dir", dir)
	want := "Calico process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\nIPv6 BGP status\nNo IPv6 peers found.\n\n"
	if r.stdout != want {
		t.Fatalf("got %q", r.stdout)
	}
}

func TestNodeStatusNotRunning(t *testing.T) {
	c := newCLI(t)
	r := c.run("node", "status", "--run-dir", t.TempDir())
	if r.code != 1 || r.stderr != "Calico process is not running.\n" || r.stdout != "" {
		t.Fatal(r)
	}
	// A socket that accepts but never answers counts as not running, within --timeout.
	dir := t.TempDir()
	l, err := bgpstatus.Listen(bgpstatus.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	r = c.run("node", "status", "--run-dir", dir, "--timeout", "300ms")
	if r.code != 1 || !strings.Contains(r.stderr, "Calico process is not running.") || time.Since(start) > 2*time.Second {
		t.Fatal(r, time.Since(start))
	}
}

// fakeHost scripts node checksystem's view of the host.
type fakeHost struct {
	release  string
	files    map[string]string
	commands map[string]string
}

func (f fakeHost) KernelRelease() (string, error) { return f.release, nil }

func (f fakeHost) ReadFile(p string) ([]byte, error) {
	if s, ok := f.files[p]; ok {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
}

func (f fakeHost) Command(name string, _ ...string) ([]byte, error) {
	if out, ok := f.commands[name]; ok {
		return []byte(out), nil
	}
	return nil, fmt.Errorf("exec: %q: %w", name, exec.ErrNotFound)
}

func goodFakeHost() fakeHost {
	return fakeHost{
		release: "6.1.0-18-amd64",
		files: map[string]string{
			"/proc/modules": "ip_tables 32768 0 - Live\nip6_tables 32768 0 - Live\nip_set 61440 1 xt_set, Live\nxt_set 20480 0 - Live\n" +
				"nf_conntrack 200000 3 - Live\nxt_conntrack 16384 1 - Live\nnf_conntrack_netlink 57344 0 - Live\nxt_mark 16384 0 - Live\n" +
				"xt_multiport 16384 0 - Live\nxt_addrtype 16384 0 - Live\nxt_MASQUERADE 16384 0 - Live\nvxlan 98304 0 - Live\nipip 20480 0 - Live\n",
		},
		commands: map[string]string{
			"iptables": "iptables v1.8.9 (nf_tables)\n", "iptables-save": "iptables-save v1.8.9 (nf_tables)\n",
			"iptables-restore": "iptables-restore v1.8.9 (nf_tables)\n", "ip6tables": "ip6tables v1.8.9 (nf_tables)\n",
			"ipset": "ipset v7.17, protocol version: 7\n", "ip": "ip utility, iproute2-6.1.0, libbpf 1.1.0\n",
		},
	}
}

func TestCheckSystem(t *testing.T) {
	c := newCLI(t)
	c.deps.Host = goodFakeHost()
	golden(t, "checksystem-ok", c.mustRun("node", "checksystem").stdout)

	h := goodFakeHost()
	delete(h.commands, "ipset")
	h.files["/proc/modules"] = strings.Replace(h.files["/proc/modules"], "xt_set 20480 0 - Live\n", "", 1)
	h.files["/proc/modules"] = strings.Replace(h.files["/proc/modules"], "ipip 20480 0 - Live\n", "", 1)
	c.deps.Host = h
	r := c.run("node", "checksystem")
	if r.code != 1 || !strings.Contains(r.stderr, "System doesn't meet one or more minimum systems requirements to run Calico") {
		t.Fatal(r)
	}
	golden(t, "checksystem-missing", r.stdout)
}

type scriptedRunner map[string]string

func (s scriptedRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	if out, ok := s[strings.Join(append([]string{name}, args...), " ")]; ok {
		return []byte(out), nil
	}
	return nil, errors.New("exit status 1")
}

func TestNodeDiags(t *testing.T) {
	runDir, logDir, out := t.TempDir(), t.TempDir(), t.TempDir()
	serveStatus(t, runDir, bgpstatus.Status{RouterID: "10.0.0.1", Peers4: []bgpstatus.Peer{{Address: "10.0.0.2", Type: bgpstatus.PeerTypeMesh, State: "up", Since: "now", Info: "Established"}}})
	os.WriteFile(filepath.Join(logDir, "felix.log"), []byte("felix started\n"), 0o644)
	c := newCLI(t)
	c.deps.Now = func() time.Time { return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) }
	c.deps.Runner = scriptedRunner{"hostname": "node1\n", "iptables-save -c": "*filter\n:cali-INPUT - [0:0]\nCOMMIT\n",
		"ip -4 route": "10.0.0.0/24 dev eth0\n", "ipset list": "Name: cali40all-ipam-pools\n"}
	r := c.mustRun("node", "diags", "--run-dir", runDir, "--log-dir", logDir, "--output", out)
	path := filepath.Join(out, "diags-20240102_030405.tar.gz")
	if !strings.HasSuffix(r.stdout, "\nDiags saved to "+path+"\n") || !strings.Contains(r.stdout, "Dumping iptables (IPv4)") {
		t.Fatal(r)
	}
	files := untar(t, path)
	for name, want := range map[string]string{
		"diagnostics/ipv4_tables":    "cali-INPUT",
		"diagnostics/ipv4_route":     "10.0.0.0/24 dev eth0",
		"diagnostics/ipsets":         "cali40all-ipam-pools",
		"diagnostics/bgpd_status":    `"address": "10.0.0.2"`,
		"diagnostics/logs/felix.log": "felix started",
		"diagnostics/hostname":       "node1",
		"diagnostics/ipv6_route":     "exit status 1",
		"diagnostics/ipv6_tables":    "exit status 1",
		"diagnostics/ipv4_addr":      "",
		"diagnostics/date":           "2024",
	} {
		got, ok := files[name]
		if !ok || !strings.Contains(got, want) {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, want)
		}
	}
	if r := c.run("node", "diags", "--output", "/nonexistent/dir/x.tgz"); r.code != 1 || !strings.Contains(r.stderr, "Error collecting diagnostics") {
		t.Fatal(r)
	}
}

func untar(t *testing.T, path string) map[string]string {
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
	out := map[string]string{}
	tr := tar.NewReader(zr)
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

func TestConfig(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "n.yaml", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: node1\nspec:\n  bgp:\n    ipv4Address: 10.0.0.1/24\n"))
	get := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(c.mustRun(append([]string{"config", "get"}, args...)...).stdout)
	}
	if get("nodeToNodeMesh") != "on" || get("asNumber") != "64512" || get("logLevel") != "info" {
		t.Fatal("defaults")
	}
	if r := c.mustRun("config", "set", "nodeToNodeMesh", "off"); r.stdout != "Successfully set nodeToNodeMesh to off for the cluster\n" {
		t.Fatal(r)
	}
	c.mustRun("config", "set", "asNumber", "64600")
	c.mustRun("config", "set", "asNumber", "65001", "--node", "node1")
	c.mustRun("config", "set", "logLevel", "debug")
	c.mustRun("config", "set", "loglevel", "WARNING", "--node", "node1")
	if get("nodeToNodeMesh") != "off" || get("asNumber") != "64600" || get("asNumber", "--node", "node1") != "65001" ||
		get("logLevel") != "debug" || get("logLevel", "--node", "node1") != "warning" {
		t.Fatal(c.mustRun("get", "bgpconfig", "-o", "yaml"))
	}
	keys := dump(t)
	for k, want := range map[string]string{
		"bgpconfigurations/default":      `"nodeToNodeMeshEnabled":false`,
		"bgpconfigurations/node.node1":   `"logSeverityScreen":"Warning"`,
		"felixconfigurations/default":    `"logSeverityScreen":"Debug"`,
		"felixconfigurations/node.node1": `"logSeverityScreen":"Warning"`,
		"nodes/node1":                    `"asNumber":65001`,
	} {
		if v := keys["/calico/resources/v3/projectcalico.org/"+k]; !strings.Contains(v, want) {
			t.Errorf("%s = %s, want %s", k, v, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"config", "set", "nodeToNodeMesh", "maybe"}, "nodeToNodeMesh = 'maybe'"},
		{[]string{"config", "set", "nodeToNodeMesh", "on", "--node", "node1"}, "cluster-wide setting"},
		{[]string{"config", "set", "asNumber", "x1"}, "asNumber = 'x1'"},
		{[]string{"config", "set", "logLevel", "chatty"}, "logLevel = 'chatty'"},
		{[]string{"config", "set", "asNumber", "1", "--node", "nope"}, "resource does not exist: Node(nope)"},
		{[]string{"config", "get", "ipipMode"}, `unknown config name "ipipMode"`},
	} {
		if r := c.run(tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: want %q\n%s", tc.args, tc.want, r)
		}
	}
}
