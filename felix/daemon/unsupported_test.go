package daemon

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
)

// warned reports whether felix logged a warning that param is not supported.
func (h *harness) warned(param string) int {
	n := 0
	for _, e := range h.logs.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["param"] == param && strings.Contains(e.Message, "not supported") {
			n++
		}
	}
	return n
}

// A FelixConfiguration field felix does not act on is warned about at
// start and again on every change, and counted in felix_config_unsupported;
// changing only such fields does not restart felix.
func TestUnsupportedParamsWarnedAndCounted(t *testing.T) {
	be := memory.New()
	h := start(t, be, "FELIX_WIREGUARDMTU=1400")
	fc := v3.NewFelixConfiguration()
	fc.Name = "default"
	on := true
	fc.Spec.WireguardEnabled = &on
	h.create(fc)
	addrs := <-h.addrs
	waitFor(t, "the metric", func() bool {
		_, body := get(t, addrs[1], "/metrics")
		return strings.Contains(body, `felix_config_unsupported{param="spec.wireguardEnabled",source="FelixConfiguration default"} 1`) &&
			strings.Contains(body, `felix_config_unsupported{param="WireguardMTU",source="environment"} 1`)
	})
	if h.warned("spec.wireguardEnabled") == 0 || h.warned("WireguardMTU") == 0 {
		t.Errorf("no warnings: %v", h.logs.AllEntries())
	}

	// Change: WireGuard off (quiet), BPF on (refused).
	off := false
	fc.Spec.WireguardEnabled, fc.Spec.BPFEnabled = &off, &on
	h.create(fc)
	waitFor(t, "the metric after the change", func() bool {
		_, body := get(t, addrs[1], "/metrics")
		return strings.Contains(body, `felix_config_unsupported{param="spec.bpfEnabled",source="FelixConfiguration default"} 1`) &&
			!strings.Contains(body, `param="spec.wireguardEnabled"`)
	})
	if h.warned("spec.bpfEnabled") == 0 {
		t.Error("the change's unsupported field was not warned about")
	}
	if h.warned("WireguardMTU") < 2 {
		t.Error("the environment's unsupported parameter was not warned about again on the change")
	}
	select {
	case err := <-h.done:
		t.Fatalf("a change of unsupported fields ended felix: %v", err)
	default:
	}
}

// Staged policies are stored and listed but never enforced: felix does
// not even watch them.
func TestStagedPoliciesNeverEnforced(t *testing.T) {
	be := memory.New()
	h := start(t, be)
	h.create(wep("a", "h1", "10.0.0.1/32"))
	staged := v3.NewStagedGlobalNetworkPolicy()
	staged.Name = "deny-all"
	staged.Spec.Selector = "all()"
	staged.Spec.Ingress = []v3.Rule{{Action: v3.Deny}}
	h.create(staged)
	snp := v3.NewStagedNetworkPolicy()
	snp.Name, snp.Namespace = "deny-ns", "ns"
	snp.Spec.Selector = "all()"
	snp.Spec.Egress = []v3.Rule{{Action: v3.Deny}}
	h.create(snp)
	real := v3.NewGlobalNetworkPolicy()
	real.Name = "marker"
	real.Spec.Selector = "all()"
	real.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	h.create(real)
	s := h.waitState("the real policy", func(s *dpapi.State) bool { return len(s.Policies) > 0 })
	if len(s.Policies) != 1 {
		t.Errorf("policies %v: only the enforced one may be active", s.Policies)
	}
	for id := range s.Policies {
		if id.Name != "marker" {
			t.Errorf("staged policy %v enforced", id)
		}
	}
	for _, p := range syncPrefixes() {
		if strings.Contains(strings.ToLower(fmt.Sprint(p)), "staged") {
			t.Errorf("felix watches %v", p)
		}
	}
}
