package linux

import (
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/calc"
	"github.com/calico-etcd/calico/felix/calc/calctest"
	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/syncer"
)

// calcWEP is the WorkloadEndpoint the calculation graph turns into w's
// endpoint on host1.
func calcWEP(w *workload, name string, profiles ...string) *v3.WorkloadEndpoint {
	r := calctest.WEP("ns", name, "host1", nil, w.ip4.String()+"/32")
	r.Spec.InterfaceName, r.Spec.MAC, r.Spec.Profiles = w.iface, w.mac, profiles
	return r
}

// An endpoint listing a profile that does not exist before one that
// allows everything: the calculation graph denies in the missing one's
// place, so no traffic gets in or out, until the profile exists.
// issue 23 item 8b
func TestKernelMissingProfileDeniesBeforeLaterAllow(t *testing.T) {
	h := newHost(t, dpapi.Config{})
	w1 := addWorkload(t, h.ns, "calia1", "10.65.0.2", "")
	w2 := addWorkload(t, h.ns, "calib2", "10.65.0.3", "")
	w3 := addWorkload(t, h.ns, "calic3", "10.65.0.4", "")
	allow := []v3.Rule{{Action: v3.Allow}}
	pool := v3.NewIPPool()
	pool.Name, pool.Spec.CIDR = "pool1", "10.65.0.0/16"

	g := calc.New("host1", testLog(t))
	g.OnUpdates([]syncer.Update{
		calctest.Put(pool),
		calctest.Put(calctest.Profile("allow", nil, allow, allow)),
		calctest.Put(calcWEP(w1, "w1", "allow")),
		calctest.Put(calcWEP(w2, "w2", "missing", "allow")),
		calctest.Put(calcWEP(w3, "w3", "allow")),
	})
	g.OnStatusUpdated(syncer.InSync)
	must(t, h.dp.Apply(t.Context(), g.State()))
	for _, w := range []*workload{w1, w2, w3} {
		w.listen(t, 8080)
	}
	eventually(t, 5*time.Second, "connectivity between workloads whose profiles allow", func() bool {
		return w1.canConnect(t, w3.ip4, 8080) && w3.canConnect(t, w1.ip4, 8080)
	})
	if w1.canConnect(t, w2.ip4, 8080) {
		t.Error("reached a workload whose first profile does not exist (ingress)")
	}
	if w2.canConnect(t, w1.ip4, 8080) {
		t.Error("a workload whose first profile does not exist reached another (egress)")
	}

	// Once the profile exists (allowing), its rules apply in its place.
	g.OnUpdates([]syncer.Update{calctest.Put(calctest.Profile("missing", nil, allow, allow))})
	must(t, h.dp.Apply(t.Context(), g.State()))
	if !w1.canConnect(t, w2.ip4, 8080) || !w2.canConnect(t, w1.ip4, 8080) {
		t.Errorf("no connectivity once the profile exists\n%s", h.diag(t))
	}
}
