package acceptance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/libcalico/client"

	"github.com/calico-etcd/calico/cni-plugin/internal/nettest"
)

// podHasNoInterface fails if the pod has anything but lo.
func podHasNoInterface(t *testing.T, p *pod) {
	t.Helper()
	if out, _ := p.ns.Output("ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Errorf("pod %s has an interface left:\n%s", p.rt.ContainerID, out)
	}
}

func wantErr(t *testing.T, what string, err error, code uint, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded", what)
	}
	t.Logf("%s: %v", what, err)
	if code != 0 && cniCode(err) != code {
		t.Errorf("%s: CNI code %d, want %d", what, cniCode(err), code)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Errorf("%s: error %q lacks %q", what, err, substr)
	}
}

func TestEtcdDownAtAdd(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})
	h.etcd.Stop()
	p := h.newPod("ffff0001", "prod/web")
	start := time.Now()
	wantErr(t, "ADD with etcd down", h.add(l, p), types.ErrTryAgainLater, "datastore unavailable (etcd endpoints "+h.etcd.Endpoint)
	t.Logf("ADD failed after %s", time.Since(start).Round(time.Millisecond))
	wantErr(t, "STATUS with etcd down", h.status(l), 50, "datastore unavailable")
	podHasNoInterface(t, p)
	if err := h.in(h.etcd.Start); err != nil {
		t.Fatal(err)
	}
	h.assertClean()
	if err := h.status(l); err != nil {
		t.Errorf("STATUS with etcd back: %v", err)
	}
}

// TestEtcdLostMidAdd cuts etcd off at exact points of an ADD, with the
// veth already made. With a warm IPAM state the address and the endpoint
// are one transaction: cut there, nothing is stored and ADD must remove
// the veth and leave nothing. Without one (no saved state in the lock
// file) the address is written first: cut there, the same; cut at the
// endpoint write that follows, ADD must fail, remove the veth and write no
// endpoint, and the address it cannot release while etcd is away is
// released by the DEL that runtimes send after a failed ADD.
func TestEtcdLostMidAdd(t *testing.T) {
	t.Parallel() // mostly waiting for timeouts
	const (
		addrPrefix = "/calico/ipam/v2/assignment/"
		wepPrefix  = "/calico/resources/v3/projectcalico.org/workloadendpoints/"
	)
	for _, tc := range []struct {
		name, prefix string
		cold         bool
		leaked       int
	}{
		{"at the address and endpoint write", wepPrefix, false, 0},
		{"at the address write, cold", addrPrefix, true, 0},
		{"at the endpoint write, cold", wepPrefix, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			h.addPool("pool4", poolV4, 26)
			// Claim the block first, so the ADD's IPAM write is its only one.
			warm := h.newPod("ffff0000", "")
			l := h.list(netConf{})
			h.mustAdd(l, warm)
			h.mustDel(l, warm)
			if tc.cold {
				if err := os.Remove(filepath.Join(h.dir, "ipam.lock")); err != nil {
					t.Fatal(err)
				}
			}

			gate := newEtcdGate(t, h, tc.prefix)
			lg := h.list(netConf{endpoint: gate.Endpoint()})
			p := h.newPod("ffff0002", "prod/web")
			err := h.add(lg, p)
			select {
			case <-gate.Tripped():
			default:
				t.Fatalf("the gate never tripped; ADD: %v", err)
			}
			wantErr(t, "ADD losing etcd "+tc.name, err, types.ErrTryAgainLater, "datastore unavailable")
			podHasNoInterface(t, p)
			if out, _ := h.ns.Output("ip", "-o", "link"); strings.Contains(out, "cali") {
				t.Errorf("veth left behind:\n%s", out)
			}
			ctx := context.Background()
			if weps, _, _ := h.c.WorkloadEndpoints().List(ctx, client.ListOptions{}); len(weps) != 0 {
				t.Errorf("endpoint written: %+v", weps[0])
			}
			if allocs, _ := h.ic.Allocations(ctx); len(allocs) != tc.leaked {
				t.Errorf("%d allocations before the runtime's DEL, want %d: %+v", len(allocs), tc.leaked, allocs)
			}
			gate.Open()
			h.mustDel(lg, p)
			h.assertClean()
		})
	}
}

func TestPoolExhausted(t *testing.T) {
	h := newHost(t)
	h.addPool("tiny", "10.67.0.0/30", 30)
	l := h.list(netConf{})
	var pods []*pod
	for i := 0; i < 4; i++ {
		p := h.newPod(fmt.Sprintf("abcd%04d", i), "")
		h.mustAdd(l, p)
		pods = append(pods, p)
	}
	wantErr(t, "STATUS with a full pool", h.status(l), 50, "no free IPv4 address")
	extra := h.newPod("abcd9999", "")
	wantErr(t, "ADD into a full pool", h.add(l, extra), 0, "not enough free addresses")
	podHasNoInterface(t, extra)
	ctx := context.Background()
	if allocs, _ := h.ic.Allocations(ctx); len(allocs) != 4 {
		t.Errorf("%d allocations, want 4", len(allocs))
	}
	if weps, _, _ := h.c.WorkloadEndpoints().List(ctx, client.ListOptions{}); len(weps) != 4 {
		t.Errorf("%d endpoints, want 4", len(weps))
	}
	ping(t, pods[0], pods[3].addr(false))
	for _, p := range pods {
		h.mustDel(l, p)
	}
	h.mustDel(l, extra)
	h.assertClean()
	if err := h.status(l); err != nil {
		t.Errorf("STATUS after release: %v", err)
	}
}

func TestNetNSGone(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})

	ghost := h.newPod("1234abcd", "prod/ghost")
	ghost.ns.Delete()
	wantErr(t, "ADD into a missing namespace", h.add(l, ghost), types.ErrUnknownContainer, "network namespace does not exist")
	h.assertClean()

	// A pod whose namespace vanished before its DEL.
	p := h.newPod("1234abce", "prod/gone")
	h.mustAdd(l, p)
	p.ns.Delete()
	h.mustDel(l, p)
	h.mustDel(l, p)
	h.assertClean()
}

func TestInterfaceAlreadyPresent(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})

	// A second ADD into a pod's namespace, same interface name.
	first := h.newPod("5678aaaa", "prod/first")
	h.mustAdd(l, first)
	rt := *first.rt
	rt.ContainerID = "5678bbbb"
	rt.Args = nil
	second := &pod{ns: first.ns, rt: &rt}
	wantErr(t, "ADD of an existing interface", h.add(l, second), 0, "interface already exists in the pod: eth0")
	ctx := context.Background()
	if allocs, _ := h.ic.Allocations(ctx); len(allocs) != 1 || allocs[0].Handle != netName+".5678aaaa" {
		t.Errorf("allocations after the refused ADD: %+v", allocs)
	}
	ping(t, first, nettest.HostIPv4.String())
	if err := h.check(l, first); err != nil {
		t.Errorf("CHECK of the first pod: %v", err)
	}
	h.mustDel(l, first)

	// An eth0 the plugin did not make.
	own := h.newPod("5678cccc", "")
	if err := own.ns.Exec("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "ADD over a foreign eth0", h.add(l, own), 0, "interface already exists in the pod: eth0")
	if err := own.ns.Exec("ip", "link", "show", "eth0"); err != nil {
		t.Errorf("the foreign eth0 is gone: %v", err)
	}
	h.assertClean()
}

// While the datastore is locked ('calicoctl datastore migrate lock'),
// ADD and DEL fail with code 11 and change nothing, and STATUS says 50;
// unlocked, both work again.
func TestLockedDatastore(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})
	first, second := h.newPod("10c0001", "prod/web"), h.newPod("10c0002", "prod/api")
	h.mustAdd(l, first)
	lockDatastore(t, h.c, true)
	wantErr(t, "ADD while locked", h.add(l, second), types.ErrTryAgainLater, "not ready to process requests")
	podHasNoInterface(t, second)
	wantErr(t, "DEL while locked", h.del(l, first), types.ErrTryAgainLater, "datastoreReady false")
	if out, _ := first.ns.Output("ip", "-o", "link"); !strings.Contains(out, "eth0") {
		t.Errorf("DEL while locked removed the pod's interface:\n%s", out)
	}
	wantErr(t, "STATUS while locked", h.status(l), 50, "not ready")
	lockDatastore(t, h.c, false)
	h.mustDel(l, first)
	h.mustAdd(l, second)
	h.mustDel(l, second)
	h.assertClean()
}

func lockDatastore(t *testing.T, c *client.Client, locked bool) {
	t.Helper()
	ctx := context.Background()
	ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
	if err != nil {
		t.Fatal(err)
	}
	ready := !locked
	ci.Spec.DatastoreReady = &ready
	if _, err := c.ClusterInformations().Update(ctx, ci); err != nil {
		t.Fatal(err)
	}
}
