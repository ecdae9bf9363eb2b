package fvtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
)

// The cluster every scenario starts from: two namespaces (team a and b,
// known to selectors through the kns.<ns> profiles), four workloads on
// this host, one of them with no profile at all.
//
//	w1 ns-a app=web role=frontend     10.65.0.1   profiles kns.ns-a, default-allow
//	w2 ns-a app=db  port http-alt=8080 10.65.0.2   profiles kns.ns-a, default-allow
//	w3 ns-b app=web tier=x             10.65.0.3   profiles kns.ns-b, default-allow
//	w4 ns-a app=lonely                 10.65.0.4   no profiles
type cluster struct {
	w1, w2, w3, w4 *wl
}

func apply(t *testing.T, rs ...v3.Resource) {
	t.Helper()
	for _, r := range rs {
		if _, err := cli.Apply(ctx(t), v3.Clone(r)); err != nil {
			t.Fatalf("applying %s %s: %v", r.GetTypeMeta().Kind, r.GetObjectMeta().Name, err)
		}
	}
}

func remove(t *testing.T, rs ...v3.Resource) {
	t.Helper()
	for _, r := range rs {
		m := r.GetObjectMeta()
		kind := r.GetTypeMeta().Kind
		if _, err := cli.Delete(ctx(t), kind, m.Namespace, m.Name, ""); err != nil {
			t.Fatalf("deleting %s %s: %v", kind, m.Name, err)
		}
	}
}

func workloadEndpoint(w *wl, ns string, labels map[string]string, profiles ...string) *v3.WorkloadEndpoint {
	e := v3.NewWorkloadEndpoint()
	e.Namespace, e.Labels = ns, labels
	e.Spec = v3.WorkloadEndpointSpec{
		Orchestrator: "k8s", Node: nodeName, Pod: w.name, Endpoint: "eth0",
		InterfaceName: w.iface, IPNetworks: []string{w.ip.String() + "/32"}, Profiles: profiles,
	}
	return e
}

func nsProfile(ns, team string) *v3.Profile {
	p := v3.NewProfile()
	p.Name = "kns." + ns
	p.Spec.LabelsToApply = map[string]string{"pcns.team": team}
	return p
}

func gnp(name string, order float64, sel string, ingress, egress []v3.Rule) *v3.GlobalNetworkPolicy {
	p := v3.NewGlobalNetworkPolicy()
	p.Name = name
	p.Spec = v3.GlobalNetworkPolicySpec{Order: &order, Selector: sel, Ingress: ingress, Egress: egress}
	return p
}

func proto(s string) *v3.Protocol { p := v3.ProtocolFromString(s); return &p }

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func setupCluster(t *testing.T) *cluster {
	c := &cluster{
		w1: addWorkload(t, "w1", "10.65.0.1"),
		w2: addWorkload(t, "w2", "10.65.0.2"),
		w3: addWorkload(t, "w3", "10.65.0.3"),
		w4: addWorkload(t, "w4", "10.65.0.4"),
	}
	pool := v3.NewIPPool()
	pool.Name = "pool1"
	pool.Spec.CIDR = "10.65.0.0/16"
	node := v3.NewNode()
	node.Name = nodeName
	node.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "192.168.90.1/24"}
	w2 := workloadEndpoint(c.w2, "ns-a", lbl("app", "db"), "kns.ns-a", "projectcalico-default-allow")
	w2.Spec.Ports = []v3.WorkloadEndpointPort{{Name: "http-alt", Protocol: v3.ProtocolFromString("TCP"), Port: 8080}}
	apply(t, pool, node, nsProfile("ns-a", "a"), nsProfile("ns-b", "b"),
		workloadEndpoint(c.w1, "ns-a", lbl("app", "web", "role", "frontend"), "kns.ns-a", "projectcalico-default-allow"),
		w2,
		workloadEndpoint(c.w3, "ns-b", lbl("app", "web", "tier", "x"), "kns.ns-b", "projectcalico-default-allow"),
		workloadEndpoint(c.w4, "ns-a", lbl("app", "lonely")),
	)
	return c
}

// TestFelix runs the acceptance scenarios of issue 6 in order against one
// felix process (restarted by the restart scenario).
func TestFelix(t *testing.T) {
	start := time.Now()
	c := setupCluster(t)
	f := startFelix(t)
	defer func() {
		if f.running() {
			f.stop(t)
		}
	}()
	all := []*wl{c.w1, c.w2, c.w3}

	t.Run("allow-all profile connects workloads; no profile is denied", func(t *testing.T) {
		var ps []probe
		for _, a := range all {
			for _, b := range all {
				if a != b {
					ps = append(ps, tcpP(a, b, 80, true), icmpP(a, b, true))
				}
			}
			ps = append(ps, tcpP(a, c.w4, 80, false), tcpP(c.w4, a, 80, false), icmpP(c.w4, a, false))
		}
		expect(t, f, ps...)
	})

	t.Run("status, health and metrics", func(t *testing.T) {
		raw, err := etcdSrv.NewClient()
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		p, _ := model.FelixStatusKey{Hostname: nodeName}.Path()
		eventually(t, 10*time.Second, "felix status key with a lease", func() error {
			resp, err := raw.Get(context.Background(), p)
			if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 || !strings.Contains(string(resp.Kvs[0].Value), `"uptime"`) {
				return errorf("status key %s: %v %v", p, resp, err)
			}
			return nil
		})
		if code := f.get("/liveness"); code != 200 {
			t.Errorf("liveness = %d", code)
		}
		m, err := f.metrics()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"felix_active_local_endpoints 4", "felix_calc_graph_update_time_seconds", "felix_resync_state 3",
			"felix_cluster_num_workload_endpoints 4", "felix_calc_graph_updates_processed"} {
			if !strings.Contains(m, name) {
				t.Errorf("metrics lack %q", name)
			}
		}
	})

	for _, sc := range scenarios(c) {
		t.Run(sc.name, func(t *testing.T) {
			runScenario(t, f, sc)
			// Back to the baseline before the next scenario.
			expect(t, f, tcpP(c.w1, c.w2, 80, true), tcpP(c.w3, c.w2, 80, true), tcpP(c.w2, c.w1, 80, true), tcpP(c.w1, c.w3, 80, true))
		})
	}

	t.Run("host endpoint deny-all keeps failsafe port open", func(t *testing.T) { testHostEndpoint(t, f) })

	t.Run("felix restart keeps established connections", func(t *testing.T) { f = testRestart(t, c, f) })

	t.Run("etcd outage leaves the dataplane; etcd back resyncs", func(t *testing.T) { testEtcdOutage(t, c, f) })

	t.Run("datastore config change needing a restart exits 129", func(t *testing.T) { testConfigRestart(t, c, f) })

	t.Logf("functional tests took %v", time.Since(start).Round(time.Second))
	reviewLogs(t)
}

// reviewLogs fails on a panic in any felix log and lists the distinct
// warning and error messages (an etcd outage is expected to cause some).
func reviewLogs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(workDir, "felix-*.log"))
	seen := map[string]int{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "panic:") || strings.Contains(string(b), "DATA RACE") {
			t.Errorf("felix log %s has a panic or race:\n%s", f, b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "level=warn") || strings.Contains(l, "level=error") {
				if i := strings.Index(l, "msg="); i >= 0 {
					msg := l[i:]
					if j := strings.Index(msg[5:], `"`); j >= 0 {
						msg = msg[:j+6]
					}
					seen[msg]++
				}
			}
		}
	}
	for msg, n := range seen {
		t.Logf("felix logged %dx: %s", n, msg)
	}
}
