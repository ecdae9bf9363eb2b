package linux

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/testutil"
)

// Two workloads with an allow-all profile reach each other; a deny policy
// on one blocks it, and applying it rewrites only the chains that changed.
func TestKernelAllowThenDenyWritesOnlyChangedChains(t *testing.T) {
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) { testAllowThenDeny(t, backend) })
	}
}

func testAllowThenDeny(t *testing.T, backend string) {
	h := newHost(t, dpapi.Config{IptablesBackend: backend})
	w1 := addWorkload(t, h.ns, "calia1", "10.65.0.2", "")
	w2 := addWorkload(t, h.ns, "calib2", "10.65.0.3", "")
	ep1, ep2 := w1.endpoint("allow-all"), w2.endpoint("allow-all")
	s := baseState(ep1, ep2)
	must(t, h.dp.Apply(t.Context(), s))

	w1.listen(t, 8080)
	w2.listen(t, 8080)
	if h.dp.Backend() != backend {
		t.Fatalf("backend %q, want %q", h.dp.Backend(), backend)
	}
	if !eventuallyOK(5*time.Second, func() bool { return w1.canConnect(t, w2.ip4, 8080) && w2.canConnect(t, w1.ip4, 8080) }) {
		t.Fatalf("workloads cannot reach each other with an allow-all profile\n%s", h.diag(t))
	}

	// Deny ingress to w2 in the default tier.
	deny := dpapi.PolicyID{Tier: "default", Name: "deny-w2"}
	s2 := baseState(ep1, w2.endpoint("allow-all"))
	s2.Policies[deny] = &dpapi.Policy{Inbound: []dpapi.Rule{{Action: dpapi.Deny}}}
	s2.Workloads[ep2.ID].Tiers = []dpapi.TierPolicies{{Name: "default", Ingress: []dpapi.PolicyID{deny}}}
	h.rec.Reset()
	must(t, h.dp.Apply(t.Context(), s2))
	if w1.canConnect(t, w2.ip4, 8080) {
		t.Fatal("connected to a workload whose ingress policy denies everything")
	}

	inputs := restoreInputs(h.rec)
	if len(inputs) != 1 {
		t.Fatalf("want one iptables-restore for the policy change, got %d: %q", len(inputs), inputs)
	}
	var declared []string
	for _, l := range strings.Split(inputs[0], "\n") {
		if strings.HasPrefix(l, ":") {
			declared = append(declared, strings.Fields(l[1:])[0])
		}
	}
	want := []string{"cali-pi-default/deny-w2", "cali-tw-calib2"}
	if strings.Join(declared, " ") != strings.Join(want, " ") {
		t.Fatalf("delta rewrote chains %v, want %v; input:\n%s", declared, want, inputs[0])
	}

	// And back: the policy chain is deleted, connectivity returns.
	h.rec.Reset()
	must(t, h.dp.Apply(t.Context(), baseState(ep1, w2.endpoint("allow-all"))))
	if !w1.canConnect(t, w2.ip4, 8080) {
		t.Fatal("cannot connect after the deny policy was removed")
	}
	if sv := h.save(t, 4); strings.Contains(sv, "deny-w2") {
		t.Fatalf("policy chain left behind:\n%s", sv)
	}
}

// A workload with neither profile nor policy is denied.
func TestKernelWorkloadWithoutProfileDenied(t *testing.T) {
	h := newHost(t, dpapi.Config{})
	w1 := addWorkload(t, h.ns, "calia1", "10.65.0.2", "")
	w2 := addWorkload(t, h.ns, "calib2", "10.65.0.3", "")
	w3 := addWorkload(t, h.ns, "calic3", "10.65.0.4", "")
	must(t, h.dp.Apply(t.Context(), baseState(w1.endpoint("allow-all"), w2.endpoint(), w3.endpoint("allow-all"))))
	w2.listen(t, 8080)
	w3.listen(t, 8080)
	eventually(t, 5*time.Second, "connectivity to a workload with a profile", func() bool { return w1.canConnect(t, w3.ip4, 8080) })
	if w1.canConnect(t, w2.ip4, 8080) {
		t.Fatal("reached a workload with no profile and no policy")
	}
}

// The default runner starts its commands inside the namespace: they see
// its network namespace, not the test's.
func TestDefaultRunnerRunsInTheNamespace(t *testing.T) {
	ns := testutil.NewNetNS(t)
	var st syscall.Stat_t // /run/netns/<name> is the namespace's file
	must(t, syscall.Stat("/run/netns/"+ns.Name, &st))
	want := fmt.Sprintf("net:[%d]", st.Ino)
	mine, err := os.Readlink("/proc/self/ns/net")
	must(t, err)
	for _, stream := range []bool{false, true} {
		r := DefaultRunner(ns.Name)
		var out []byte
		if stream {
			out, err = r.Stream(t.Context(), func(io.Writer) error { return nil }, "readlink", "/proc/self/ns/net")
		} else {
			out, err = r.Run(t.Context(), nil, "readlink", "/proc/self/ns/net")
		}
		must(t, err)
		if got := strings.TrimSpace(string(out)); got != want || got == mine {
			t.Fatalf("command ran in %s, want %s (the test is in %s)", got, want, mine)
		}
	}
	if _, err := DefaultRunner("no-such-ns-x").Run(t.Context(), nil, "true"); err == nil {
		t.Fatal("a command ran for a namespace that does not exist")
	}
}

// A large IP set update split over two `ipset restore`s leaves the kernel's
// sets as one restore does; a small change after it is one restore.
func TestKernelLargeIPSetUpdateOverTwoRestores(t *testing.T) {
	s := baseState()
	for i, n := range []int{6000, 5000, 40, 3} {
		set := &dpapi.IPSet{ID: fmt.Sprintf("s:large%d", i), Type: dpapi.IPSetNet}
		for j := range n {
			set.Members = append(set.Members, fmt.Sprintf("10.%d.%d.%d", 70+i, j/250, j%250+1))
		}
		s.IPSets[set.ID] = set
	}
	one, two := newHost(t, dpapi.Config{}), newHost(t, dpapi.Config{}, WithIPSetRestores(2))
	ipsetSave := func(h *host) []string {
		out, err := h.ns.Output("ipset", "save")
		must(t, err)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for i, l := range lines {
			if f := strings.Fields(l); f[0] == "create" {
				lines[i] = strings.Join(f[:5], " ") // without the sizes the kernel picks
			}
		}
		slices.Sort(lines)
		return lines
	}
	restores := func(h *host) (n int) {
		for _, c := range h.rec.Calls() {
			if c.Name == "ipset" && c.Args[0] == "restore" {
				n++
			}
		}
		return n
	}
	for _, h := range []*host{one, two} {
		must(t, h.dp.Apply(t.Context(), s))
	}
	if n := restores(two); n != 2 {
		t.Fatalf("%d ipset restores, want 2", n)
	}
	if a, b := ipsetSave(one), ipsetSave(two); !slices.Equal(a, b) || len(a) < 11043 {
		t.Fatalf("ipset save differs (%d lines from one restore, %d from two)", len(a), len(b))
	}

	s2 := *s
	s2.IPSets = maps.Clone(s.IPSets)
	grown := *s.IPSets["s:large0"]
	grown.Members = append(slices.Clone(grown.Members), "10.70.99.1")
	s2.IPSets["s:large0"] = &grown
	two.rec.Reset()
	must(t, two.dp.Apply(t.Context(), &s2))
	if n := restores(two); n != 1 {
		t.Fatalf("%d ipset restores for one member, want 1", n)
	}
	if out, err := two.ns.Output("ipset", "save"); err != nil || !strings.Contains(out, " 10.70.99.1\n") {
		t.Fatalf("added member missing (err %v)", err)
	}
}
