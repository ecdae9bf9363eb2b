package ipamplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"

	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
)

var ctx = context.Background()

func newPlugin(t *testing.T, pools ...string) *Plugin {
	t.Helper()
	be := memory.New()
	t.Cleanup(func() { be.Close() })
	cl := client.New(be)
	for i, c := range pools {
		p := v3.NewIPPool()
		p.Name, p.Spec.CIDR = string(rune('a'+i)), c
		if _, err := cl.IPPools().Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	ic, err := ipam.New(be, logrus.NewEntry(l), ipam.Options{Cache: ipam.NewCache()})
	if err != nil {
		t.Fatal(err)
	}
	return &Plugin{IPAM: ic, Client: cl, Nodename: "node1", LockFile: filepath.Join(t.TempDir(), "ipam.lock"), Log: logrus.NewEntry(l)}
}

func conf(t *testing.T, s string) *netconf.NetConf {
	t.Helper()
	c, err := netconf.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const dual = `{"cniVersion":"1.1.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam","assign_ipv6":"true"}}`

func TestAddDelCheckResultVersions(t *testing.T) {
	p := newPlugin(t, "10.1.0.0/16", "fd00:1::/112")
	c := conf(t, dual)
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web"}
	res, err := p.Add(ctx, c, args)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 2 || res.IPs[0].Address.String() != "10.1.0.0/26" && res.IPs[0].Address.IP.To4() == nil {
		t.Fatalf("result %v", res)
	}
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		r, err := res.GetAsVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		var m map[string]any
		json.Unmarshal(b, &m)
		if m["cniVersion"] != v || len(m["ips"].([]any)) != 2 {
			t.Fatalf("version %s: %s", v, b)
		}
	}
	h, attrs, err := p.IPAM.GetAssignmentAttributes(ctx, netip.MustParseAddr(res.IPs[0].Address.IP.String()))
	if err != nil || h != "net.c1" || attrs["pod"] != "web" || attrs["namespace"] != "ns" || attrs["node"] != "node1" || attrs["timestamp"] == "" {
		t.Fatalf("attributes %q %v %v", h, attrs, err)
	}
	// CHECK with the ADD's result as prevResult.
	raw, _ := json.Marshal(res)
	var prev map[string]any
	json.Unmarshal(raw, &prev)
	c.RawPrevResult = prev
	if err := p.Check(ctx, c, args); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	for range 2 {
		if err := p.Del(ctx, c, args); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	}
	if err := p.Check(ctx, c, args); err == nil {
		t.Fatal("CHECK after DEL succeeded")
	}
}

func TestAddRequestedIPAndRollback(t *testing.T) {
	p := newPlugin(t, "10.2.0.0/24")
	c := conf(t, `{"cniVersion":"1.0.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`)
	res, err := p.Add(ctx, c, &skel.CmdArgs{ContainerID: "fixed", Args: "IP=10.2.0.9"})
	if err != nil || res.IPs[0].Address.String() != "10.2.0.9/32" {
		t.Fatalf("requested IP: %v %v", res, err)
	}
	// IPv6 wanted but there is no IPv6 pool: the IPv4 address is released.
	c6 := conf(t, `{"cniVersion":"1.0.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam","assign_ipv6":"true"}}`)
	if _, err := p.Add(ctx, c6, &skel.CmdArgs{ContainerID: "dual"}); !errors.Is(err, ipam.ErrNoQualifiedPool) {
		t.Fatalf("ADD without v6 pool = %v", err)
	}
	allocs, err := p.IPAM.Allocations(ctx)
	if err != nil || len(allocs) != 1 || allocs[0].Handle != "net.fixed" {
		t.Fatalf("after rollback: %v %v", allocs, err)
	}
}

func TestGCReleasesOnlyThisNodesStaleAttachments(t *testing.T) {
	p := newPlugin(t, "10.3.0.0/24")
	c := conf(t, `{"cniVersion":"1.1.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`)
	for _, id := range []string{"keep", "gone1", "gone2"} {
		if _, err := p.Add(ctx, c, &skel.CmdArgs{ContainerID: id}); err != nil {
			t.Fatal(err)
		}
	}
	other := *p
	other.Nodename = "node2"
	if _, err := other.Add(ctx, c, &skel.CmdArgs{ContainerID: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	c.ValidAttachments = []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}
	if err := p.GC(ctx, c); err != nil {
		t.Fatal(err)
	}
	allocs, _ := p.IPAM.Allocations(ctx)
	got := map[string]bool{}
	for _, a := range allocs {
		got[a.Handle] = true
	}
	if len(got) != 2 || !got["net.keep"] || !got["net.elsewhere"] {
		t.Fatalf("after GC: %v", got)
	}
}

func TestStatus(t *testing.T) {
	c := conf(t, dual)
	if err := newPlugin(t).Status(ctx, c); err == nil {
		t.Fatal("STATUS without pools succeeded")
	}
	if err := newPlugin(t, "fd00::/112").Status(ctx, c); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
}

// Each plugin process starts with the block hint and IPAM state the
// previous one left in the lock file; another node's are not taken, and a
// damaged state is ignored.
func TestLockFileCarriesBlockHint(t *testing.T) {
	p := newPlugin(t, "10.80.0.0/16")
	c := conf(t, `{"cniVersion":"1.1.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`)
	res, err := p.Add(ctx, c, &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	block := p.IPAM.Hint("node1")
	if !block.IsValid() || !block.Contains(netip.MustParseAddr(res.IPs[0].Address.IP.String())) {
		t.Fatalf("hint %v does not hold the assigned %v", block, res.IPs[0].Address.IP)
	}

	// A fresh process: a new IPAM client on the same datastore and lock file.
	fresh, err := ipam.New(p.Client.Backend(), p.Log, ipam.Options{Cache: ipam.NewCache()})
	if err != nil {
		t.Fatal(err)
	}
	next := *p
	next.IPAM = fresh
	next.lock(context.Background())()
	if got := fresh.Hint("node1"); got != block {
		t.Fatalf("fresh client's hint = %v, want %v from the lock file", got, block)
	}
	if fresh.SaveWarm("node1") == nil {
		t.Fatal("fresh client did not take the saved IPAM state")
	}
	// Processes after it, each with a new client: DEL and ADD again.
	if err := next.Del(ctx, c, &skel.CmdArgs{ContainerID: "c1", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		n := *p
		if n.IPAM, err = ipam.New(p.Client.Backend(), p.Log, ipam.Options{Cache: ipam.NewCache()}); err != nil {
			t.Fatal(err)
		}
		r, err := n.Add(ctx, c, &skel.CmdArgs{ContainerID: fmt.Sprint("d", i), IfName: "eth0", Netns: "/x"})
		if err != nil {
			t.Fatal(err)
		}
		if !block.Contains(netip.MustParseAddr(r.IPs[0].Address.IP.String())) {
			t.Fatalf("process %d assigned %v outside the host's block %v", i, r.IPs[0].Address.IP, block)
		}
	}
	if allocs, err := p.IPAM.Allocations(ctx); err != nil || len(allocs) != 3 {
		t.Fatalf("allocations %v, %v; want d0, d1, d2", allocs, err)
	}
	data, err := os.ReadFile(p.LockFile)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	if err := os.WriteFile(p.LockFile, []byte(first+"\n{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	damaged := next
	damaged.IPAM, _ = ipam.New(p.Client.Backend(), p.Log, ipam.Options{Cache: ipam.NewCache()})
	damaged.lock(context.Background())()
	if damaged.IPAM.SaveWarm("node1") != nil || damaged.IPAM.Hint("node1") != block {
		t.Fatal("a damaged saved state was taken, or the hint beside it lost")
	}
	other := next
	other.IPAM, _ = ipam.New(p.Client.Backend(), p.Log, ipam.Options{Cache: ipam.NewCache()})
	other.Nodename = "node2"
	other.lock(context.Background())()
	if got := other.IPAM.Hint("node2"); got.IsValid() {
		t.Fatalf("node2 took node1's hint %v", got)
	}
}

// issue 23 item 5: ADD is idempotent per handle: repeats return the
// addresses the handle holds (automatic or CNI_ARGS IP=) and assign none.
func TestAddIsIdempotentPerHandle(t *testing.T) {
	p := newPlugin(t, "10.4.0.0/24", "fd00:4::/112")
	c := conf(t, dual)
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0"}
	var first []string
	for i := range 3 {
		res, held, err := addHeld(p, c, args)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ip := range res.IPs {
			got = append(got, ip.Address.String())
		}
		if i == 0 {
			first = got
			if len(held) != 0 {
				t.Fatalf("first ADD reports held addresses %v", held)
			}
		} else if strings.Join(got, ",") != strings.Join(first, ",") || len(held) != 2 {
			t.Fatalf("ADD %d got %v (held %v), want %v held", i, got, held, first)
		}
	}
	if allocs, err := p.IPAM.Allocations(ctx); err != nil || len(allocs) != 2 {
		t.Fatalf("after three ADDs: %+v, %v", allocs, err)
	}

	fixed := &skel.CmdArgs{ContainerID: "c2", IfName: "eth0", Args: "IP=10.4.0.77"}
	one := conf(t, `{"cniVersion":"1.1.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`)
	for i := range 2 {
		res, held, err := addHeld(p, one, fixed)
		if err != nil || res.IPs[0].Address.String() != "10.4.0.77/32" || len(held) != i {
			t.Fatalf("IP= ADD %d: %v, held %v, %v", i, res, held, err)
		}
	}
	// Another container's handle does not get it.
	if _, err := p.Add(ctx, one, &skel.CmdArgs{ContainerID: "c3", Args: "IP=10.4.0.77"}); err == nil {
		t.Fatal("another container was given c2's requested address")
	}
	for _, id := range []string{"c1", "c2"} {
		if err := p.Del(ctx, c, &skel.CmdArgs{ContainerID: id, IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	if allocs, err := p.IPAM.Allocations(ctx); err != nil || len(allocs) != 0 {
		t.Fatalf("after DEL: %+v, %v", allocs, err)
	}
}

// addHeld is Add, also returning the addresses the handle held before.
func addHeld(p *Plugin, conf *netconf.NetConf, args *skel.CmdArgs) (*current.Result, []netip.Addr, error) {
	pl, err := p.Plan(ctx, conf, args)
	if err != nil {
		return nil, nil, err
	}
	if _, _, err := pl.Commit(ctx); err != nil {
		return nil, nil, err
	}
	return pl.Result(), pl.Held(), nil
}

// issue 23 item 9: an empty container ID is refused with CNI code 4 before
// any IPAM work.
func TestEmptyContainerIDRefused(t *testing.T) {
	p := newPlugin(t, "10.5.0.0/24")
	c := conf(t, `{"cniVersion":"1.1.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`)
	args := &skel.CmdArgs{IfName: "eth0"}
	_, addErr := p.Add(ctx, c, args)
	for verb, err := range map[string]error{"ADD": addErr, "DEL": p.Del(ctx, c, args), "CHECK": p.Check(ctx, c, args)} {
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(te.Msg, "CNI_CONTAINERID") {
			t.Errorf("%s: %v", verb, err)
		}
	}
	if allocs, _ := p.IPAM.Allocations(ctx); len(allocs) != 0 {
		t.Fatalf("allocations: %+v", allocs)
	}
}

// issue 23 item 9: the lock file is made only in an existing directory, or
// in the run directory (one level, as calico-node makes it); a lock file
// elsewhere is done without, and no directory is made for it.
func TestLockFileOnlyInExistingDirectory(t *testing.T) {
	root := t.TempDir()
	if _, err := lockFile(filepath.Join(root, "a", "b", "ipam.lock"), "", func() {}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("lock in a missing directory: %v", err)
	}
	run := filepath.Join(root, "run")
	f, err := lockFile(filepath.Join(run, "ipam.lock"), run, func() {})
	if err != nil {
		t.Fatalf("lock in the missing run directory: %v", err)
	}
	f.Close()
	deep := filepath.Join(root, "x", "run")
	if _, err := lockFile(filepath.Join(deep, "ipam.lock"), deep, func() {}); err == nil {
		t.Fatal("the run directory's missing parent was made")
	}

	p := newPlugin(t, "10.6.0.0/24")
	p.LockFile = filepath.Join(root, "typo", "ipam.lock")
	c := conf(t, `{"cniVersion":"1.1.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`)
	if _, err := p.Add(ctx, c, &skel.CmdArgs{ContainerID: "c1", IfName: "eth0"}); err != nil {
		t.Fatalf("ADD without its lock: %v", err)
	}
	ents, _ := os.ReadDir(root)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "run" {
		t.Fatalf("directories made: %v, want only run", names)
	}
}

// A plan made from the lock file's IPAM state names its addresses before
// anything is written, and Commit writes the caller's ops in the same
// transaction; a plan given up releases the lock and writes nothing; Undo
// after Commit releases only what the ADD was given.
func TestPlanCommitsOpsAndUndoes(t *testing.T) {
	p := newPlugin(t, "10.7.0.0/24")
	c := conf(t, `{"cniVersion":"1.1.0","name":"net","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`)
	// A fresh client each time, as each plugin process has.
	fresh := func() *Plugin {
		n := *p
		n.IPAM, _ = ipam.New(p.Client.Backend(), p.Log, ipam.Options{Cache: ipam.NewCache()})
		return &n
	}
	if _, err := fresh().Add(ctx, c, &skel.CmdArgs{ContainerID: "c0", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}

	// Given up: the lock is free again and nothing was written.
	pl, err := fresh().Plan(ctx, c, &skel.CmdArgs{ContainerID: "c1", IfName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	planned := pl.Addrs()
	if len(planned) != 1 {
		t.Fatalf("planned %v from the lock file's state", planned)
	}
	if err := pl.Undo(ctx); err != nil {
		t.Fatal(err)
	}

	key := backend.TxnOp{Action: backend.TxnPut, Key: client.KeyFor(profile("rides")), Value: []byte(`{}`)}
	pl, err = fresh().Plan(ctx, c, &skel.CmdArgs{ContainerID: "c1", IfName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := pl.Addrs(); len(got) != 1 || got[0] != planned[0] {
		t.Fatalf("planned %v after a plan given up for %v", got, planned)
	}
	addrs, rev, err := pl.Commit(ctx, key)
	if err != nil || rev == 0 || len(addrs) != 1 || addrs[0] != planned[0] {
		t.Fatalf("Commit: %v at %d, %v; planned %v", addrs, rev, err, planned)
	}
	kv, err := p.Client.Backend().Get(ctx, key.Key)
	if err != nil || kv.Revision != rev {
		t.Fatalf("the ops' key: %v, %v; committed at %d", kv, err, rev)
	}

	// A repeat holds the same address: its Undo leaves it for the DEL.
	again, err := fresh().Plan(ctx, c, &skel.CmdArgs{ContainerID: "c1", IfName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if addrs, rev, err := again.Commit(ctx, key); err != nil || rev != 0 || len(addrs) != 1 || addrs[0] != planned[0] {
		t.Fatalf("repeat: %v at %d, %v", addrs, rev, err)
	}
	if err := again.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if ips, _ := p.IPAM.IPsByHandle(ctx, "net.c1"); len(ips) != 1 {
		t.Fatalf("the repeat's Undo released the held address: %v", ips)
	}
	if err := pl.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if ips, _ := p.IPAM.IPsByHandle(ctx, "net.c1"); len(ips) != 0 {
		t.Fatalf("Undo of the first ADD left %v", ips)
	}
}

func profile(name string) *v3.Profile {
	pr := v3.NewProfile()
	pr.Name = name
	return pr
}
