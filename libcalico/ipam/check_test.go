package ipam

import (
	"encoding/json"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

func TestCheckFindsAndFixesLeaks(t *testing.T) {
	e := memEnv(t)
	e.pool("p", "10.20.0.0/24", 28)
	e.node("n1", nil)
	inUse, _ := e.assign("n1", "net.used", 1, 0)
	e.assign("n1", "net.leaked", 1, 0)
	e.assign("dead", "net.dead", 1, 0) // node "dead" does not exist
	tunnel, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "ipip-tunnel-addr-n1", Hostname: "n1",
		Attrs: map[string]string{AttributeNode: "n1", AttributeType: AttributeTypeIPIP}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.cl.Nodes().Get(ctx, "", "n1")
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "192.168.1.10/24", IPv4IPIPTunnelAddr: tunnel.IPs[0].Addr().String()}
	if _, err := e.cl.Nodes().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	wep := v3.NewWorkloadEndpoint()
	wep.Namespace, wep.Name = "ns", "n1-k8s-web-eth0"
	wep.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: "n1", Pod: "web", Endpoint: "eth0", ContainerID: "c1",
		InterfaceName: "cali12345678901", IPNetworks: []string{inUse.IPs[0].Addr().String() + "/32"}}
	if _, err := e.cl.WorkloadEndpoints().Create(ctx, wep); err != nil {
		t.Fatal(err)
	}
	// A handle a crashed writer left behind.
	v, _ := json.Marshal(model.IPAMHandle{Block: map[string]int{"10.20.0.0/28": 3}})
	if _, err := e.be.Create(ctx, &backend.KVPair{Key: model.HandleKey{HandleID: "orphan"}, Value: v}); err != nil {
		t.Fatal(err)
	}

	young, err := e.ipam.Check(ctx, CheckOptions{MinLeakAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(young.Leaked) != 2 { // no timestamp attribute: treated as old
		t.Fatalf("leaks with min age: %+v", young.Leaked)
	}
	r, err := e.ipam.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leaked := map[string]bool{}
	for _, a := range r.Leaked {
		leaked[a.Handle] = true
	}
	if r.Allocations != 4 || len(leaked) != 2 || !leaked["net.leaked"] || !leaked["net.dead"] {
		t.Fatalf("leaks: %+v", r)
	}
	if len(r.BadHandles) != 1 || r.BadHandles[0].Handle != "orphan" || len(r.StaleAffinities) != 1 || r.StaleAffinities[0].Host != "dead" || r.OK() {
		t.Fatalf("report: %+v", r)
	}
	fixed, err := e.ipam.Check(ctx, CheckOptions{Fix: true})
	if err != nil || len(fixed.FixErrors) != 0 || fixed.Fixed != 4 {
		t.Fatalf("fix: %+v %v", fixed, err)
	}
	after, err := e.ipam.Check(ctx, CheckOptions{})
	if err != nil || !after.OK() || after.Allocations != 2 {
		t.Fatalf("after fix: %+v %v", after, err)
	}
	readState(t, e.be).mustCheck(t)

	usage, err := e.ipam.Usage(ctx)
	if err != nil || len(usage) != 1 || usage[0].InUse != 2 || usage[0].Capacity != 256 {
		t.Fatalf("usage %+v %v", usage, err)
	}
	for _, b := range usage[0].Blocks {
		if b.Host != "n1" || b.Capacity != 16 || b.Free != b.Capacity-b.InUse {
			t.Fatalf("block usage %+v", b)
		}
	}
}
