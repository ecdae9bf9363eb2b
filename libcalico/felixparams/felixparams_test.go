package felixparams

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/testutil/fixtures"
)

// Every entry names a FelixConfiguration field that exists (or none), no
// parameter or field is listed twice, and every entry says why.
func TestListIsConsistent(t *testing.T) {
	params, fields := map[string]bool{}, map[string]bool{}
	for _, e := range List() {
		if e.Reason == "" {
			t.Errorf("%s: no reason", e.Param)
		}
		if e.Param != "" {
			if params[strings.ToLower(e.Param)] {
				t.Errorf("%s listed twice", e.Param)
			}
			params[strings.ToLower(e.Param)] = true
		}
		if e.Field != "" {
			if _, ok := specFields[strings.ToLower(e.Field)]; !ok {
				t.Errorf("%s: field %s is no FelixConfiguration field", e.Param, e.Field)
			}
			if fields[strings.ToLower(e.Field)] {
				t.Errorf("field %s listed twice", e.Field)
			}
			fields[strings.ToLower(e.Field)] = true
		}
	}
	for p, f := range fieldRenames {
		if FieldOf(p) != f || !strings.EqualFold(ParamOf(f), p) {
			t.Errorf("rename %s <-> %s does not round-trip", p, f)
		}
	}
}

func TestQuietValues(t *testing.T) {
	wg, _ := ByParam("wireguardenabled")
	bpfSync, _ := ByParam("BPFKubeProxyMinSyncPeriod")
	usage, _ := ByParam("UsageReportingEnabled")
	ca, _ := ByField("prometheusMetricsCAFile")
	for _, x := range []struct {
		e     Unsupported
		value string
		quiet bool
	}{
		{wg, "false", true}, {wg, "FALSE", true}, {wg, "", true}, {wg, "true", false},
		{bpfSync, "1s", true}, {bpfSync, "1", true}, {bpfSync, "1000ms", true}, {bpfSync, "2s", false},
		{usage, "true", true}, {usage, "false", true},
		{ca, "", true}, {ca, "/etc/ca.pem", false},
	} {
		if got := x.e.IsQuiet(x.value); got != x.quiet {
			t.Errorf("%s%s = %q: quiet %v, want %v", x.e.Param, x.e.Field, x.value, got, x.quiet)
		}
	}
	if _, ok := ByParam("PrometheusMetricsCAFile"); ok {
		t.Error("a local-only parameter felix acts on is found by ByParam")
	}
	if _, ok := Check("ChainInsertMode", "append"); ok {
		t.Error("a parameter felix acts on was refused")
	}
	if r, ok := Check("BPFEnabled", "true"); !ok || r.Name() != "BPFEnabled" || !strings.Contains(r.String(), "eBPF") {
		t.Errorf("BPFEnabled=true: %v %v", r, ok)
	}
}

func TestRefusalsOfSpec(t *testing.T) {
	fc := v3.NewFelixConfiguration()
	fc.Default()
	fc.Spec.WireguardEnabled = ptr(true)
	fc.Spec.BPFLogLevel = "off"
	fc.Spec.FlowLogsFlushInterval = &v3.Duration{Duration: 5 * time.Minute} // the default
	fc.Spec.ChainInsertMode = ptr("Append")
	fc.Spec.IstioDSCPMark = &v3.DSCP{}
	var names []string
	for _, r := range Refusals(&fc.Spec) {
		names = append(names, r.Name()+"="+r.Value)
	}
	if strings.Join(names, " ") != "spec.istioDSCPMark=0 spec.wireguardEnabled=true" {
		t.Errorf("refusals %v", names)
	}
	if Refusals(nil) != nil {
		t.Error("refusals of nil")
	}
}

func ptr[T any](v T) *T { return &v }

// The FelixConfigurations a real Calico wrote (defaults and all) ask for
// nothing felix does not do: no refusals.
func TestCalicoWrittenConfigIsQuiet(t *testing.T) {
	data, err := fixtures.Read("calico-etcd-state.json")
	if err != nil {
		t.Fatal(err)
	}
	var kvs []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &kvs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, kv := range kvs {
		if !strings.Contains(kv.Key, "/felixconfigurations/") {
			continue
		}
		r, err := v3.DecodeJSON(kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		n++
		if rs := Refusals(&r.(*v3.FelixConfiguration).Spec); len(rs) != 0 {
			t.Errorf("%s: refusals %v", kv.Key, rs)
		}
	}
	if n == 0 {
		t.Fatal("no FelixConfiguration in the fixture")
	}
}
