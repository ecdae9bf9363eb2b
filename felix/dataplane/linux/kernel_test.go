package linux

import (
	"fmt"
	"io"
	"os"
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
