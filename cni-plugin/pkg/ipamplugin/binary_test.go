package ipamplugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/testutil"
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
	report, err := ic.Check(ctx, ipam.CheckOptions{})
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
