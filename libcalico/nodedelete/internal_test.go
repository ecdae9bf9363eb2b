package nodedelete

import (
	"context"
	"net/netip"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
)

// TestRewrittenEndpointReleasesItsNewAddresses deletes an endpoint that
// was rewritten, with a new address, after it was listed: the new address
// is released before the endpoint goes.
func TestRewrittenEndpointReleasesItsNewAddresses(t *testing.T) {
	ctx := context.Background()
	be := memory.New()
	t.Cleanup(func() { be.Close() })
	c := client.New(be)
	ic, err := ipam.New(be, nil, ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := v3.NewIPPool()
	p.Name, p.Spec.CIDR = "pool", "10.50.0.0/24"
	if _, err := c.IPPools().Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	assign := func(ip, handle string) {
		if err := ic.AssignIP(ctx, ipam.AssignIPArgs{IP: netip.MustParseAddr(ip), HandleID: handle, Hostname: "h1",
			Attrs: map[string]string{ipam.AttributeNode: "h1"}}); err != nil {
			t.Fatal(err)
		}
	}
	assign("10.50.0.1", "net.a")
	w := v3.NewWorkloadEndpoint()
	w.Namespace, w.Name = "ns", "h1-k8s-a-eth0"
	w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: "h1", Pod: "a", Endpoint: "eth0", ContainerID: "c1",
		InterfaceName: "cali0123456789a", IPNetworks: []string{"10.50.0.1/32"}}
	listed, err := c.WorkloadEndpoints().Create(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	assign("10.50.0.2", "net.b")
	moved := v3.Clone(listed)
	moved.Spec.IPNetworks = []string{"10.50.0.2/32"}
	if _, err := c.WorkloadEndpoints().Update(ctx, moved); err != nil {
		t.Fatal(err)
	}

	d := &deleter{c: c, ic: ic, node: "h1", log: discard(), res: &Result{}}
	if err := d.run(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(d.res.WorkloadEndpoints) != 1 || len(d.res.Addresses) != 2 {
		t.Fatalf("result %+v", d.res)
	}

	// The same through deleteOwned alone, with the stale listing (the
	// release sweeps every address attributed to h1: the old one too).
	assign("10.50.0.3", "net.c")
	w.Spec.IPNetworks = []string{"10.50.0.3/32"}
	if listed, err = c.WorkloadEndpoints().Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	assign("10.50.0.4", "net.d")
	moved = v3.Clone(listed)
	moved.Spec.IPNetworks = []string{"10.50.0.4/32"}
	if _, err := c.WorkloadEndpoints().Update(ctx, moved); err != nil {
		t.Fatal(err)
	}
	d.res = &Result{}
	var done []string
	err = d.deleteOwned(ctx, v3.KindWorkloadEndpoint, listed, func(r v3.Resource) (bool, error) {
		return true, d.releaseAddresses(ctx, wepAddrs(r.(*v3.WorkloadEndpoint)))
	}, &done)
	if err != nil || len(done) != 1 || len(d.res.Addresses) != 2 || d.res.Addresses[1] != netip.MustParseAddr("10.50.0.4") {
		t.Fatalf("deleteOwned: %v, done %v, result %+v", err, done, d.res)
	}
}
