package daemon

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/defaultpools"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
	"github.com/calico-etcd/calico/libcalico/tunneladdr"
)

// TestStartupDuties runs three confds at once on one etcd, as hosts
// booting together: the default pool (VXLAN) is created once, every Node
// registers and gets a VXLAN address and MAC; turning VXLAN off on the
// pool releases them all, turning it on again brings them back, and
// `ipam check` is clean throughout.
func TestStartupDuties(t *testing.T) {
	e := setup(t)
	pools, err := defaultpools.FromEnv(func(k string) string {
		return map[string]string{"CALICO_IPV4POOL_CIDR": "10.244.0.0/16", "CALICO_IPV4POOL_VXLAN": "Always"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	names := []string{"node-a", "node-b", "node-c"}
	for i, name := range names {
		cfg := e.cfg
		cfg.NodeName, cfg.NodenameFile = name, t.TempDir()+"/nodename"
		cfg.RunDir = t.TempDir()
		cfg.Node = nodeinfo.Options{IPv4: fmt.Sprintf("172.31.255.%d/24", 11+i)}
		cfg.DefaultPools, cfg.AllocateTunnelAddrs = pools, true
		cfg.Notify = func(string) {}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Run(ctx, cfg, testLog(t).WithField("node", name))
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}()

	ic, err := ipam.New(e.c.Backend(), testLog(t), ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clean := func(what string) {
		t.Helper()
		rep, err := ipamcheck.Check(context.Background(), ic, ipamcheck.Options{})
		if err != nil || !rep.OK() {
			t.Fatalf("%s: ipam check %+v, %v", what, rep, err)
		}
	}
	addrs := func(want bool) func() bool {
		return func() bool {
			ns, _, err := e.c.Nodes().List(context.Background(), client.ListOptions{})
			if err != nil || len(ns) != 3 {
				return false
			}
			for _, n := range ns {
				if (n.Spec.IPv4VXLANTunnelAddr != "") != want || (n.Spec.VXLANTunnelMACAddr == nodeinfo.VXLANTunnelMAC(n.Name, false)) != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "VXLAN addresses on every node", addrs(true))
	ps, _, err := e.c.IPPools().List(context.Background(), client.ListOptions{})
	if err != nil || len(ps) != 1 || ps[0].Name != defaultpools.IPv4Name || ps[0].Spec.VXLANMode != v3.VXLANModeAlways {
		t.Fatalf("pools %+v, %v", ps, err)
	}
	for _, name := range names {
		h, err := ic.IPsByHandle(context.Background(), tunneladdr.VXLAN.Handle(name))
		if err != nil || len(h) != 1 {
			t.Fatalf("handle of %s: %v, %v", name, h, err)
		}
	}
	clean("VXLAN on")

	p := ps[0]
	p.Spec.VXLANMode = v3.VXLANModeNever
	if _, err := e.c.IPPools().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VXLAN addresses released", addrs(false))
	if a, err := ic.Allocations(context.Background()); err != nil || len(a) != 0 {
		t.Fatalf("allocations left: %+v, %v", a, err)
	}
	clean("VXLAN off")

	p, _ = e.c.IPPools().Get(context.Background(), "", p.Name)
	p.Spec.VXLANMode = v3.VXLANModeCrossSubnet
	if _, err := e.c.IPPools().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VXLAN addresses again", addrs(true))
	time.Sleep(200 * time.Millisecond) // any late reconcile would show in the check
	clean("VXLAN on again")
}
