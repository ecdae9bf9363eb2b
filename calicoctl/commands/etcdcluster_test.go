package commands

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/testutil"
)

// TestEtcdCluster runs calicoctl with ETCD_ENDPOINTS listing a 3-member
// cluster (through proxies on loopback) through the cluster's faults:
// create, get, label and delete succeed while a quorum stands; without one
// they exit 1 within their --timeout, naming the endpoints; after each
// fault ipam check is clean and everything created is there.
func TestEtcdCluster(t *testing.T) {
	cl := testutil.StartEtcdCluster(t, 3)
	eps, err := cl.Proxy(nil, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"ETCD_ENDPOINTS": strings.Join(eps, ",")}}
	n := 0
	var pools []string
	use := func(t *testing.T) {
		t.Helper()
		n++
		name := fmt.Sprintf("p%d", n)
		f := writeFile(t, name+".yaml", poolYAML(name, fmt.Sprintf("10.%d.0.0/16", 100+n)))
		start := time.Now()
		c.t = t
		c.mustRun("create", "-f", f)
		c.mustRun("label", "ippool", name, "fault=survived")
		if r := c.mustRun("get", "ippool", name, "-o", "yaml"); !strings.Contains(r.stdout, "fault: survived") {
			t.Fatalf("get after label:\n%s", r)
		}
		c.mustRun("delete", "ippool", name)
		c.mustRun("apply", "-f", f)
		pools = append(pools, name)
		t.Logf("create, label, get, delete and apply took %v", time.Since(start).Round(time.Millisecond))
	}
	use(t)
	cl.RunFaults(t, func(t *testing.T, f testutil.ClusterFault) {
		if f.Quorum {
			use(t)
			return
		}
		c.t = t
		start := time.Now()
		r := c.run("get", "ippools", "--timeout", "2s")
		t.Logf("get without a quorum: exit %d after %v: %s", r.code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stderr))
		if r.code != 1 || !strings.Contains(r.stderr, "datastore unavailable") || !strings.Contains(r.stderr, eps[0]) {
			t.Errorf("want exit 1 naming the endpoints:\n%s", r)
		}
	}, func(t *testing.T, _ testutil.ClusterFault) {
		c.t = t
		r := c.mustRun("get", "ippools")
		for _, p := range pools {
			if !strings.Contains(r.stdout, p) {
				t.Errorf("pool %s missing after the fault:\n%s", p, r.stdout)
			}
		}
		c.mustRun("ipam", "check")
	})
}
