package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

var ctx = context.Background()

func newMemClient(t *testing.T) (*client.Client, backend.Client) {
	be := memory.New()
	t.Cleanup(func() { be.Close() })
	return client.New(be), be
}

func pool(name, cidr string) *v3.IPPool {
	p := v3.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	return p
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// newEtcdClient is a client over a fresh embedded etcd.
func newEtcdClient(t *testing.T) (*client.Client, *etcd.Client, *testutil.Etcd) {
	t.Helper()
	srv := testutil.StartEtcd(t)
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(be)
	t.Cleanup(func() { c.Close() })
	return c, be, srv
}

func TestCreateDefaultsStampsAndStoresCalicoJSON(t *testing.T) {
	c, _, srv := newEtcdClient(t)
	in := pool("pool1", "10.10.0.0/16")
	out, err := c.IPPools().Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if in.UID != "" || in.Spec.BlockSize != 0 {
		t.Fatal("create changed the caller's object")
	}
	if !uuidRe.MatchString(out.UID) || out.CreationTimestamp.IsZero() || out.ResourceVersion == "" {
		t.Fatalf("metadata not stamped: %+v", out.ObjectMeta)
	}
	if out.Spec.BlockSize != 26 || out.Spec.NodeSelector != "all()" || out.Spec.IPIPMode != "Never" || out.Spec.VXLANMode != "Never" {
		t.Fatalf("defaults not applied: %+v", out.Spec)
	}
	raw := srv.RawClient(t)
	resp, err := raw.Get(ctx, "/calico/resources/v3/projectcalico.org/ippools/pool1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v %v", resp, err)
	}
	val := string(resp.Kvs[0].Value)
	for _, want := range []string{`"kind":"IPPool"`, `"apiVersion":"projectcalico.org/v3"`, `"blockSize":26`, `"uid":"` + out.UID} {
		if !strings.Contains(val, want) {
			t.Errorf("stored value lacks %s: %s", want, val)
		}
	}
	if strings.Contains(val, "resourceVersion") || strings.Contains(val, "\n") {
		t.Errorf("stored value must be compact and carry no resourceVersion: %s", val)
	}
	if out.ResourceVersion != itoa(resp.Kvs[0].ModRevision) {
		t.Errorf("resourceVersion %s != mod revision %d", out.ResourceVersion, resp.Kvs[0].ModRevision)
	}
	for _, k := range []string{"clusterinformations/default", "tiers/default"} {
		r, err := raw.Get(ctx, "/calico/resources/v3/projectcalico.org/"+k)
		if err != nil || len(r.Kvs) != 1 {
			t.Errorf("first write did not create %s", k)
		}
	}
	ci, err := c.ClusterInformations().Get(ctx, "", "default")
	if err != nil || ci.Spec.DatastoreReady == nil || !*ci.Spec.DatastoreReady || len(ci.Spec.ClusterGUID) != 32 {
		t.Fatalf("clusterinformation = %+v, %v", ci, err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestInvalidWritesNothing(t *testing.T) {
	c, be := newMemClient(t)
	for _, p := range []*v3.IPPool{
		pool("bad", "10.300.0.0/16"),
		pool("Bad_Name", "10.0.0.0/16"),
		func() *v3.IPPool { p := pool("small", "10.0.0.0/28"); p.Spec.BlockSize = 26; return p }(),
	} {
		_, err := c.IPPools().Create(ctx, p)
		if !errors.Is(err, cerrors.ErrValidation) {
			t.Errorf("create %s: err %v, want validation", p.Name, err)
		}
	}
	_, err := c.IPPools().Create(ctx, pool("bad", "10.300.0.0/16"))
	if err == nil || !strings.Contains(err.Error(), "IPPool.Spec.CIDR") || !strings.Contains(err.Error(), "10.300.0.0/16") {
		t.Errorf("error must name field and value: %v", err)
	}
	l, _ := be.List(ctx, model.PrefixListOptions{Path: model.Root})
	if len(l.KVPairs) != 0 {
		t.Fatalf("invalid input wrote %d keys", len(l.KVPairs))
	}
}

func TestPoolOverlapAndImmutableCIDR(t *testing.T) {
	c, _ := newMemClient(t)
	p1, err := c.IPPools().Create(ctx, pool("p1", "10.0.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.IPPools().Create(ctx, pool("p2", "10.0.128.0/17")); err == nil || !strings.Contains(err.Error(), "p1") {
		t.Fatalf("overlap not reported with the other pool: %v", err)
	}
	p1.Spec.CIDR = "10.1.0.0/16"
	if _, err := c.IPPools().Update(ctx, p1); !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("cidr change: %v", err)
	}
	p1.Spec.CIDR = "10.0.0.0/16"
	p1.Spec.NATOutgoing = true
	if _, err := c.IPPools().Update(ctx, p1); err != nil {
		t.Fatalf("update same pool must not overlap itself: %v", err)
	}
}

func TestUpdateRevisionsAndApply(t *testing.T) {
	c, _ := newMemClient(t)
	created, err := c.IPPools().Create(ctx, pool("p", "10.0.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	first := v3.Clone(created)
	created.Spec.NATOutgoing = true
	updated, err := c.IPPools().Update(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	if updated.UID != first.UID || !updated.CreationTimestamp.Equal(first.CreationTimestamp.Time) {
		t.Fatal("update lost uid or creationTimestamp")
	}
	first.Spec.Disabled = true
	if _, err := c.IPPools().Update(ctx, first); !errors.Is(err, cerrors.ErrConflict) {
		t.Fatalf("stale update: %v, want conflict", err)
	}
	if _, err := c.IPPools().Update(ctx, pool("missing", "10.9.0.0/16")); !errors.Is(err, cerrors.ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	bare := pool("p", "10.0.0.0/16")
	bare.Spec.Disabled = true
	applied, err := c.IPPools().Apply(ctx, bare)
	if err != nil || !applied.Spec.Disabled || applied.UID != first.UID {
		t.Fatalf("apply = %+v, %v", applied, err)
	}
	if _, err := c.IPPools().Apply(ctx, pool("new", "10.5.0.0/16")); err != nil {
		t.Fatalf("apply create: %v", err)
	}
	if _, err := c.IPPools().Create(ctx, pool("new", "10.6.0.0/16")); !errors.Is(err, cerrors.ErrExists) {
		t.Fatalf("create existing: %v", err)
	}
	if _, err := c.IPPools().Delete(ctx, "", "new", "1"); !errors.Is(err, cerrors.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if _, err := c.IPPools().Delete(ctx, "", "new", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.IPPools().Delete(ctx, "", "new", ""); !errors.Is(err, cerrors.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	if _, err := c.IPPools().Update(ctx, func() *v3.IPPool { p := pool("p", "10.0.0.0/16"); p.ResourceVersion = "abc"; return p }()); !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("bad resourceVersion: %v", err)
	}
}

func TestBuiltins(t *testing.T) {
	c, _ := newMemClient(t)
	if err := c.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tiers().Delete(ctx, "", "default", ""); !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("delete tier default: %v", err)
	}
	if _, err := c.Profiles().Delete(ctx, "", client.DefaultAllowProfile, ""); !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("delete default-allow: %v", err)
	}
	p, err := c.Profiles().Get(ctx, "", client.DefaultAllowProfile)
	if err != nil || len(p.Spec.Ingress) != 1 || p.Spec.Ingress[0].Action != v3.Allow {
		t.Fatalf("default-allow = %+v, %v", p, err)
	}
	profs, _, err := c.Profiles().List(ctx, client.ListOptions{})
	if err != nil || len(profs) != 1 {
		t.Fatalf("profile list = %v, %v", profs, err)
	}
	if _, err := c.Profiles().Create(ctx, p); !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("create default-allow: %v", err)
	}
}

func TestPolicyTier(t *testing.T) {
	c, _ := newMemClient(t)
	np := v3.NewNetworkPolicy()
	np.Name, np.Namespace = "allow", "prod"
	np.Spec.Selector = "role == 'db'"
	out, err := c.NetworkPolicies().Create(ctx, np)
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.Tier != "default" || out.Labels[v3.LabelTier] != "default" {
		t.Fatalf("tier not defaulted: %+v %+v", out.Spec, out.Labels)
	}
	gnp := v3.NewGlobalNetworkPolicy()
	gnp.Name = "security.block"
	gnp.Spec.Tier = "security"
	if _, err := c.GlobalNetworkPolicies().Create(ctx, gnp); err == nil || !strings.Contains(err.Error(), "security") {
		t.Fatalf("policy in missing tier: %v", err)
	}
	tier := v3.NewTier()
	tier.Name = "security"
	if _, err := c.Tiers().Create(ctx, tier); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GlobalNetworkPolicies().Create(ctx, gnp); err != nil {
		t.Fatalf("policy in existing tier: %v", err)
	}
	if _, err := c.Tiers().Delete(ctx, "", "security", ""); !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("delete non-empty tier: %v", err)
	}
	nps, _, err := c.NetworkPolicies().List(ctx, client.ListOptions{Namespace: "prod"})
	if err != nil || len(nps) != 1 {
		t.Fatalf("list = %v, %v", nps, err)
	}
}

// EnsureInitializedAnd reports whether the given resources exist, both
// before and after the client is initialised.
func TestEnsureInitializedAnd(t *testing.T) {
	c, be := newMemClient(t)
	// Written by another client, so that c's first call initialises.
	if _, err := client.New(be).IPPools().Create(ctx, pool("there", "10.9.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Delete(ctx, model.ResourceKey{Kind: v3.KindTier, Name: "default"}, 0); err != nil {
		t.Fatal(err)
	}
	there, absent := pool("there", "10.9.0.0/16"), pool("absent", "10.8.0.0/16")
	for round := range 2 { // the first initialises, the second only reads
		got, err := c.EnsureInitializedAnd(ctx, there, absent)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !got[0] || got[1] {
			t.Fatalf("round %d: present = %v, want [true false]", round, got)
		}
		if _, err := c.Tiers().Get(ctx, "", "default"); err != nil {
			t.Fatalf("round %d: tier default: %v", round, err)
		}
	}
	if got, err := c.EnsureInitializedAnd(ctx); err != nil || len(got) != 0 {
		t.Fatalf("no resources: %v, %v", got, err)
	}
}

// DatastoreReady follows ClusterInformation's datastoreReady: a cluster
// without one is ready, so is one that leaves the flag out.
func TestDatastoreReady(t *testing.T) {
	c, _ := newMemClient(t)
	if got, err := c.DatastoreReady(ctx); err != nil || !got {
		t.Fatalf("no ClusterInformation: DatastoreReady = %v, %v; want true", got, err)
	}
	if err := c.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		ready *bool
		want  bool
	}{{"flag unset", nil, true}, {"locked", ptr(false), false}, {"unlocked", ptr(true), true}} {
		ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
		if err != nil {
			t.Fatal(err)
		}
		ci.Spec.DatastoreReady = tc.ready
		if _, err := c.ClusterInformations().Update(ctx, ci); err != nil {
			t.Fatal(err)
		}
		if got, err := c.DatastoreReady(ctx); err != nil || got != tc.want {
			t.Errorf("%s: DatastoreReady = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// CreateOp's ops, committed in a transaction of the caller's, store what
// Create would have; a taken name fails the transaction, and so does an
// uninitialised cluster; bad input fails before any op exists.
func TestCreateOpInTransaction(t *testing.T) {
	c, be, _ := newEtcdClient(t)
	// Nothing initialised the cluster yet: the ops say so.
	_, early, err := c.CreateOp(ctx, pool("pool0", "10.9.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := be.Txn(ctx, early); !errors.Is(err, cerrors.ErrConflict) {
		t.Fatalf("create before the cluster is initialised: %v, want a conflict", err)
	}
	if err := c.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := client.New(be) // knows nothing of the initialisation
	r, ops, err := fresh.CreateOp(ctx, pool("pool1", "10.10.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 3 {
		t.Fatalf("ops %v: want the put and two initialisation guards", ops)
	}
	res, err := be.Txn(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	fresh.Committed(r, res.Revision)
	got, err := c.IPPools().Get(ctx, "", "pool1")
	if err != nil {
		t.Fatal(err)
	}
	want := r.(*v3.IPPool)
	if !uuidRe.MatchString(want.UID) || got.UID != want.UID || got.ResourceVersion != want.ResourceVersion || got.Spec.BlockSize != 26 {
		t.Fatalf("stored %+v %+v, prepared %+v %+v", got.ObjectMeta, got.Spec, want.ObjectMeta, want.Spec)
	}

	_, again, err := fresh.CreateOp(ctx, pool("pool1", "10.10.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 {
		t.Fatalf("ops %v: a committed CreateOp proved the cluster initialised", again)
	}
	if _, err := be.Txn(ctx, again); !errors.Is(err, cerrors.ErrConflict) {
		t.Fatalf("second create of pool1 in a transaction: %v, want a conflict", err)
	}

	_, _, err = c.CreateOp(ctx, pool("bad", "10.300.0.0/16"))
	if !errors.Is(err, cerrors.ErrValidation) || !strings.Contains(err.Error(), "10.300.0.0/16") {
		t.Fatalf("CreateOp of a bad pool: %v", err)
	}
	withRV := pool("rv", "10.20.0.0/16")
	withRV.ResourceVersion = "5"
	if _, _, err := c.CreateOp(ctx, withRV); !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("CreateOp with a resourceVersion: %v", err)
	}
}

// Apply replaces a taken name keeping its uid, ignores the input's
// resourceVersion and leaves the input as it was.
func TestApplyKeepsUIDAndInput(t *testing.T) {
	c, _ := newMemClient(t)
	first, err := c.Create(ctx, gns("a", "10.2.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	in := gns("a", "10.3.0.0/16")
	in.ResourceVersion = "12345"
	out, err := c.Apply(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, v3.KindGlobalNetworkSet, "", "a")
	if err != nil {
		t.Fatal(err)
	}
	g := got.(*v3.GlobalNetworkSet)
	if g.Spec.Nets[0] != "10.3.0.0/16" || g.UID != first.GetObjectMeta().UID || out.GetObjectMeta().ResourceVersion != g.ResourceVersion {
		t.Fatalf("apply stored %+v, returned %+v", g, out)
	}
	if in.ResourceVersion != "12345" || in.UID != "" {
		t.Fatalf("apply changed its input: %+v", in.ObjectMeta)
	}
	if out, err := c.Apply(ctx, gns("b", "10.4.0.0/16")); err != nil || out.GetObjectMeta().UID == "" {
		t.Fatalf("apply of a new name: %+v, %v", out, err)
	}
}

// Validate needs no datastore, names the field and the value, refuses
// built-ins and leaves its input alone.
func TestValidate(t *testing.T) {
	if err := client.Validate(gns("a", "10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	bad := pool("bad", "10.300.0.0/16")
	err := client.Validate(bad)
	if !errors.Is(err, cerrors.ErrValidation) || !strings.Contains(err.Error(), "IPPool.Spec.CIDR") || !strings.Contains(err.Error(), "10.300.0.0/16") {
		t.Fatalf("bad pool: %v", err)
	}
	if bad.Spec.BlockSize != 0 {
		t.Fatal("Validate defaulted its input")
	}
	prof := v3.NewProfile()
	prof.Name = client.DefaultAllowProfile
	if err := client.Validate(prof); !errors.Is(err, cerrors.ErrValidation) {
		t.Fatalf("built-in profile: %v", err)
	}
}

// A Checker sees the resources checked before it as written: a tier
// earlier in the batch exists, pools in the batch must not overlap, and a
// stored pool written again is checked as an update.
func TestCheckerBatch(t *testing.T) {
	c, _ := newMemClient(t)
	if _, err := c.Create(ctx, pool("stored", "10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	tier := v3.NewTier()
	tier.Name = "security"
	gnp := v3.NewGlobalNetworkPolicy()
	gnp.Name, gnp.Spec.Tier = "security.block", "security"
	sgnp := v3.NewStagedGlobalNetworkPolicy()
	sgnp.Name, sgnp.Spec.Tier = "other.block", "other"
	moved := pool("stored", "10.9.0.0/16")
	batch := []v3.Resource{tier, gnp, pool("p1", "10.1.0.0/16"), pool("p2", "10.1.128.0/17"), moved, sgnp}
	k := c.NewChecker(batch)
	for i, want := range []string{"", "", "", "IPPool(p2) CIDR overlaps with IPPool(p1)", "IPPool.Spec.CIDR = '10.9.0.0/16' (IPPool CIDR cannot be modified)", "Spec.Tier = 'other' (tier does not exist)"} {
		err := k.Check(ctx, batch[i])
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("check %d: %v, want %q", i, err, want)
		}
	}
	// Without the batch, the stored pool is one a new pool must not overlap.
	if err := c.NewChecker(nil).Check(ctx, pool("new", "10.0.1.0/24")); err == nil || !strings.Contains(err.Error(), "IPPool(stored)") {
		t.Fatalf("overlap with a stored pool: %v", err)
	}
}

func gns(name, cidr string) *v3.GlobalNetworkSet {
	g := v3.NewGlobalNetworkSet()
	g.Name, g.Spec.Nets = name, []string{cidr}
	return g
}
