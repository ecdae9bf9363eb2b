package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func newLoader(t *testing.T, ini string, env ...string) (*Loader, *test.Hook) {
	t.Helper()
	logger, hook := test.NewNullLogger()
	opts := Options{NodenameFile: filepath.Join(t.TempDir(), "nodename"), ConfigFile: filepath.Join(t.TempDir(), "felix.cfg")}
	if err := os.WriteFile(opts.ConfigFile, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := NewLoader(opts, env, logrus.NewEntry(logger))
	if err != nil {
		t.Fatal(err)
	}
	return l, hook
}

func TestDefaults(t *testing.T) {
	l, hook := newLoader(t, "", "NODENAME=n1")
	c := l.Config()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.FelixHostname != "n1" || c.InterfacePrefix != "cali" || c.IptablesBackend != "auto" ||
		c.IptablesRefreshInterval != 90*time.Second || c.IpsetsRefreshInterval != 10*time.Second ||
		c.IptablesMarkMask != 0xffff0000 || !c.Ipv6Support || c.HealthPort != 9099 || c.HealthHost != "localhost" ||
		c.PrometheusMetricsPort != 9091 || c.ReportingIntervalSecs != 30*time.Second || c.ReportingTTLSecs != 90*time.Second ||
		c.DefaultEndpointToHostAction != "DROP" || c.VXLANVNI != 4096 || c.VXLANPort != 4789 {
		t.Errorf("defaults = %+v", c)
	}
	if len(c.FailsafeInboundHostPorts) != 9 || c.FailsafeInboundHostPorts[0] != (dpapi.ProtoPort{Protocol: "tcp", Port: 22}) {
		t.Errorf("failsafe inbound = %v", c.FailsafeInboundHostPorts)
	}
	if len(hook.AllEntries()) != 0 {
		t.Errorf("defaults logged: %v", hook.AllEntries())
	}
	if c.SourceOf("InterfacePrefix") != SourceDefault {
		t.Error("source of a default is not SourceDefault")
	}
}

func TestPrecedence(t *testing.T) {
	ini := "[global]\nIptablesRefreshInterval = 20\nRouteRefreshInterval=21\nLogPrefix = file\n[other]\nLogSeverityScreen = DEBUG\n"
	l, _ := newLoader(t, ini, "FELIX_FELIXHOSTNAME=n1", "felix_iptablesrefreshinterval=10", "NODENAME=ignored")
	global := v3.NewFelixConfiguration()
	global.Name = "default"
	global.Spec.IptablesRefreshInterval = &v3.Duration{Duration: 40 * time.Second}
	global.Spec.RouteRefreshInterval = &v3.Duration{Duration: 41 * time.Second}
	global.Spec.IpsetsRefreshInterval = &v3.Duration{Duration: 42 * time.Second}
	global.Spec.InterfaceRefreshInterval = &v3.Duration{Duration: 43 * time.Second}
	node := v3.NewFelixConfiguration()
	node.Spec.IpsetsRefreshInterval = &v3.Duration{Duration: 32 * time.Second}
	node.Spec.LogPrefix = ptr("node")
	l.SetDatastore(global, node)
	c := l.Config()
	for _, x := range []struct {
		got, want time.Duration
		src       Source
		name      string
	}{
		{c.IptablesRefreshInterval, 10 * time.Second, SourceEnv, "IptablesRefreshInterval"},
		{c.RouteRefreshInterval, 21 * time.Second, SourceFile, "RouteRefreshInterval"},
		{c.IpsetsRefreshInterval, 32 * time.Second, SourceDatastoreNode, "IpsetsRefreshInterval"},
		{c.InterfaceRefreshInterval, 43 * time.Second, SourceDatastoreGlobal, "InterfaceRefreshInterval"},
	} {
		if x.got != x.want || c.SourceOf(x.name) != x.src {
			t.Errorf("%s = %v from %v, want %v from %v", x.name, x.got, c.SourceOf(x.name), x.want, x.src)
		}
	}
	if c.LogPrefix != "file" || c.LogSeverityScreen != "INFO" || c.FelixHostname != "n1" {
		t.Errorf("LogPrefix %q LogSeverityScreen %q (other sections ignored) host %q", c.LogPrefix, c.LogSeverityScreen, c.FelixHostname)
	}
}

func TestInvalidValuesFallBack(t *testing.T) {
	l, hook := newLoader(t, "[global]\nIptablesBackend = nft\nHealthPort = 9098\n",
		"FELIX_IPTABLESBACKEND=bogus", "FELIX_HEALTHPORT=70000", "FELIX_FAILSAFEINBOUNDHOSTPORTS=tcp:22,quic:1",
		"FELIX_IPTABLESMARKMASK=0", "FELIX_IPV6SUPPORT=maybe", "FELIX_FELIXHOSTNAME=n1", "FELIX_DEFAULTENDPOINTTOHOSTACTION=accept")
	c := l.Config()
	if c.IptablesBackend != "nft" || c.HealthPort != 9098 {
		t.Errorf("backend %q port %d: want the file's values", c.IptablesBackend, c.HealthPort)
	}
	if len(c.FailsafeInboundHostPorts) != 9 || c.IptablesMarkMask != 0xffff0000 || !c.Ipv6Support {
		t.Errorf("invalid env values must leave defaults: %v %x %v", c.FailsafeInboundHostPorts, c.IptablesMarkMask, c.Ipv6Support)
	}
	if c.DefaultEndpointToHostAction != "ACCEPT" || c.DataplaneConfig().DefaultEndpointToHostAction != "Accept" {
		t.Errorf("oneof is case-insensitive: %q", c.DefaultEndpointToHostAction)
	}
	var logged []string
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			logged = append(logged, e.Data["param"].(string)+"="+e.Data["value"].(string)+"@"+e.Data["source"].(string))
		}
	}
	slices.Sort(logged)
	want := []string{"FailsafeInboundHostPorts=tcp:22,quic:1@environment", "HealthPort=70000@environment",
		"IptablesBackend=bogus@environment", "IptablesMarkMask=0@environment", "Ipv6Support=maybe@environment"}
	if !slices.Equal(logged, want) {
		t.Errorf("logged %v\nwant %v", logged, want)
	}
}

func TestDatastoreCannotSetLocalParams(t *testing.T) {
	l, hook := newLoader(t, "", "FELIX_FELIXHOSTNAME=n1")
	fc := v3.NewFelixConfiguration()
	fc.Spec.IptablesBackend = ptr(v3.IptablesBackendNFTables)
	fc.Spec.FailsafeInboundHostPorts = &[]v3.ProtoPort{{Protocol: "TCP", Port: 2222}, {Protocol: "UDP", Port: 53, Net: "10.0.0.0/8"}}
	fc.Spec.IptablesMarkMask = ptr(uint32(0xff000000))
	fc.Spec.IPIPEnabled = ptr(true)
	fc.Spec.ReportingInterval = &v3.Duration{Duration: 5 * time.Second}
	l.SetDatastore(fc, nil)
	l.set(SourceDatastoreGlobal, "EtcdEndpoints", "http://evil:2379")
	c := l.Config()
	if c.IptablesBackend != "nft" || c.IptablesMarkMask != 0xff000000 || c.IpInIpEnabled == nil || !*c.IpInIpEnabled || c.ReportingIntervalSecs != 5*time.Second {
		t.Errorf("datastore values not applied: %+v", c)
	}
	want := []dpapi.ProtoPort{{Protocol: "tcp", Port: 2222}, {Protocol: "udp", Port: 53, Net: "10.0.0.0/8"}}
	if !slices.Equal(c.FailsafeInboundHostPorts, want) {
		t.Errorf("failsafe = %v, want %v", c.FailsafeInboundHostPorts, want)
	}
	if len(c.EtcdEndpoints) != 0 {
		t.Error("datastore set a local-only parameter")
	}
	found := false
	for _, e := range hook.AllEntries() {
		found = found || strings.Contains(e.Message, "only be set locally")
	}
	if !found {
		t.Error("local-only parameter from the datastore not logged")
	}
}

func TestRestartNeeded(t *testing.T) {
	l, _ := newLoader(t, "", "FELIX_FELIXHOSTNAME=n1")
	before := l.Config()
	fc := v3.NewFelixConfiguration()
	fc.Spec.LogSeverityScreen = ptr("Debug")
	l.SetDatastore(fc, nil)
	if got := RestartNeeded(before, l.Config()); len(got) != 0 {
		t.Errorf("log level change needs no restart, got %v", got)
	}
	fc.Spec.InterfacePrefix = ptr("tap")
	fc.Spec.IpsetsRefreshInterval = &v3.Duration{Duration: 10 * time.Second} // same as default
	l.SetDatastore(fc, nil)
	if got := RestartNeeded(before, l.Config()); !slices.Equal(got, []string{"InterfacePrefix"}) {
		t.Errorf("restart needed for %v, want [InterfacePrefix]", got)
	}
}

func TestHostnameFallbacks(t *testing.T) {
	l, _ := newLoader(t, "")
	if err := os.WriteFile(l.nodenameFile, []byte("from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := l.Config().FelixHostname; got != "from-file" {
		t.Errorf("hostname = %q, want from-file", got)
	}
	l2, _ := newLoader(t, "")
	h, _ := os.Hostname()
	h = strings.ToLower(h)
	if got := l2.Config().FelixHostname; got != h {
		t.Errorf("hostname = %q, want %q", got, h)
	}
}

func TestEtcdConfig(t *testing.T) {
	l, _ := newLoader(t, "", "FELIX_FELIXHOSTNAME=n", "ETCD_ENDPOINTS=http://10.0.0.1:2379,http://10.0.0.2:2379")
	ec, err := l.Config().EtcdConfig(0)
	if err != nil || !slices.Equal(ec.Endpoints, []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}) {
		t.Errorf("from ETCD_ENDPOINTS: %v %v", ec.Endpoints, err)
	}
	l, _ = newLoader(t, "", "FELIX_FELIXHOSTNAME=n", "ETCD_ENDPOINTS=http://10.0.0.1:2379", "FELIX_ETCDENDPOINTS=http://x:1")
	if ec, _ := l.Config().EtcdConfig(0); !slices.Equal(ec.Endpoints, []string{"http://x:1"}) {
		t.Errorf("FELIX_ETCDENDPOINTS must win: %v", ec.Endpoints)
	}
	l, _ = newLoader(t, "", "FELIX_FELIXHOSTNAME=n", "FELIX_ETCDADDR=h:1234", "FELIX_ETCDSCHEME=https")
	if ec, _ := l.Config().EtcdConfig(0); !slices.Equal(ec.Endpoints, []string{"https://h:1234"}) {
		t.Errorf("from EtcdAddr: %v", ec.Endpoints)
	}
}

func TestDataplaneConfig(t *testing.T) {
	l, _ := newLoader(t, "[global]\nInterfacePrefix = cali,tap\nDefaultEndpointToHostAction = RETURN\n", "FELIX_FELIXHOSTNAME=n1")
	d := l.Config().DataplaneConfig()
	if d.Hostname != "n1" || !slices.Equal(d.InterfacePrefixes, []string{"cali", "tap"}) || d.DefaultEndpointToHostAction != "Return" ||
		d.IptablesBackend != "auto" || d.RouteProtocol != 3 || d.IPSetsRefreshInterval != 10*time.Second {
		t.Errorf("dataplane config = %+v", d)
	}
}

func TestPortListRoundTrip(t *testing.T) {
	for _, s := range []string{"tcp:22,udp:68", "none", "tcp:10.0.0.0/8:22", "udp:[fd00::/64]:53"} {
		ps, err := parsePortList(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := formatPortList(ps); got != s {
			t.Errorf("%s round-trips to %s", s, got)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// The health and metrics hosts default to loopback, from every source: an
// empty value is rejected (logged) instead of meaning every address, and
// the datastore cannot point the metrics TLS files elsewhere.
// issue 23 item 6
func TestMetricsAndHealthHostsDefaultToLoopback(t *testing.T) {
	l, hook := newLoader(t, "[global]\nPrometheusMetricsEnabled = true\nPrometheusMetricsHost =\n", "FELIX_FELIXHOSTNAME=n1", "FELIX_HEALTHHOST=")
	node := v3.NewFelixConfiguration()
	node.Spec.PrometheusMetricsHost = ptr("")
	l.SetDatastore(nil, node)
	l.set(SourceDatastoreGlobal, "PrometheusMetricsCAFile", "/tmp/evil-ca.pem")
	c := l.Config()
	if c.PrometheusMetricsHost != "localhost" || c.HealthHost != "localhost" || c.PrometheusMetricsCAFile != "" {
		t.Errorf("metrics host %q, health host %q, CA %q: want localhost, localhost and none",
			c.PrometheusMetricsHost, c.HealthHost, c.PrometheusMetricsCAFile)
	}
	warned := map[string]int{}
	for _, e := range hook.AllEntries() {
		if p, ok := e.Data["param"].(string); ok && e.Level == logrus.WarnLevel {
			warned[p]++
		}
	}
	if warned["PrometheusMetricsHost"] != 2 || warned["HealthHost"] != 1 {
		t.Errorf("warnings %v: want the empty hosts logged", warned)
	}
}

// The metrics TLS files come as a set: a certificate needs its key, and a
// CA (client certificates) needs both.
// issue 23 item 6
func TestMetricsTLSFilesValidated(t *testing.T) {
	for _, x := range []struct {
		env []string
		ok  bool
	}{
		{nil, true},
		{[]string{"FELIX_PROMETHEUSMETRICSCERTFILE=/c", "FELIX_PROMETHEUSMETRICSKEYFILE=/k"}, true},
		{[]string{"FELIX_PROMETHEUSMETRICSCERTFILE=/c", "FELIX_PROMETHEUSMETRICSKEYFILE=/k", "FELIX_PROMETHEUSMETRICSCAFILE=/ca"}, true},
		{[]string{"FELIX_PROMETHEUSMETRICSCERTFILE=/c"}, false},
		{[]string{"FELIX_PROMETHEUSMETRICSKEYFILE=/k"}, false},
		{[]string{"FELIX_PROMETHEUSMETRICSCAFILE=/ca"}, false},
	} {
		l, _ := newLoader(t, "", append([]string{"FELIX_FELIXHOSTNAME=n1"}, x.env...)...)
		if err := l.Config().Validate(); (err == nil) != x.ok {
			t.Errorf("%v: Validate() = %v", x.env, err)
		}
	}
}
