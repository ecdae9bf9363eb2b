package config

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/felixparams"
	"github.com/calico-etcd/calico/testutil"
)

// calicoParams are Calico's felix parameter names: the measured fixture
// (an older Calico) and the list of Calico at HEAD (testdata).
func calicoParams(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		if name != "" && !seen[strings.ToLower(name)] {
			seen[strings.ToLower(name)] = true
			out = append(out, name)
		}
	}
	re := regexp.MustCompile(`(?m)^\s*(\w+)\s.*config:"`)
	for _, m := range re.FindAllStringSubmatch(string(testutil.Fixture(t, "felix-config-params.txt")), -1) {
		add(m[1])
	}
	head, err := os.ReadFile("testdata/calico-params.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(head), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			add(strings.Fields(line)[0])
		}
	}
	if len(out) < 200 {
		t.Fatalf("only %d Calico parameters read", len(out))
	}
	return out
}

// Every Calico parameter is either acted on (a Config field) or listed
// as unsupported, never both, and the unsupported list names nothing
// Calico does not have.
func TestEveryCalicoParamActedOnOrRefused(t *testing.T) {
	names := calicoParams(t)
	known := map[string]bool{}
	for _, n := range names {
		known[strings.ToLower(n)] = true
		_, acted := params[strings.ToLower(n)]
		_, refused := felixparams.ByParam(n)
		switch {
		case acted && refused:
			t.Errorf("%s is both acted on and listed as unsupported", n)
		case !acted && !refused:
			t.Errorf("%s is neither acted on nor listed as unsupported", n)
		}
	}
	for _, u := range felixparams.List() {
		if u.Param != "" && !known[strings.ToLower(u.Param)] {
			t.Errorf("unsupported list names %s, which is no Calico parameter", u.Param)
		}
		if u.LocalOnly {
			if p, ok := params[strings.ToLower(u.Param)]; !ok || !p.local {
				t.Errorf("%s is listed as local-only but felix has no local parameter of that name", u.Param)
			}
		}
	}
	for key, p := range params {
		if !known[key] {
			t.Errorf("felix parameter %s is not one of Calico's", p.name)
		}
	}
}

// Every FelixConfiguration field sets a parameter felix acts on (from the
// datastore), or is listed (unsupported or local-only), never both; and a
// field of a parameter felix acts on maps to that parameter's name.
func TestEveryFelixConfigurationFieldActedOnOrRefused(t *testing.T) {
	ft := reflect.TypeFor[v3.FelixConfigurationSpec]()
	n := 0
	for i := range ft.NumField() {
		field, _, _ := strings.Cut(ft.Field(i).Tag.Get("json"), ",")
		if field == "" || field == "-" {
			continue
		}
		n++
		_, listed := felixparams.ByField(field)
		p, acted := params[strings.ToLower(felixparams.ParamOf(field))]
		acted = acted && !p.local
		switch {
		case acted && listed:
			t.Errorf("spec.%s is both acted on and listed", field)
		case !acted && !listed:
			t.Errorf("spec.%s is neither acted on nor listed as unsupported", field)
		}
		if acted && !strings.EqualFold(felixparams.FieldOf(p.name), field) {
			t.Errorf("spec.%s maps to %s, whose field is %q", field, p.name, felixparams.FieldOf(p.name))
		}
	}
	if n < 190 {
		t.Errorf("only %d FelixConfiguration fields", n)
	}
}

func refusalNames(rs []Refusal) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name()+"="+r.Value+"@"+r.Source.String())
	}
	return out
}

// Unsupported parameters set with a value felix does not have are
// refused, from each source; Calico's defaults and empty values are quiet;
// unknown names are warned about; acted-on parameters are not refused.
func TestRefusals(t *testing.T) {
	l, hook := newLoader(t, "[global]\nBPFEnabled = true\nUsageReportingEnabled = false\nTyphaAddr = typha:5473\n",
		"FELIX_FELIXHOSTNAME=n1", "FELIX_WIREGUARDENABLED=true", "FELIX_XDPENABLED=true", "FELIX_NOSUCHTHING=1",
		"FELIX_CHAININSERTMODE=append")
	global := v3.NewFelixConfiguration()
	global.Name = "default"
	global.Default() // Calico's defaults: floatingIPs, nftablesMode, bpfConnectTimeLoadBalancing ...
	global.Spec.WireguardEnabled = ptr(true)
	global.Spec.BPFLogLevel = ""
	global.Spec.BPFKubeProxyMinSyncPeriod = &v3.Duration{Duration: time.Second} // the default, as a duration
	global.Spec.NodeSelector = ptr("all()")
	global.Spec.BPFJITHardening = ptr("Strict")
	global.Spec.PrometheusMetricsCAFile = ptr("/tmp/ca.pem")
	global.Spec.IptablesFilterAllowAction = ptr("Return")
	node := v3.NewFelixConfiguration()
	node.Spec.WireguardMTU = ptr(1400)
	node.Spec.WireguardEnabled = ptr(false) // quiet
	l.SetDatastore(global, node)
	c := l.Config()
	got := refusalNames(c.Refusals())
	want := []string{
		"WireguardEnabled=true@environment",
		"BPFEnabled=true@config file", "TyphaAddr=typha:5473@config file",
		"spec.wireguardMTU=1400@FelixConfiguration node",
		"spec.bpfJITHardening=Strict@FelixConfiguration default",
		"spec.nodeSelector=all()@FelixConfiguration default", "spec.prometheusMetricsCAFile=/tmp/ca.pem@FelixConfiguration default",
		"spec.wireguardEnabled=true@FelixConfiguration default",
	}
	if !slices.Equal(got, want) {
		t.Errorf("refusals\n got %v\nwant %v", got, want)
	}
	if c.IptablesFilterAllowAction != "RETURN" || c.ChainInsertMode != "append" || c.PrometheusMetricsCAFile != "" {
		t.Errorf("acted-on values: allow %q mode %q CA %q", c.IptablesFilterAllowAction, c.ChainInsertMode, c.PrometheusMetricsCAFile)
	}
	unknown := false
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Message == "Ignoring unknown parameter" && e.Data["param"] == "NOSUCHTHING" {
			unknown = true
		}
	}
	if !unknown {
		t.Error("an unknown FELIX_ parameter was not warned about")
	}
	for _, r := range c.Refusals() {
		if !strings.Contains(r.String(), "not supported") && !r.LocalOnly {
			t.Errorf("refusal text %q does not say it is not supported", r.String())
		}
	}
}

// A Calico manifest's FelixConfiguration round-trips through the loader:
// every field decodes, and only fields felix does not act on are refused.
func TestRefusalsFromJSON(t *testing.T) {
	l, _ := newLoader(t, "", "FELIX_FELIXHOSTNAME=n1")
	fc := v3.NewFelixConfiguration()
	if err := json.Unmarshal([]byte(`{"metadata":{"name":"default"},"spec":{
		"bpfEnabled": false, "bpfLogLevel": "", "logSeverityScreen": "Info", "reportingInterval": "0s",
		"vxlanEnabled": true, "floatingIPs": "Enabled", "routeTableRanges": [{"min": 1, "max": 100}],
		"natPortRange": "32768:65535", "externalNodesList": ["10.9.0.0/16"], "istioAmbientMode": "Enabled",
		"logActionRateLimit": "10/second"}}`), fc); err != nil {
		t.Fatal(err)
	}
	l.SetDatastore(fc, nil)
	c := l.Config()
	if got := refusalNames(c.Refusals()); !slices.Equal(got, []string{"spec.istioAmbientMode=Enabled@FelixConfiguration default"}) {
		t.Errorf("refusals %v", got)
	}
	if c.LogActionRateLimit != "10/second" || c.LogActionRateLimitBurst != 5 {
		t.Errorf("log rate limit %q burst %d", c.LogActionRateLimit, c.LogActionRateLimitBurst)
	}
	if c.VXLANEnabled == nil || !*c.VXLANEnabled || c.FloatingIPs != "Enabled" || c.RouteTableRanges != "1-100" ||
		c.NATPortRange != "32768:65535" || len(c.ExternalNodesCIDRList) != 1 {
		t.Errorf("acted-on fields not applied: vxlan %v fip %q tables %q nat %q ext %v",
			c.VXLANEnabled, c.FloatingIPs, c.RouteTableRanges, c.NATPortRange, c.ExternalNodesCIDRList)
	}
}

// "none" is a parameter's zero value, as in Calico, except where empty is invalid.
func TestNoneIsZero(t *testing.T) {
	l, _ := newLoader(t, "", "FELIX_FELIXHOSTNAME=n1", "FELIX_INTERFACEEXCLUDE=none", "FELIX_LOGSEVERITYSYS=none",
		"FELIX_INTERFACEPREFIX=none", "FELIX_REMOVEEXTERNALROUTES=none")
	c := l.Config()
	if c.InterfaceExclude != "" || c.LogSeveritySys != "" || c.InterfacePrefix != "cali" || c.RemoveExternalRoutes {
		t.Errorf("exclude %q sys %q prefix %q remove %v", c.InterfaceExclude, c.LogSeveritySys, c.InterfacePrefix, c.RemoveExternalRoutes)
	}
}

// Only a real change of a restart-needing parameter needs a restart:
// unsupported fields, live parameters and the same value from another
// source do not.
func TestRestartOnlyOnRealChange(t *testing.T) {
	l, _ := newLoader(t, "[global]\nChainInsertMode = append\n", "FELIX_FELIXHOSTNAME=n1")
	before := l.Config()
	fc := v3.NewFelixConfiguration()
	fc.Spec.ChainInsertMode = ptr("Append")           // same value, from the datastore
	fc.Spec.WireguardEnabled = ptr(true)              // unsupported
	fc.Spec.LogSeverityFile = ptr("Debug")            // live
	fc.Spec.FloatingIPs = ptr(v3.FloatingIPsDisabled) // the default
	l.SetDatastore(fc, nil)
	if got := RestartNeeded(before, l.Config()); len(got) != 0 {
		t.Errorf("restart needed for %v", got)
	}
	fc.Spec.FloatingIPs = ptr(v3.FloatingIPsEnabled)
	fc.Spec.VXLANEnabled = ptr(false)
	l.SetDatastore(fc, nil)
	if got := RestartNeeded(before, l.Config()); !slices.Equal(got, []string{"FloatingIPs", "VXLANEnabled"}) {
		t.Errorf("restart needed for %v, want FloatingIPs and VXLANEnabled", got)
	}
}

func TestDataplaneConfigOfNewParams(t *testing.T) {
	l, _ := newLoader(t, "[global]\nChainInsertMode = Append\nIptablesFilterDenyAction = reject\nNATPortRange = 32768-65535\n"+
		"InterfaceExclude = kube-ipvs0,/^veth.*$/\nRouteTableRanges = 10-20,30-40\nRemoveExternalRoutes = false\nIPForwarding = Disabled\n",
		"FELIX_FELIXHOSTNAME=n1", "FELIX_WORKLOADSOURCESPOOFING=Any", "FELIX_DEVICEROUTESOURCEADDRESSIPV6=fd00::1")
	d := l.Config().DataplaneConfig()
	if d.ChainInsertMode != "append" || d.FilterDenyAction != "REJECT" || d.NATPortMin != 32768 || d.NATPortMax != 65535 ||
		len(d.InterfaceExclude) != 2 || !d.InterfaceExclude[1].MatchString("veth12") || d.InterfaceExclude[0].MatchString("kube-ipvs00") ||
		len(d.RouteTableRanges) != 2 || d.RouteTableRanges[1].Min != 30 || !d.KeepExternalRoutes || !d.IPForwardingDisabled ||
		!d.WorkloadSourceSpoofing || d.DeviceRouteSourceAddressV6 != "fd00::1" || d.FloatingIPs {
		t.Errorf("dataplane config %+v", d)
	}
	if rs := (&Config{}).routeTableRanges(); len(rs) != 1 || rs[0].Min != 1 || rs[0].Max != 250 {
		t.Errorf("default route table ranges %v", rs)
	}
}
