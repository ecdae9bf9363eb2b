package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/internal/ipamtest"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/testutil"
)

// hostClients are one host's clients.
type hostClients struct {
	be backend.Client
	cl *client.Client
	ic *ipam.Client
}

// TestClusterFaultsNoDuplicates: 4 hosts with 8 workers each allocate
// through a 3-member cluster's faults as CNI ADD and DEL do (an address,
// then its WorkloadEndpoint; a failed ADD releases its handle; DEL removes
// the endpoint, then releases), each host with its own clients. No address
// is ever held twice, and once the workers stop, ipamcheck.Check is clean.
func TestClusterFaultsNoDuplicates(t *testing.T) {
	const hosts, workers, keep = 4, 8, 3
	cl := testutil.StartEtcdCluster(t, 3)
	connect := func() *hostClients {
		be, err := etcd.New(etcd.Config{Endpoints: cl.ClientURLs(), Dialer: cl.DialContext, Timeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		c, err := ipam.New(be, ipamtest.Log(t), ipam.Options{Cache: ipam.NewCache()})
		if err != nil {
			t.Fatal(err)
		}
		return &hostClients{be: be, cl: client.New(be), ic: c}
	}
	admin := connect()
	ipamtest.Pool(t, admin.cl, "p", "10.30.0.0/20", 28)
	var mu sync.Mutex
	holder := map[netip.Addr]string{} // address -> handle holding it
	var dups []string
	adds, failedAdds := 0, 0

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for h := range hosts {
		host := fmt.Sprintf("h%d", h)
		ipamtest.Node(t, admin.cl, host, nil)
		e := connect()
		for w := range workers {
			wg.Go(func() { allocate(ctx, e, host, w, keep, &mu, holder, &dups, &adds, &failedAdds) })
		}
	}
	progress := func(t *testing.T) {
		mu.Lock()
		t.Logf("%d ADDs so far, %d failed", adds, failedAdds)
		mu.Unlock()
	}
	cl.RunFaults(t, nil, func(t *testing.T, _ testutil.ClusterFault) { progress(t) })
	stop()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, d := range dups {
		t.Error(d)
	}
	if adds == 0 {
		t.Fatal("no ADD succeeded")
	}
	r, err := ipamcheck.Check(context.Background(), admin.ic, ipamcheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Errorf("ipam check after the faults: %+v", r)
	}
	if r.Allocations != len(holder) {
		t.Errorf("%d allocations stored, the workers hold %d", r.Allocations, len(holder))
	}
	ipamtest.Read(t, admin.be).MustCheck(t)
	t.Logf("%d ADDs (%d failed), %d addresses held at the end", adds, failedAdds, len(holder))
}

// allocate is one CNI worker: ADD (assign, then the endpoint) and DEL of
// the oldest once it holds more than keep, until ctx ends.
func allocate(ctx context.Context, e *hostClients, host string, w, keep int, mu *sync.Mutex, holder map[netip.Addr]string, dups *[]string, adds, failed *int) {
	type held struct {
		ip     netip.Addr
		handle string
		wep    *v3.WorkloadEndpoint
	}
	var mine []held
	bg := context.Background()
	for i := 0; ctx.Err() == nil; i++ {
		pod := fmt.Sprintf("w%dx%d", w, i)
		handle := "net." + host + pod
		v4, _, err := e.ic.AutoAssign(bg, ipam.AutoAssignArgs{Num4: 1, HandleID: handle, Hostname: host, ReuseHandle: true,
			Attrs: map[string]string{ipam.AttributeNode: host, ipam.AttributePod: pod}})
		var wep *v3.WorkloadEndpoint
		if err == nil {
			wep = v3.NewWorkloadEndpoint()
			wep.Namespace, wep.Name = "ns", host+"-k8s-"+pod+"-eth0"
			wep.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: host, Pod: pod, Endpoint: "eth0",
				InterfaceName: "cali" + pod, IPNetworks: []string{v4.IPs[0].Addr().String() + "/32"}}
			_, err = e.cl.WorkloadEndpoints().Create(bg, wep)
			if errors.Is(err, cerrors.ErrExists) {
				err = nil // the first attempt's, sent again
			}
		}
		if err != nil {
			// A failed ADD: the runtime sends DEL, until it succeeds.
			del(e, wep, handle)
			mu.Lock()
			*failed++
			mu.Unlock()
			continue
		}
		ip := v4.IPs[0].Addr()
		mu.Lock()
		*adds++
		if other, ok := holder[ip]; ok {
			*dups = append(*dups, fmt.Sprintf("%s assigned to %s while %s holds it", ip, handle, other))
		}
		holder[ip] = handle
		mu.Unlock()
		mine = append(mine, held{ip, handle, wep})
		if len(mine) > keep {
			old := mine[0]
			mine = mine[1:]
			mu.Lock()
			delete(holder, old.ip)
			mu.Unlock()
			del(e, old.wep, old.handle)
		}
	}
}

// del is a CNI DEL: remove the endpoint (if any), release the handle;
// retried until both succeed, as runtimes do.
func del(e *hostClients, wep *v3.WorkloadEndpoint, handle string) {
	for {
		var err error
		if wep != nil {
			_, err = e.cl.WorkloadEndpoints().Delete(context.Background(), wep.Namespace, wep.Name, "")
			if errors.Is(err, cerrors.ErrNotFound) {
				err = nil
			}
		}
		if err == nil {
			err = e.ic.ReleaseByHandle(context.Background(), handle)
			if errors.Is(err, cerrors.ErrNotFound) {
				err = nil
			}
		}
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
