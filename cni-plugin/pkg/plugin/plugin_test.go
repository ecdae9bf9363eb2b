package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/libcalico/model"

	"github.com/calico-etcd/calico/cni-plugin/pkg/dataplane"
	"github.com/calico-etcd/calico/cni-plugin/pkg/ipamplugin"
	"github.com/calico-etcd/calico/cni-plugin/pkg/wep"
)

// env is a Plugin over the memory datastore, real IPAM and the fake
// dataplane: the orchestration and its rollbacks, without root.
type env struct {
	t  *testing.T
	c  *client.Client
	ic *ipam.Client
	dp *dataplane.Fake
	p  *Plugin
}

const testConf = `{"cniVersion":"1.1.0","name":"net1","type":"calico","nodename":"node1",
 "etcd_endpoints":"http://127.0.0.1:1","ipam":{"type":"calico-ipam"}}`

func newEnv(t *testing.T, confJSON, poolCIDR string) *env {
	t.Helper()
	conf, err := ParseConfig([]byte(confJSON))
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	log := logrus.NewEntry(l)
	be := memory.New()
	c := client.New(be)
	ic, err := ipam.New(be, log, ipam.Options{Cache: ipam.NewCache()})
	if err != nil {
		t.Fatal(err)
	}
	// The node exists, as felix registers it; else IPAM check reports
	// its block affinity as stale.
	node := v3.NewNode()
	node.Name = "node1"
	if _, err := c.Nodes().Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	if poolCIDR != "" {
		pool := v3.NewIPPool()
		pool.Name = "pool1"
		pool.Spec.CIDR = poolCIDR
		pool.Spec.BlockSize = 30
		if _, err := c.IPPools().Create(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
	}
	dp := dataplane.NewFake()
	p := &Plugin{Conf: conf, Node: "node1", Client: c, Pools: ic,
		IPAM:     InProcessIPAM{&ipamplugin.Plugin{IPAM: ic, Client: c, Nodename: "node1", Log: log}},
		Endpoint: wep.NewStore(c, log), DP: dp, Log: log}
	return &env{t: t, c: c, ic: ic, dp: dp, p: p}
}

func (e *env) args(cid, netns, ifname, cniArgs string) *skel.CmdArgs {
	e.dp.AddNetNS(netns)
	return &skel.CmdArgs{ContainerID: cid, Netns: netns, IfName: ifname, Args: cniArgs}
}

func (e *env) add(a *skel.CmdArgs) *current.Result {
	e.t.Helper()
	r, err := e.p.Add(context.Background(), a)
	if err != nil {
		e.t.Fatalf("Add(%s): %v", a.ContainerID, err)
	}
	return r
}

// assertEmpty fails unless no endpoint, allocation, handle or interface
// is left.
func (e *env) assertEmpty() {
	e.t.Helper()
	ctx := context.Background()
	weps, _, err := e.c.WorkloadEndpoints().List(ctx, client.ListOptions{})
	if err != nil || len(weps) != 0 {
		e.t.Errorf("endpoints left: %d (%v)", len(weps), err)
	}
	allocs, err := e.ic.Allocations(ctx)
	if err != nil || len(allocs) != 0 {
		e.t.Errorf("allocations left: %+v (%v)", allocs, err)
	}
	rep, err := ipamcheck.Check(ctx, e.ic, ipamcheck.Options{})
	if err != nil || !rep.OK() {
		e.t.Errorf("ipam check: %+v (%v)", rep, err)
	}
	if ifs := e.dp.Interfaces(); len(ifs) != 0 {
		e.t.Errorf("interfaces left: %+v", ifs)
	}
}

// assertOnly fails unless container cid's endpoint and allocation are
// the only ones.
func (e *env) assertOnly(cid string) {
	e.t.Helper()
	ctx := context.Background()
	weps, _, err := e.c.WorkloadEndpoints().List(ctx, client.ListOptions{})
	if err != nil || len(weps) != 1 || weps[0].Spec.ContainerID != cid {
		e.t.Fatalf("endpoints %+v (%v), want only %s's", weps, err, cid)
	}
	allocs, err := e.ic.Allocations(ctx)
	if err != nil || len(allocs) != 1 || allocs[0].Handle != "net1."+cid {
		e.t.Fatalf("allocations %+v (%v), want only %s's", allocs, err, cid)
	}
}

// Once IPAM is warm, an ADD writes its endpoint in IPAM's transaction:
// endpoint, block and handle share one revision.
func TestEndpointRidesWithAddresses(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	e.add(e.args("aaaa", "/ns/a", "eth0", "")) // cold: claims the block
	r := e.add(e.args("bbbb", "/ns/b", "eth0", ""))
	ctx := context.Background()
	weps, _, err := e.c.WorkloadEndpoints().List(ctx, client.ListOptions{})
	if err != nil || len(weps) != 2 {
		t.Fatalf("endpoints: %d, %v", len(weps), err)
	}
	var w *v3.WorkloadEndpoint
	for _, x := range weps {
		if x.Spec.ContainerID == "bbbb" {
			w = x
		}
	}
	ip, _ := netip.AddrFromSlice(r.IPs[0].Address.IP)
	blk, err := e.p.Client.Backend().Get(ctx, model.BlockKey{CIDR: netip.PrefixFrom(ip.Unmap(), 30).Masked()})
	if err != nil || w == nil {
		t.Fatalf("block %v (%v), endpoint %v", blk, err, w)
	}
	if w.ResourceVersion != strconv.FormatInt(blk.Revision, 10) {
		t.Fatalf("endpoint at revision %s, block at %d: written apart", w.ResourceVersion, blk.Revision)
	}
}

func TestAddWritesEndpointAndResult(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	a := e.args("c0ffee01", "/ns/pod1", "eth0", "K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0;K8S_POD_UID=u1")
	r := e.add(a)

	host := dataplane.HostVethName("prod.web-0")
	if len(r.Interfaces) != 2 || r.Interfaces[0].Name != host || r.Interfaces[0].Mac != "ee:ee:ee:ee:ee:ee" ||
		r.Interfaces[1].Name != "eth0" || r.Interfaces[1].Sandbox != "/ns/pod1" {
		t.Fatalf("interfaces %+v", r.Interfaces)
	}
	if len(r.IPs) != 1 || *r.IPs[0].Interface != 1 || r.IPs[0].Address.String() != "10.65.0.0/32" {
		t.Fatalf("ips %+v", r.IPs)
	}
	if len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" || r.Routes[0].GW.String() != "169.254.1.1" {
		t.Fatalf("routes %+v", r.Routes)
	}

	w, err := e.c.WorkloadEndpoints().Get(context.Background(), "prod", "node1-k8s-web--0-eth0")
	if err != nil {
		t.Fatal(err)
	}
	if w.Spec.ContainerID != "c0ffee01" || w.Spec.InterfaceName != host || w.Spec.MAC != r.Interfaces[1].Mac ||
		strings.Join(w.Spec.IPNetworks, ",") != "10.65.0.0/32" || strings.Join(w.Spec.Profiles, ",") != "net1" ||
		w.Labels[v3.LabelOrchestrator] != "k8s" || w.Labels[v3.LabelNamespace] != "prod" {
		t.Fatalf("endpoint %+v %+v", w.ObjectMeta, w.Spec)
	}
	ips, err := e.ic.IPsByHandle(context.Background(), "net1.c0ffee01")
	if err != nil || len(ips) != 1 {
		t.Fatalf("handle: %v %v", ips, err)
	}
	if _, err := e.c.Profiles().Get(context.Background(), "", "net1"); err != nil {
		t.Fatalf("profile: %v", err)
	}

	// A result converts to every supported version.
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		if _, err := r.GetAsVersion(v); err != nil {
			t.Errorf("as %s: %v", v, err)
		}
	}

	// CHECK with the result as prevResult passes.
	e.withPrevResult(r)
	if err := e.p.Check(context.Background(), a); err != nil {
		t.Fatalf("Check: %v", err)
	}

	if err := e.p.Del(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Del(context.Background(), a); err != nil {
		t.Fatalf("second Del: %v", err)
	}
	e.assertEmpty()
}

func (e *env) withPrevResult(r *current.Result) {
	e.t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		e.t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		e.t.Fatal(err)
	}
	e.p.Conf.RawPrevResult = raw
}

func TestCheckFailsOnDrift(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	a := e.args("c0ffee02", "/ns/pod2", "eth0", "")
	r := e.add(a)
	e.withPrevResult(r)
	ctx := context.Background()
	w, _ := e.c.WorkloadEndpoints().Get(ctx, "default", "node1-cni-c0ffee02-eth0")
	w.Spec.IPNetworks = []string{"10.65.0.9/32"}
	if _, err := e.c.WorkloadEndpoints().Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Check(ctx, a); err == nil || !strings.Contains(err.Error(), "ipNetworks") {
		t.Fatalf("Check after endpoint change: %v", err)
	}
	e.p.Conf.RawPrevResult = nil
	if err := e.p.Check(ctx, a); err == nil {
		t.Fatal("Check without prevResult passed")
	}
}

// An interface the plugin did not make, or made for another container, is
// never taken over.
func TestAddRefusesForeignInterfaceAndKeepsIt(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	a := e.args("c0ffee03", "/ns/pod3", "eth0", "")
	e.add(a)
	before, _ := e.ic.Allocations(context.Background())

	// Another container's ADD into the same pod and interface name.
	other := e.args("c0ffee13", "/ns/pod3", "eth0", "")
	if _, err := e.p.Add(context.Background(), other); !errors.Is(err, dataplane.ErrInterfaceExists) {
		t.Fatalf("ADD of another container over the interface: %v", err)
	}
	after, _ := e.ic.Allocations(context.Background())
	if len(after) != len(before) || after[0].Handle != "net1.c0ffee03" || len(e.dp.Interfaces()) != 1 {
		t.Fatalf("the refused ADD changed state: allocations %+v→%+v, interfaces %d", before, after, len(e.dp.Interfaces()))
	}

	// An eth0 the plugin did not make.
	own := e.args("c0ffee23", "/ns/own", "eth0", "")
	e.dp.AddForeign("/ns/own", "eth0")
	if _, err := e.p.Add(context.Background(), own); !errors.Is(err, dataplane.ErrInterfaceExists) {
		t.Fatalf("ADD over a foreign eth0: %v", err)
	}
	if ifs := e.dp.Interfaces(); len(ifs) != 2 {
		t.Fatalf("interfaces %+v, want the first pod's and the foreign one", ifs)
	}
	if after, _ := e.ic.Allocations(context.Background()); len(after) != 1 {
		t.Fatalf("allocations after the refused ADD: %+v", after)
	}
}

// issue 23 item 4: whatever an ADD cut off (SIGKILL) left, a retry with
// the same container ID finishes the attachment without duplicating any
// of it: one interface, one endpoint, the addresses the handle held; DEL
// then leaves nothing.
func TestRetryFinishesInterruptedAdd(t *testing.T) {
	ctx := context.Background()
	for _, cniArgs := range []string{"", "K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web"} {
		for _, tc := range []struct {
			name                  string
			addrs, veth, endpoint bool
			complete              bool
		}{
			{name: "addresses", addrs: true},
			{name: "veth", veth: true},
			{name: "veth and addresses", veth: true, addrs: true},
			{name: "veth, addresses and endpoint", veth: true, addrs: true, endpoint: true},
			{name: "everything but the answer", complete: true},
		} {
			t.Run(fmt.Sprintf("%s/k8s=%v", tc.name, cniArgs != ""), func(t *testing.T) {
				e := newEnv(t, testConf, "10.65.0.0/28")
				a := e.args("c0ffee05", "/ns/pod5", "eth0", cniArgs)
				att, err := e.p.attachment(a)
				if err != nil {
					t.Fatal(err)
				}
				var held []netip.Addr
				if tc.complete {
					held = addrsOf(e.add(a))
				}
				if tc.addrs {
					pl, err := e.p.IPAM.Plan(ctx, att.conf, att.args)
					if err != nil {
						t.Fatal(err)
					}
					if held, _, err = pl.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				}
				var dp *dataplane.Result
				if tc.veth {
					if dp, err = e.dp.Create(att.req); err != nil {
						t.Fatal(err)
					}
				}
				if tc.endpoint {
					if _, err := e.p.Endpoint.Write(ctx, wep.Build(att.ids, att.meta, dp.HostIfName, dp.PodMAC, held)); err != nil {
						t.Fatal(err)
					}
				}

				r := e.add(a)
				got := addrsOf(r)
				if len(got) != 1 || (held != nil && got[0] != held[0]) {
					t.Fatalf("retry got %v, the handle held %v", got, held)
				}
				ifs := e.dp.Interfaces()
				if len(ifs) != 1 || ifs[0].HostIfName != att.req.HostIfName || ifs[0].PodMAC.String() != r.Interfaces[1].Mac ||
					!slices.Equal(ifs[0].Addrs, got) {
					t.Fatalf("interfaces after the retry %+v, result %+v", ifs, r.Interfaces)
				}
				weps, _, err := e.c.WorkloadEndpoints().List(ctx, client.ListOptions{})
				if err != nil || len(weps) != 1 || weps[0].Spec.ContainerID != "c0ffee05" || weps[0].Spec.MAC != r.Interfaces[1].Mac ||
					strings.Join(weps[0].Spec.IPNetworks, ",") != got[0].String()+"/32" {
					t.Fatalf("endpoints after the retry: %+v (%v)", weps, err)
				}
				allocs, err := e.ic.Allocations(ctx)
				if err != nil || len(allocs) != 1 || allocs[0].Handle != "net1.c0ffee05" || allocs[0].IP != got[0] {
					t.Fatalf("allocations after the retry: %+v (%v)", allocs, err)
				}
				e.withPrevResult(r)
				if err := e.p.Check(ctx, a); err != nil {
					t.Errorf("CHECK after the retry: %v", err)
				}
				if err := e.p.Del(ctx, a); err != nil {
					t.Fatal(err)
				}
				e.assertEmpty()
			})
		}
	}
}

// issue 23 item 4: a retry of a container's ADD into another namespace
// (the earlier attempt's pair lives on in the first) replaces the earlier
// pair, as for a new sandbox of a pod, and keeps its address.
func TestRetryInAnotherNamespaceReplacesEarlierPair(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testConf, "10.65.0.0/28")
	first := addrsOf(e.add(e.args("c0ffee08", "/ns/a", "eth0", "")))
	retry := e.args("c0ffee08", "/ns/b", "eth0", "")
	got := addrsOf(e.add(retry))
	if !slices.Equal(got, first) {
		t.Fatalf("retry got %v, the handle held %v", got, first)
	}
	if ifs := e.dp.Interfaces(); len(ifs) != 1 || ifs[0].NetNS != "/ns/b" {
		t.Fatalf("interfaces %+v", ifs)
	}
	if allocs, _ := e.ic.Allocations(ctx); len(allocs) != 1 {
		t.Fatalf("allocations %+v", allocs)
	}
	if err := e.p.Del(ctx, retry); err != nil {
		t.Fatal(err)
	}
	e.assertEmpty()
}

// issue 23 item 4: a retry that fails leaves the addresses the handle
// held before it to the runtime's DEL (it releases only what it was
// given), and that DEL leaves nothing.
func TestFailedRetryLeavesHeldAddressesToDel(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testConf, "10.65.0.0/28")
	a := e.args("c0ffee06", "/ns/pod6", "eth0", "")
	first := addrsOf(e.add(a))
	e.dp.FailSetup = errors.New("boom")
	if _, err := e.p.Add(ctx, a); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing retry: %v", err)
	}
	allocs, _ := e.ic.Allocations(ctx)
	if len(allocs) != 1 || allocs[0].IP != first[0] {
		t.Fatalf("allocations after the failed retry: %+v, want %v kept for DEL", allocs, first)
	}
	if weps, _, _ := e.c.WorkloadEndpoints().List(ctx, client.ListOptions{}); len(weps) != 0 {
		t.Fatalf("the failed retry left %d endpoints", len(weps))
	}
	e.dp.FailSetup = nil
	if err := e.p.Del(ctx, a); err != nil {
		t.Fatal(err)
	}
	e.assertEmpty()
}

// issue 23 item 9: an empty container ID is refused (CNI error 4, naming
// CNI_CONTAINERID) before anything is done.
func TestEmptyContainerIDRefused(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	a := e.args("", "/ns/pod7", "eth0", "")
	ctx := context.Background()
	_, addErr := e.p.Add(ctx, a)
	e.withPrevResult(&current.Result{CNIVersion: "1.1.0"})
	for verb, err := range map[string]error{"ADD": addErr, "DEL": e.p.Del(ctx, a), "CHECK": e.p.Check(ctx, a)} {
		var te *types.Error
		if !errors.As(cniError(err), &te) || te.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(te.Msg, "CNI_CONTAINERID") {
			t.Errorf("%s with an empty container ID: %v", verb, err)
		}
	}
	e.assertEmpty()
}

func TestAddRollsBackEveryStep(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(e *env, a *skel.CmdArgs)
		want   string
		weps   int // endpoints the test itself made
	}{
		{"netns gone", func(e *env, a *skel.CmdArgs) { e.dp.DeleteNetNS(a.Netns) }, "network namespace does not exist", 0},
		{"veth fails", func(e *env, _ *skel.CmdArgs) { e.dp.FailSetup = errors.New("boom") }, "boom", 0},
		{"endpoint write fails", func(_ *env, a *skel.CmdArgs) {
			// A namespace the endpoint's validation refuses.
			a.Args = "K8S_POD_NAMESPACE=Not_A_Namespace;K8S_POD_NAME=web"
		}, "Metadata.Namespace", 0},
		{"no pool", func(e *env, _ *skel.CmdArgs) {
			if _, err := e.c.IPPools().Delete(context.Background(), "", "pool1", ""); err != nil {
				e.t.Fatal(err)
			}
		}, "cannot find a qualified ippool", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testConf, "10.65.0.0/28")
			a := e.args("c0ffee04", "/ns/pod4", "eth0", "")
			tc.break_(e, a)
			_, err := e.p.Add(context.Background(), a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Add: %v, want %q", err, tc.want)
			}
			if allocs, _ := e.ic.Allocations(context.Background()); len(allocs) != 0 {
				t.Errorf("allocations left: %+v", allocs)
			}
			if ifs := e.dp.Interfaces(); len(ifs) != 0 {
				t.Errorf("interfaces left: %+v", ifs)
			}
			if weps, _, _ := e.c.WorkloadEndpoints().List(context.Background(), client.ListOptions{}); len(weps) != tc.weps {
				t.Errorf("%d endpoints, want %d", len(weps), tc.weps)
			}
		})
	}
}

// The pair is made beside the commit: when it fails, the endpoint that
// went in with the addresses (a warm ADD) is deleted and the addresses
// released.
func TestFailedPairUndoesCommittedEndpoint(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testConf, "10.65.0.0/28")
	first := e.args("aaaa", "/ns/a", "eth0", "")
	e.add(first) // cold: claims the block, so the next ADD is warm
	a := e.args("bbbb", "/ns/b", "eth0", "")
	e.dp.DeleteNetNS(a.Netns)
	if _, err := e.p.Add(ctx, a); !errors.Is(err, dataplane.ErrNetNSNotFound) {
		t.Fatalf("Add: %v, want %v", err, dataplane.ErrNetNSNotFound)
	}
	e.assertOnly("aaaa")
	if err := e.p.Del(ctx, first); err != nil {
		t.Fatal(err)
	}
	e.assertEmpty()
}

// While the datastore is locked ('calicoctl datastore migrate lock'), ADD
// and DEL refuse with code 11 and change nothing, and STATUS says 50, as
// Calico's plugin does; unlocked, both work again.
func TestLockedDatastoreRefusesAddAndDel(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testConf, "10.65.0.0/28")
	first := e.args("aaaa", "/ns/a", "eth0", "")
	e.add(first) // also initialises the cluster
	setDatastoreReady(t, e.c, false)

	second := e.args("bbbb", "/ns/b", "eth0", "")
	_, err := e.p.Add(ctx, second)
	var te *types.Error
	if !errors.As(cniError(err), &te) || te.Code != types.ErrTryAgainLater || !strings.Contains(te.Error(), "datastoreReady false") {
		t.Fatalf("Add while locked: %v, want code %d naming datastoreReady", err, types.ErrTryAgainLater)
	}
	if err := e.p.Del(ctx, first); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Del while locked: %v, want %v", err, ErrNotReady)
	}
	if err := e.p.Status(ctx); !errors.As(err, &te) || te.Code != statusNotAvailable {
		t.Fatalf("Status while locked: %v, want code %d", err, statusNotAvailable)
	}
	e.assertOnly("aaaa")
	if ifs := e.dp.Interfaces(); len(ifs) != 1 || ifs[0].NetNS != "/ns/a" {
		t.Fatalf("interfaces %+v, want only aaaa's", ifs)
	}

	setDatastoreReady(t, e.c, true)
	if err := e.p.Del(ctx, first); err != nil {
		t.Fatal(err)
	}
	e.add(second)
	if err := e.p.Del(ctx, second); err != nil {
		t.Fatal(err)
	}
	e.assertEmpty()
}

func setDatastoreReady(t *testing.T, c *client.Client, ready bool) {
	t.Helper()
	ctx := context.Background()
	ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
	if err != nil {
		t.Fatal(err)
	}
	ci.Spec.DatastoreReady = &ready
	if _, err := c.ClusterInformations().Update(ctx, ci); err != nil {
		t.Fatal(err)
	}
}

func TestPoolExhausted(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/30")
	var args []*skel.CmdArgs
	for i := 0; i < 4; i++ {
		a := e.args(fmt.Sprintf("c%d", i), fmt.Sprintf("/ns/p%d", i), "eth0", "")
		e.add(a)
		args = append(args, a)
	}
	if err := e.p.Status(context.Background()); err == nil {
		t.Error("STATUS with a full pool passed")
	} else if te := (*types.Error)(nil); !errors.As(err, &te) || te.Code != 50 {
		t.Errorf("STATUS: %v, want code 50", err)
	}
	_, err := e.p.Add(context.Background(), e.args("c9", "/ns/p9", "eth0", ""))
	if !errors.Is(err, ipam.ErrNoAddresses) {
		t.Fatalf("ADD into a full pool: %v", err)
	}
	if len(e.dp.Interfaces()) != 4 {
		t.Fatalf("interfaces %d", len(e.dp.Interfaces()))
	}
	for _, a := range args {
		if err := e.p.Del(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.p.Status(context.Background()); err != nil {
		t.Errorf("STATUS with room: %v", err)
	}
	e.assertEmpty()
}

func TestStatusWithoutPool(t *testing.T) {
	e := newEnv(t, testConf, "")
	var te *types.Error
	if err := e.p.Status(context.Background()); !errors.As(err, &te) || te.Code != 50 {
		t.Fatalf("STATUS without a pool: %v", err)
	}
}

func TestDelOfOldSandboxKeepsNewOne(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	const pod = "K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web"
	old := e.args("aaaa", "/ns/old", "eth0", pod)
	e.add(old)
	// The old sandbox dies without DEL; kubelet starts a new one.
	e.dp.DeleteNetNS("/ns/old")
	newer := e.args("bbbb", "/ns/new", "eth0", pod)
	r := e.add(newer)

	if err := e.p.Del(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	w, err := e.c.WorkloadEndpoints().Get(context.Background(), "prod", "node1-k8s-web-eth0")
	if err != nil || w.Spec.ContainerID != "bbbb" {
		t.Fatalf("endpoint after old DEL: %+v %v", w, err)
	}
	if len(e.dp.Interfaces()) != 1 {
		t.Fatal("the new sandbox lost its interface")
	}
	e.withPrevResult(r)
	if err := e.p.Check(context.Background(), newer); err != nil {
		t.Fatalf("Check of the new sandbox: %v", err)
	}
	if err := e.p.Del(context.Background(), newer); err != nil {
		t.Fatal(err)
	}
	e.assertEmpty()
}

func TestGC(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	keep := e.args("keep1", "/ns/keep", "eth0", "")
	e.add(keep)
	gone := e.args("gone1", "/ns/gone", "eth0", "")
	e.add(gone)
	e.p.Conf.ValidAttachments = []types.GCAttachment{{ContainerID: "keep1", IfName: "eth0"}}
	if err := e.p.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	weps, _, _ := e.c.WorkloadEndpoints().List(ctx, client.ListOptions{})
	if len(weps) != 1 || weps[0].Spec.ContainerID != "keep1" {
		t.Fatalf("endpoints after GC: %d", len(weps))
	}
	if ips, _ := e.ic.IPsByHandle(ctx, "net1.gone1"); len(ips) != 0 {
		t.Fatalf("gone1 still holds %v", ips)
	}
	if ips, _ := e.ic.IPsByHandle(ctx, "net1.keep1"); len(ips) != 1 {
		t.Fatalf("keep1 holds %v", ips)
	}
	if ifs := e.dp.Interfaces(); len(ifs) != 1 || ifs[0].NetNS != "/ns/keep" {
		t.Fatalf("interfaces after GC: %+v", ifs)
	}
	e.p.Conf.ValidAttachments = nil
	if err := e.p.GC(ctx); err != nil {
		t.Fatal(err)
	}
	e.assertEmpty()
}

func TestCNIErrorCodes(t *testing.T) {
	var te *types.Error
	for _, tc := range []struct {
		err  error
		code uint
	}{
		{fmt.Errorf("x: %w", dataplane.ErrNetNSNotFound), types.ErrUnknownContainer},
		{errors.New("other"), types.ErrInternal},
		{types.NewError(50, "no pool", ""), 50},
	} {
		if !errors.As(cniError(tc.err), &te) || te.Code != tc.code {
			t.Errorf("cniError(%v) = %v, want code %d", tc.err, te, tc.code)
		}
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"name":"n","type":"calico","mtu":1400,"ipam":{"type":"host-local","routes":[{"dst":"10.0.0.0/8"}]},
		"container_settings":{"allow_ip_forwarding":true},"dns":{"nameservers":["10.0.0.10"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MTU != 1400 || !c.ContainerSettings.AllowIPForwarding || len(c.Routes) != 1 || c.Routes[0].String() != "10.0.0.0/8" || c.DNS.Nameservers[0] != "10.0.0.10" {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []string{`{"name":"n","type":"calico"}`, `{"name":"n","ipam":{"type":"x"},"mtu":20}`, `{`,
		`{"name":"n","ipam":{"type":"calico-ipam"},"agent_socket":"run/agent.sock"}`, `{"name":"n","ipam":{"type":"calico-ipam"},"agent_socket":5}`} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("ParseConfig(%s) passed", bad)
		}
	}
}

func TestNewSandboxReplacesLiveOldVeth(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	const pod = "K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web"
	old := e.args("aaaa", "/ns/old", "eth0", pod)
	e.add(old)
	// The old namespace still exists, with the host veth the new sandbox
	// needs: Calico deletes it and goes on.
	newer := e.args("bbbb", "/ns/new", "eth0", pod)
	e.add(newer)
	// Its endpoint replaced the old one (the warm IPAM path's endpoint
	// write is refused, as the name is taken, and done on its own).
	weps, _, err := e.p.Client.WorkloadEndpoints().List(context.Background(), client.ListOptions{})
	if err != nil || len(weps) != 1 || weps[0].Spec.ContainerID != "bbbb" {
		t.Fatalf("endpoints after the new sandbox: %+v, %v", weps, err)
	}
	ifs := e.dp.Interfaces()
	if len(ifs) != 1 || ifs[0].NetNS != "/ns/new" {
		t.Fatalf("interfaces %+v", ifs)
	}
	if err := e.p.Del(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if ips, _ := e.ic.IPsByHandle(context.Background(), "net1.bbbb"); len(ips) != 1 {
		t.Fatalf("the new sandbox lost its address: %v", ips)
	}
	if err := e.p.Del(context.Background(), newer); err != nil {
		t.Fatal(err)
	}
	e.assertEmpty()
}

// issue 23 item 9: ParseConfig never panics, and what it accepts has a
// name CNI allows, an ipam type, and for calico-ipam a family to assign
// and named pools of the right version.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(testConf))
	f.Add([]byte(`{"name":"n","type":"calico","mtu":1400,"ipam":{"type":"host-local","routes":[{"dst":"10.0.0.0/8"},{"dst":"::/0"}]},"container_settings":{"allow_ip_forwarding":true}}`))
	f.Add([]byte(`{"name":"n","ipam":{"type":"calico-ipam","assign_ipv6":"true"},"dns":{"nameservers":["1.1.1.1"]}}`))
	f.Add([]byte(`{"name":"n","ipam":{"type":"calico-ipam","assign_ipv4":"false"}}`))
	f.Add([]byte(`{"name":"a b","ipam":{"type":"calico-ipam","ipv4_pools":["fd00::/64",""]}}`))
	f.Add([]byte(`{"name":"n","ipam":{"type":"calico-ipam"},"policy":{"type":"k8s"},"kubernetes":{"kubeconfig":"/k"},"log_file_max_age":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if c.Name == "" || utils.ValidateNetworkName(c.Name) != nil || c.IPAM.Type == "" || c.MTU < 0 {
			t.Fatalf("accepted %+v", c)
		}
		if c.IPAM.Type == CalicoIPAM {
			if !c.WantIPv4() && !c.WantIPv6() {
				t.Fatalf("accepted calico-ipam assigning nothing: %+v", c.IPAM)
			}
			for _, p := range c.IPAM.IPv4Pools {
				if pfx, err := netip.ParsePrefix(p); strings.TrimSpace(p) == "" || (err == nil && !pfx.Addr().Is4()) {
					t.Fatalf("accepted ipv4_pools %q", c.IPAM.IPv4Pools)
				}
			}
			for _, p := range c.IPAM.IPv6Pools {
				if pfx, err := netip.ParsePrefix(p); strings.TrimSpace(p) == "" || (err == nil && pfx.Addr().Is4()) {
					t.Fatalf("accepted ipv6_pools %q", c.IPAM.IPv6Pools)
				}
			}
		}
		for _, v := range []*string{c.IPAM.AssignIPv4, c.IPAM.AssignIPv6} {
			if v != nil && *v != "true" && *v != "false" {
				t.Fatalf("accepted assign flag %q", *v)
			}
		}
		if c.LogFileMaxSize < 0 || c.LogFileMaxAge < 0 || c.LogFileMaxCount < 0 {
			t.Fatalf("accepted negative log rotation settings: %+v", c.NetConf)
		}
		for _, r := range c.Routes {
			if !r.IsValid() || r != r.Masked() {
				t.Fatalf("route %s", r)
			}
		}
	})
}

func TestSecondInterfaceOfPodRefused(t *testing.T) {
	e := newEnv(t, testConf, "10.65.0.0/28")
	const pod = "K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web"
	first := e.args("aaaa", "/ns/p", "eth0", pod)
	e.add(first)
	second := e.args("aaaa", "/ns/p", "net1", pod)
	if _, err := e.p.Add(context.Background(), second); !errors.Is(err, dataplane.ErrAlreadyAttached) {
		t.Fatalf("second interface: %v", err)
	}
	if ifs := e.dp.Interfaces(); len(ifs) != 1 || ifs[0].IfName != "eth0" {
		t.Fatalf("interfaces %+v", ifs)
	}
	if ips, _ := e.ic.IPsByHandle(context.Background(), "net1.aaaa"); len(ips) != 1 {
		t.Fatalf("handle holds %v", ips)
	}
}
