package ipamplugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/testutil"
)

// buildPlugin compiles calico-ipam into a temporary directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "calico-ipam")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/calico-etcd/calico/cni-plugin/cmd/calico-ipam")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type invocation struct {
	bin, command, containerID, netConf string
	env                                []string
}

// run execs the plugin as a container runtime does: verb and identity in
// CNI_* variables, the network configuration on stdin, the result on stdout.
func (in invocation) run(ctx context.Context) ([]byte, []byte, error) {
	cmd := exec.CommandContext(ctx, in.bin)
	cmd.Env = append([]string{
		"CNI_COMMAND=" + in.command, "CNI_CONTAINERID=" + in.containerID, "CNI_NETNS=/var/run/netns/test-" + in.containerID,
		"CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin", "PATH=" + os.Getenv("PATH"),
	}, in.env...)
	cmd.Stdin = bytes.NewBufferString(in.netConf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

func netConf(version, endpoint, node, lockDir string) string {
	return fmt.Sprintf(`{"cniVersion":%q,"name":"k8s-pod-network","type":"calico-ipam","etcd_endpoints":%q,`+
		`"nodename":%q,"ipam_lock_file":%q,"log_level":"warning","ipam":{"type":"calico-ipam","assign_ipv4":"true","assign_ipv6":"true"}}`,
		version, endpoint, node, filepath.Join(lockDir, node, "ipam.lock"))
}

// TestBinaryConcurrentAddsAcrossNodes runs many calico-ipam ADDs at once,
// for several node names, through the real binary; every address is
// distinct, the datastore is consistent, and DEL of everything (twice:
// DEL is idempotent) leaves every block empty and no handle behind.
func TestBinaryConcurrentAddsAcrossNodes(t *testing.T) {
	bin := buildPlugin(t)
	srv := testutil.StartEtcd(t)
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	cl := client.New(be)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, p := range [][2]string{{"v4", "10.200.0.0/22"}, {"v6", "fd00:200::/116"}} {
		pool := v3.NewIPPool()
		pool.Name, pool.Spec.CIDR = p[0], p[1]
		pool.Spec.BlockSize = map[string]int{"v4": 28, "v6": 124}[p[0]]
		if _, err := cl.IPPools().Create(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	const nodes, perNode, parallel = 4, 25, 12
	lockDir := t.TempDir()
	versions := []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	type added struct {
		node, id string
		ips      []netip.Addr
	}
	var (
		mu   sync.Mutex
		all  []added
		wg   sync.WaitGroup
		sema = make(chan struct{}, parallel)
	)
	start := time.Now()
	for n := range nodes {
		for i := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sema <- struct{}{}
				defer func() { <-sema }()
				node, id := fmt.Sprintf("node-%d", n), fmt.Sprintf("c%02d%02d", n, i)
				v := versions[(n+i)%len(versions)]
				out, stderr, err := invocation{bin: bin, command: "ADD", containerID: id, netConf: netConf(v, srv.Endpoint, node, lockDir),
					env: []string{"CNI_ARGS=K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod-" + id}}.run(ctx)
				if err != nil {
					t.Errorf("ADD %s on %s: %v\nstdout %s\nstderr %s", id, node, err, out, stderr)
					return
				}
				ips := resultAddrs(t, v, out)
				if len(ips) != 2 || !ips[0].Is4() || !ips[1].Is6() {
					t.Errorf("ADD %s (spec %s) = %s", id, v, out)
				}
				mu.Lock()
				all = append(all, added{node, id, ips})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	t.Logf("%d concurrent ADDs on %d nodes (at most %d at once) in %v", len(all), nodes, parallel, time.Since(start))
	if t.Failed() {
		t.FailNow()
	}
	seen := map[netip.Addr]string{}
	for _, a := range all {
		for _, ip := range a.ips {
			if other, dup := seen[ip]; dup {
				t.Fatalf("%s given to both %s and %s", ip, other, a.id)
			}
			seen[ip] = a.id
		}
	}
	ic, err := ipam.New(be, nil, ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := ic.Allocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(allocs) != len(seen) {
		t.Fatalf("%d allocations stored, %d returned", len(allocs), len(seen))
	}
	for _, a := range allocs {
		if want := seen[a.IP]; a.Handle != "k8s-pod-network."+want || a.Attrs[ipam.AttributePod] != "pod-"+want || a.Attrs[ipam.AttributeNamespace] != "ns" {
			t.Fatalf("allocation %+v, want handle of %s", a, want)
		}
		if node := a.Attrs[ipam.AttributeNode]; a.BlockHost != node {
			t.Errorf("%s of %s is in a block of %s", a.IP, node, a.BlockHost)
		}
	}

	for round := range 2 { // DEL is idempotent
		for _, a := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sema <- struct{}{}
				defer func() { <-sema }()
				if out, stderr, err := (invocation{bin: bin, command: "DEL", containerID: a.id, netConf: netConf("1.1.0", srv.Endpoint, a.node, lockDir)}).run(ctx); err != nil {
					t.Errorf("DEL %s round %d: %v\n%s\n%s", a.id, round, err, out, stderr)
				}
			}()
		}
		wg.Wait()
	}
	usage, err := ic.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, p := range usage {
		for _, b := range p.Blocks {
			blocks++
			if b.InUse != 0 {
				t.Errorf("block %s still has %d addresses", b.CIDR, b.InUse)
			}
		}
	}
	report, err := ipamcheck.Check(ctx, ic, ipamcheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if report.Allocations != 0 || report.Handles != 0 {
		t.Fatalf("after DEL: %+v", report)
	}
	t.Logf("after DEL: %d empty blocks, no handle", blocks)
}

// resultAddrs decodes a CNI result of any supported version.
func resultAddrs(t *testing.T, version string, out []byte) []netip.Addr {
	t.Helper()
	var r struct {
		CNIVersion string `json:"cniVersion"`
		IPs        []struct {
			Version string `json:"version"`
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	if r.CNIVersion != version {
		t.Errorf("result version %q, want %q", r.CNIVersion, version)
	}
	var ips []netip.Addr
	for _, ip := range r.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			t.Fatalf("result address %q: %v", ip.Address, err)
		}
		if (version == "0.3.1" || version == "0.4.0") && ip.Version == "" {
			t.Errorf("spec %s result lacks ip version: %s", version, out)
		}
		ips = append(ips, p.Addr())
	}
	return ips
}

// cniErr is a plugin's error answer on stdout.
type cniErr struct {
	Code uint   `json:"code"`
	Msg  string `json:"msg"`
}

func errorOf(t *testing.T, stdout []byte, err error) cniErr {
	t.Helper()
	if err == nil {
		t.Fatalf("plugin succeeded: %s", stdout)
	}
	var e cniErr
	if jerr := json.Unmarshal(stdout, &e); jerr != nil {
		t.Fatalf("plugin failed (%v) without a CNI error: %q", err, stdout)
	}
	return e
}

// issue 23 item 5: calico-ipam ADD, repeated and after being killed at
// random points, returns the addresses its handle holds: one address per
// family and container, however many ADDs; DEL leaves nothing.
func TestBinaryAddIdempotentAfterKill(t *testing.T) {
	bin := buildPlugin(t)
	srv := testutil.StartEtcd(t)
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, p := range [][2]string{{"v4", "10.201.0.0/24"}, {"v6", "fd00:201::/120"}} {
		pool := v3.NewIPPool()
		pool.Name, pool.Spec.CIDR = p[0], p[1]
		pool.Spec.BlockSize = map[string]int{"v4": 28, "v6": 124}[p[0]]
		if _, err := client.New(be).IPPools().Create(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	node := v3.NewNode()
	node.Name = "node-k"
	if _, err := client.New(be).Nodes().Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	lockDir := t.TempDir()
	conf := netConf("1.1.0", srv.Endpoint, "node-k", lockDir)
	add := func(ctx context.Context, id string) ([]byte, []byte, error) {
		return invocation{bin: bin, command: "ADD", containerID: id, netConf: conf}.run(ctx)
	}

	// Three ADDs of one container: one result.
	var first string
	for i := range 3 {
		out, stderr, err := add(ctx, "same")
		if err != nil {
			t.Fatalf("ADD %d: %v\n%s\n%s", i, err, out, stderr)
		}
		got := fmt.Sprint(resultAddrs(t, "1.1.0", out))
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("ADD %d got %s, the first %s", i, got, first)
		}
	}

	// A normal ADD's duration sets the range of the kill points.
	start := time.Now()
	if out, stderr, err := add(ctx, "timing"); err != nil {
		t.Fatalf("ADD: %v\n%s\n%s", err, out, stderr)
	}
	d := time.Since(start)
	const tries = 20
	killed := 0
	for i := range tries {
		id := fmt.Sprintf("kill%02d", i)
		kctx, kcancel := context.WithTimeout(ctx, time.Duration(rand.Int64N(int64(d))+1))
		if _, _, err := add(kctx, id); err != nil {
			killed++
		}
		kcancel()
		out, stderr, err := add(ctx, id)
		if err != nil {
			t.Fatalf("retry of %s: %v\n%s\n%s", id, err, out, stderr)
		}
		ips := resultAddrs(t, "1.1.0", out)
		ic, _ := ipam.New(be, nil, ipam.Options{})
		held, err := ic.IPsByHandle(ctx, "k8s-pod-network."+id)
		if err != nil || len(held) != 2 || len(ips) != 2 || !slices.Contains(held, ips[0]) || !slices.Contains(held, ips[1]) {
			t.Fatalf("%s: retry returned %v, the handle holds %v (%v)", id, ips, held, err)
		}
	}
	t.Logf("%d of %d ADDs killed (kill points up to %v)", killed, tries, d)

	ic, err := ipam.New(be, nil, ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	report, err := ipamcheck.Check(ctx, ic, ipamcheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * (tries + 2); report.Allocations != want || report.Handles != tries+2 {
		t.Fatalf("%d allocations under %d handles, want %d under %d", report.Allocations, report.Handles, want, tries+2)
	}
	ids := []string{"same", "timing"}
	for i := range tries {
		ids = append(ids, fmt.Sprintf("kill%02d", i))
	}
	for _, id := range ids {
		if out, stderr, err := (invocation{bin: bin, command: "DEL", containerID: id, netConf: conf}).run(ctx); err != nil {
			t.Fatalf("DEL %s: %v\n%s\n%s", id, err, out, stderr)
		}
	}
	if report, err = ipamcheck.Check(ctx, ic, ipamcheck.Options{}); err != nil || report.Allocations != 0 || report.Handles != 0 || !report.OK() {
		t.Fatalf("after DEL: %+v (%v)", report, err)
	}
}

// issue 23 item 9: calico-ipam refuses bad input up front, with the codes
// the calico plugin gives: 4 for an empty CNI_CONTAINERID, 7 for an
// endpoint without a host, an invalid node name (before any IPAM work: no
// block is claimed) or ipam section, 6 for what is not JSON. (11 when etcd
// does not answer: acceptance.TestBinariesAgreeOnErrorCodes.)
func TestBinaryRefusesBadInput(t *testing.T) {
	bin := buildPlugin(t)
	srv := testutil.StartEtcd(t)
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	pool := v3.NewIPPool()
	pool.Name, pool.Spec.CIDR = "v4", "10.202.0.0/24"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := client.New(be).IPPools().Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	lockDir := t.TempDir()
	for _, tc := range []struct {
		name, command, id, conf string
		code                    uint
		msg                     string
	}{
		{"empty container ID", "ADD", "", netConf("1.1.0", srv.Endpoint, "node-a", lockDir), 4, "CNI_CONTAINERID"},
		{"endpoint without a host", "ADD", "c1", netConf("1.1.0", "http://", "node-a", lockDir), 7, `"http://"`},
		{"invalid node name", "ADD", "c1", netConf("1.1.0", srv.Endpoint, "Node_A", lockDir), 7, `"Node_A"`},
		{"node name with a slash", "ADD", "c1", netConf("1.1.0", srv.Endpoint, "a/b", lockDir), 7, `"a/b"`},
		{"not JSON", "ADD", "c1", `{"name":`, 6, ""},
		{"invalid ipam", "ADD", "c1", `{"cniVersion":"1.1.0","name":"n","type":"calico-ipam","ipam":{"type":"calico-ipam","assign_ipv4":"false"}}`, 7, "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, _, err := invocation{bin: bin, command: tc.command, containerID: tc.id, netConf: tc.conf}.run(ctx)
			e := errorOf(t, out, err)
			if e.Code != tc.code || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("code %d %q, want %d with %q", e.Code, e.Msg, tc.code, tc.msg)
			}
			t.Logf("%s: code %d after %v: %s", tc.name, e.Code, time.Since(start).Round(time.Millisecond), e.Msg)
		})
	}
	r, err := be.Raw().Get(ctx, "/calico/ipam/v2/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 0 {
		t.Fatalf("%d IPAM keys written by refused requests", r.Count)
	}
}
