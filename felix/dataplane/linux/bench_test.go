package linux

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dataplane/runner"
	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/testutil"
)

const (
	benchEndpoints = 100
	benchPolicies  = 500
	benchSets      = 100
	benchRemoteIPs = 5000
)

// benchState: 100 local endpoints, 500 policies (5 ingress + 5 egress per
// endpoint, each used by exactly one endpoint in each direction), 100
// selector sets holding 5,000 remote endpoint IPs, 10 namespace profiles.
func benchState() *dpapi.State {
	s := baseState()
	for i := 0; i < benchSets; i++ {
		set := &dpapi.IPSet{ID: fmt.Sprintf("s:bench%04d", i), Type: dpapi.IPSetNet}
		for j := 0; j < benchRemoteIPs/benchSets; j++ {
			n := i*(benchRemoteIPs/benchSets) + j
			set.Members = append(set.Members, fmt.Sprintf("10.70.%d.%d", n/250, n%250+1))
		}
		s.IPSets[set.ID] = set
	}
	for i := 0; i < benchPolicies; i++ {
		s.Policies[benchPolicyID(i)] = benchPolicy(i, 80)
	}
	for i := 0; i < 10; i++ {
		s.Profiles[fmt.Sprintf("kns.ns%d", i)] = allowAllProfile()
	}
	for i := 0; i < benchEndpoints; i++ {
		iface := fmt.Sprintf("calib%010d", i)
		w := &dpapi.Workload{
			ID:       dpapi.WorkloadID(fmt.Sprintf("ns%d/pod%d", i%10, i)),
			Iface:    iface,
			IPv4:     []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.65.%d.%d/32", i/250, i%250+2))},
			Profiles: []string{fmt.Sprintf("kns.ns%d", i%10)},
		}
		tier := dpapi.TierPolicies{Name: "default"}
		for k := 0; k < 5; k++ {
			tier.Ingress = append(tier.Ingress, benchPolicyID(i*5+k))
			tier.Egress = append(tier.Egress, benchPolicyID((i*5+k+250)%benchPolicies))
		}
		w.Tiers = []dpapi.TierPolicies{tier}
		s.Workloads[w.ID] = w
	}
	return s
}

func benchPolicyID(i int) dpapi.PolicyID {
	return dpapi.PolicyID{Tier: "default", Namespace: fmt.Sprintf("ns%d", i%10), Name: fmt.Sprintf("policy-%d", i)}
}

func benchPolicy(i int, port uint16) *dpapi.Policy {
	set := fmt.Sprintf("s:bench%04d", i%benchSets)
	other := fmt.Sprintf("s:bench%04d", (i+1)%benchSets)
	return &dpapi.Policy{
		Inbound: []dpapi.Rule{
			{Action: dpapi.Allow, Protocol: "tcp", SrcIPSets: []string{set}, DstPorts: []dpapi.PortRange{{Min: port, Max: port}, {Min: 8000, Max: 8100}}},
			{Action: dpapi.Allow, Protocol: "udp", SrcIPSets: []string{other}, DstPorts: []dpapi.PortRange{{Min: 53, Max: 53}}},
			{Action: dpapi.Deny, SrcNets: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		},
		Outbound: []dpapi.Rule{
			{Action: dpapi.Allow, Protocol: "tcp", DstIPSets: []string{set}},
			{Action: dpapi.Allow, Protocol: "udp", DstPorts: []dpapi.PortRange{{Min: 53, Max: 53}}},
		},
	}
}

// benchHost makes a host namespace with the benchmark's workload
// interfaces (veth pairs whose peers stay in the namespace).
func benchHost(b *testing.B) *testutil.NetNS { return benchHostT(b) }

func benchHostT(b testing.TB) *testutil.NetNS {
	b.Helper()
	return benchHostIfaces(b, benchEndpoints, func(i int) string { return fmt.Sprintf("calib%010d", i) })
}

// benchHostIfaces makes a host namespace with n workload interfaces named
// iface(0..n-1).
func benchHostIfaces(b testing.TB, n int, iface func(int) string) *testutil.NetNS {
	b.Helper()
	ns := newHostNS(b)
	var batch strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&batch, "link add %s type veth peer name p%d\nlink set %s up\nlink set p%d up\n", iface(i), i, iface(i), i)
	}
	r := DefaultRunner(ns.Name)
	if _, err := r.Run(context.Background(), []byte(batch.String()), "ip", "-batch", "-"); err != nil {
		b.Fatal(err)
	}
	return ns
}

// BenchmarkColdStart: the first Apply of a large State on a fresh host,
// against a bare iptables-restore plus ipset restore of the very input the
// dataplane wrote, run on another fresh namespace.
func BenchmarkColdStart(b *testing.B) {
	testutil.RequireRoot(b)
	s := benchState()
	var applyTotal, bareTotal time.Duration
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		ns := benchHost(b)
		rec := &runner.Recorder{Next: DefaultRunner(ns.Name)}
		dp, err := New(dpapi.Config{Hostname: "host1", Log: testLog(b)}, WithNetNS(ns.Name), WithRunner(rec))
		must(b, err)
		runtime.GC()
		b.StartTimer()

		start := time.Now()
		must(b, dp.Apply(b.Context(), s))
		applyTotal += time.Since(start)

		b.StopTimer()
		var iptIn, ipsetIn []byte
		var iptCmd string
		for _, c := range rec.Calls() {
			switch {
			case c.Name == "ipset" && c.Args[0] == "restore":
				ipsetIn = append(ipsetIn, c.Stdin...)
			case strings.HasSuffix(c.Name, "-restore"):
				iptIn, iptCmd = append(iptIn, c.Stdin...), c.Name
			}
		}
		if n == 0 {
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
			b.ReportMetric(float64(strings.Count(string(iptIn), "\n-A ")), "rules")
			b.ReportMetric(float64(strings.Count(string(ipsetIn), "\nadd ")), "set-members")
		}
		bare := benchHost(b)
		br := DefaultRunner(bare.Name)
		start = time.Now()
		if _, err := br.Run(context.Background(), ipsetIn, "ipset", "restore"); err != nil {
			b.Fatal(err)
		}
		if _, err := br.Run(context.Background(), iptIn, iptCmd, "--noflush"); err != nil {
			b.Fatal(err)
		}
		bareTotal += time.Since(start)
		_ = dp.Close()
		ns.Delete()
		bare.Delete()
		b.StartTimer()
	}
	applyMS := float64(applyTotal.Milliseconds()) / float64(b.N)
	bareMS := float64(bareTotal.Milliseconds()) / float64(b.N)
	b.ReportMetric(applyMS, "apply-ms")
	b.ReportMetric(bareMS, "bare-restore-ms")
	b.ReportMetric(applyMS/bareMS, "ratio")
}

// BenchmarkPolicyChange: after a cold start, change one policy's rules
// 100 times; each Apply returns once the change is in the kernel.
// Reports the p50 and p99 latency of those Applies.
func BenchmarkPolicyChange(b *testing.B) {
	testutil.RequireRoot(b)
	s := benchState()
	ns := benchHost(b)
	dp, err := New(dpapi.Config{Hostname: "host1", Log: testLog(b)}, WithNetNS(ns.Name))
	must(b, err)
	defer dp.Close()
	must(b, dp.Apply(b.Context(), s))
	const changes = 100
	var lat []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := 0; i < changes; i++ {
			// A new State each time, as calc hands over: one policy differs.
			next := *s
			next.Policies = make(map[dpapi.PolicyID]*dpapi.Policy, len(s.Policies))
			for k, v := range s.Policies {
				next.Policies[k] = v
			}
			id := benchPolicyID((n*changes + i) % benchPolicies)
			next.Policies[id] = benchPolicy(i, uint16(1000+n*changes+i))
			start := time.Now()
			must(b, dp.Apply(b.Context(), &next))
			lat = append(lat, time.Since(start))
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
