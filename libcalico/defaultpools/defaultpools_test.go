package defaultpools

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/testutil"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	o, err := FromEnv(env(map[string]string{"CALICO_IPV4POOL_CIDR": "10.244.1.0/16", "CALICO_IPV6POOL_CIDR": "fd00:244::/48"}))
	if err != nil {
		t.Fatal(err)
	}
	s4, s6 := o.IPv4.Spec, o.IPv6.Spec
	if o.IPv4.Name != IPv4Name || s4.CIDR != "10.244.0.0/16" || s4.BlockSize != 26 || !s4.NATOutgoing ||
		s4.IPIPMode != v3.IPIPModeNever || s4.VXLANMode != v3.VXLANModeNever || s4.NodeSelector != "all()" {
		t.Errorf("IPv4 defaults: %s %+v", o.IPv4.Name, s4)
	}
	if o.IPv6.Name != IPv6Name || s6.CIDR != "fd00:244::/48" || s6.BlockSize != 122 || s6.NATOutgoing || s6.VXLANMode != v3.VXLANModeNever {
		t.Errorf("IPv6 defaults: %s %+v", o.IPv6.Name, s6)
	}

	o, err = FromEnv(env(map[string]string{
		"CALICO_IPV4POOL_CIDR": "10.65.0.0/16", "CALICO_IPV4POOL_BLOCK_SIZE": "24", "CALICO_IPV4POOL_VXLAN": "cross-subnet",
		"CALICO_IPV4POOL_NAT_OUTGOING": "No", "CALICO_IPV4POOL_NODE_SELECTOR": "zone == 'a'", "CALICO_IPV4POOL_DISABLE_BGP_EXPORT": "true",
		"CALICO_IPV6POOL_CIDR": "fd00:65::/64", "CALICO_IPV6POOL_VXLAN": "ALWAYS", "CALICO_IPV6POOL_NAT_OUTGOING": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s4, s6 = o.IPv4.Spec, o.IPv6.Spec
	if s4.BlockSize != 24 || s4.VXLANMode != v3.VXLANModeCrossSubnet || s4.NATOutgoing || s4.NodeSelector != "zone == 'a'" || !s4.DisableBGPExport {
		t.Errorf("IPv4 from env: %+v", s4)
	}
	if s6.VXLANMode != v3.VXLANModeAlways || !s6.NATOutgoing {
		t.Errorf("IPv6 from env: %+v", s6)
	}

	for _, m := range []map[string]string{nil, {"CALICO_IPV4POOL_CIDR": "none", "CALICO_IPV6POOL_CIDR": "none"},
		{"NO_DEFAULT_POOLS": "true", "CALICO_IPV4POOL_VXLAN": "Always"}} {
		if o, err := FromEnv(env(m)); err != nil || !o.Empty() {
			t.Errorf("FromEnv(%v) = %+v, %v; want no pools", m, o, err)
		}
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"NO_DEFAULT_POOLS": "TRUE", "CALICO_IPV4POOL_CIDR": "10.0.0.0/16"}, "contradicts"},
		{map[string]string{"CALICO_IPV4POOL_CIDR": "fd00::/64"}, "not an IPv4 CIDR"},
		{map[string]string{"CALICO_IPV4POOL_CIDR": "10.0.0.0/16", "CALICO_IPV4POOL_IPIP": "sometimes"}, "CALICO_IPV4POOL_IPIP"},
		{map[string]string{"CALICO_IPV4POOL_CIDR": "10.0.0.0/16", "CALICO_IPV4POOL_BLOCK_SIZE": "33"}, "block size"},
		{map[string]string{"CALICO_IPV4POOL_CIDR": "10.0.0.0/16", "CALICO_IPV4POOL_IPIP": "Always", "CALICO_IPV4POOL_VXLAN": "Always"}, "Cannot enable both"},
		{map[string]string{"CALICO_IPV4POOL_CIDR": "10.0.0.0/16", "CALICO_IPV4POOL_NODE_SELECTOR": "bad ("}, "NodeSelector"},
		{map[string]string{"CALICO_IPV6POOL_CIDR": "fd00::/64", "CALICO_IPV6POOL_BLOCK_SIZE": "x"}, "CALICO_IPV6POOL_BLOCK_SIZE"},
	} {
		if _, err := FromEnv(env(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromEnv(%v) error = %v; want one mentioning %q", tc.env, err, tc.want)
		}
	}
}

func newClient(t *testing.T, srv *testutil.Etcd) *client.Client {
	t.Helper()
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(be)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestEnsureHostsStartingAtOnce: eight hosts, each with its own etcd
// connection, ensure the default pools at the same moment. Each pool is
// created exactly once and nobody fails; later starts change nothing,
// whatever the operator did to the pools meanwhile.
func TestEnsureHostsStartingAtOnce(t *testing.T) {
	srv := testutil.StartEtcd(t)
	ctx := context.Background()
	o, err := FromEnv(env(map[string]string{"CALICO_IPV4POOL_CIDR": "10.244.0.0/16", "CALICO_IPV4POOL_VXLAN": "Always",
		"CALICO_IPV6POOL_CIDR": "fd00:244::/64"}))
	if err != nil {
		t.Fatal(err)
	}
	const hosts = 8
	clients := make([]*client.Client, hosts)
	for i := range clients {
		clients[i] = newClient(t, srv)
	}
	var wg sync.WaitGroup
	created := make([][]string, hosts)
	errs := make([]error, hosts)
	start := make(chan struct{})
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			created[i], errs[i] = Ensure(ctx, clients[i], o, nil)
		}()
	}
	close(start)
	wg.Wait()
	count := map[string]int{}
	for i := range hosts {
		if errs[i] != nil {
			t.Errorf("host %d: %v", i, errs[i])
		}
		for _, n := range created[i] {
			count[n]++
		}
	}
	if count[IPv4Name] != 1 || count[IPv6Name] != 1 || len(count) != 2 {
		t.Fatalf("creations per pool = %v, want each default pool once", count)
	}
	c := clients[0]
	pools, _, err := c.IPPools().List(ctx, client.ListOptions{})
	if err != nil || len(pools) != 2 {
		t.Fatalf("pools = %d, %v", len(pools), err)
	}
	p4, err := c.IPPools().Get(ctx, "", IPv4Name)
	if err != nil || p4.Spec.CIDR != "10.244.0.0/16" || p4.Spec.VXLANMode != v3.VXLANModeAlways || !p4.Spec.NATOutgoing {
		t.Fatalf("stored IPv4 pool %+v, %v", p4.Spec, err)
	}

	// The operator turns VXLAN off and replaces the IPv6 pool: a restart
	// leaves both alone.
	p4.Spec.VXLANMode = v3.VXLANModeNever
	if _, err := c.IPPools().Update(ctx, p4); err != nil {
		t.Fatal(err)
	}
	if _, err := c.IPPools().Delete(ctx, "", IPv6Name, ""); err != nil {
		t.Fatal(err)
	}
	mine := v3.NewIPPool()
	mine.Name, mine.Spec.CIDR = "mine-v6", "fd00:99::/64"
	if _, err := c.IPPools().Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if got, err := Ensure(ctx, c, o, nil); err != nil || len(got) != 0 {
		t.Fatalf("second start created %v, %v", got, err)
	}
	if p, _ := c.IPPools().Get(ctx, "", IPv4Name); p.Spec.VXLANMode != v3.VXLANModeNever {
		t.Fatalf("restart changed the pool: %+v", p.Spec)
	}
	if _, err := c.IPPools().Get(ctx, "", IPv6Name); err == nil {
		t.Fatal("restart re-created the IPv6 default pool beside the operator's")
	}
}
