package v3

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/testutil/fixtures"
)

func infraFelix(name string, mod func(s *FelixConfigurationSpec)) *FelixConfiguration {
	c := NewFelixConfiguration()
	c.Name = name
	mod(&c.Spec)
	return c
}

func TestFelixConfigurationDefaults(t *testing.T) {
	c := infraFelix("node.node1", func(s *FelixConfigurationSpec) { s.LogSeverityScreen = ptrTo("Debug") })
	c.Default()
	got, _ := json.Marshal(c.Spec)
	// What Calico v3.34 stored for the same input (fixture felixconfigurations/node.node1).
	want := `{"logSeverityScreen":"Debug","nftablesMode":"Auto","nftablesFlowTableOffload":"Disabled","bpfLogLevel":"",` +
		`"bpfConnectTimeLoadBalancing":"TCP","bpfHostNetworkedNATWithoutCTLB":"Enabled","floatingIPs":"Disabled"}`
	if !jsonEqual(t, got, []byte(want)) {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// The deprecated boolean decides both CTLB fields.
	for _, enabled := range []bool{true, false} {
		c := infraFelix("default", func(s *FelixConfigurationSpec) { s.BPFConnectTimeLoadBalancingEnabled = &enabled })
		c.Default()
		wantLB := BPFConnectTimeLBDisabled
		if enabled {
			wantLB = BPFConnectTimeLBEnabled
		}
		if *c.Spec.BPFConnectTimeLoadBalancing != wantLB || *c.Spec.BPFHostNetworkedNATWithoutCTLB != BPFHostNetworkedNATDisabled {
			t.Errorf("enabled=%v: ctlb %s nat %s", enabled, *c.Spec.BPFConnectTimeLoadBalancing, *c.Spec.BPFHostNetworkedNATWithoutCTLB)
		}
	}

	// Set values are kept.
	c = infraFelix("default", func(s *FelixConfigurationSpec) {
		s.FloatingIPs = ptrTo(FloatingIPsEnabled)
		s.NFTablesMode = ptrTo(NFTablesModeDisabled)
	})
	c.Default()
	if *c.Spec.FloatingIPs != FloatingIPsEnabled || *c.Spec.NFTablesMode != NFTablesModeDisabled {
		t.Errorf("Default overwrote set fields")
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestFelixConfigurationValidation(t *testing.T) {
	const f = "FelixConfiguration.Spec."
	tests := []struct {
		name                 string
		cfgName              string
		mod                  func(s *FelixConfigurationSpec)
		field, value, reason string
	}{
		{"bad node name", "node.Bad_Node", func(s *FelixConfigurationSpec) {}, "Metadata.Name", "node.Bad_Node", `needs a valid node name`},
		{"log level", "default", func(s *FelixConfigurationSpec) { s.LogSeverityScreen = ptrTo("Verbose") }, f + "LogSeverityScreen", "Verbose",
			"must be one of Trace, Debug, Info, Warning, Error, Fatal"},
		{"endpoint to host", "default", func(s *FelixConfigurationSpec) { s.DefaultEndpointToHostAction = ptrTo("Reject") },
			f + "DefaultEndpointToHostAction", "Reject", "must be one of Drop, Accept, Return"},
		{"iptables backend", "default", func(s *FelixConfigurationSpec) { b := IptablesBackend("xtables"); s.IptablesBackend = &b },
			f + "IptablesBackend", "xtables", "must be one of Auto, Legacy, NFT"},
		{"nftables mode", "default", func(s *FelixConfigurationSpec) { m := NFTablesMode("auto"); s.NFTablesMode = &m },
			f + "NFTablesMode", "auto", "must be one of Disabled, Enabled, Auto"},
		{"bpf log level", "default", func(s *FelixConfigurationSpec) { s.BPFLogLevel = "Trace" }, f + "BPFLogLevel", "Trace", "must be one of Off, Info, Debug"},
		{"chain insert", "default", func(s *FelixConfigurationSpec) { s.ChainInsertMode = ptrTo("Prepend") }, f + "ChainInsertMode", "Prepend", "Insert, Append"},
		{"route source", "default", func(s *FelixConfigurationSpec) { s.RouteSource = ptrTo("BGP") }, f + "RouteSource", "BGP", "WorkloadIPs, CalicoIPAM"},
		{"health port", "default", func(s *FelixConfigurationSpec) { s.HealthPort = ptrTo(70000) }, f + "HealthPort", "70000", "must be between 0 and 65535"},
		{"wireguard port", "default", func(s *FelixConfigurationSpec) { s.WireguardListeningPort = ptrTo(0) }, f + "WireguardListeningPort", "0", "must be between 1 and 65535"},
		{"go gc", "default", func(s *FelixConfigurationSpec) { s.GoGCThreshold = ptrTo(-2) }, f + "GoGCThreshold", "-2", "must be -1 or greater"},
		{"regexp", "default", func(s *FelixConfigurationSpec) { s.BPFDataIfacePattern = ptrTo("^(eth") }, f + "BPFDataIfacePattern", "^(eth", "regular expression"},
		{"feature detect", "default", func(s *FelixConfigurationSpec) { s.FeatureDetectOverride = ptrTo("SNATFullyRandom") },
			f + "FeatureDetectOverride", "SNATFullyRandom", "key=value"},
		{"nat outgoing address", "default", func(s *FelixConfigurationSpec) { s.NATOutgoingAddress = ptrTo("fd00::1") },
			f + "NATOutgoingAddress", "fd00::1", "is not a valid IPv4 address"},
		{"device route v6", "default", func(s *FelixConfigurationSpec) { s.DeviceRouteSourceAddressIPv6 = ptrTo("10.0.0.1") },
			f + "DeviceRouteSourceAddressIPv6", "10.0.0.1", "is not a valid IPv6 address"},
		{"external nodes v6", "default", func(s *FelixConfigurationSpec) { s.ExternalNodesCIDRList = &[]string{"10.0.0.0/8", "fd00::/64"} },
			f + "ExternalNodesCIDRList", "fd00::/64", "has invalid IPv6 CIDR"},
		{"external nodes bad", "default", func(s *FelixConfigurationSpec) { s.ExternalNodesCIDRList = &[]string{"10.0.0/8"} },
			f + "ExternalNodesCIDRList", "10.0.0/8", "has invalid CIDR(s)"},
		{"failsafe protocol", "default", func(s *FelixConfigurationSpec) {
			s.FailsafeInboundHostPorts = &[]ProtoPort{{Protocol: "ICMP", Port: 22}}
		},
			f + "FailsafeInboundHostPorts[0].Protocol", "ICMP", "protocol must be 'TCP' or 'UDP' or 'SCTP'."},
		{"failsafe port", "default", func(s *FelixConfigurationSpec) {
			s.FailsafeOutboundHostPorts = &[]ProtoPort{{Protocol: "UDP", Port: 0}}
		},
			f + "FailsafeOutboundHostPorts[0].Port", "0", "port must be between 1 and 65535"},
		{"failsafe net", "default", func(s *FelixConfigurationSpec) {
			s.FailsafeInboundHostPorts = &[]ProtoPort{{Port: 22, Net: "10.0.0.0/33"}}
		},
			f + "FailsafeInboundHostPorts[0].Net", "10.0.0.0/33", "invalid CIDR"},
		{"named node ports", "default", func(s *FelixConfigurationSpec) { s.KubeNodePortRanges = &[]Port{NamedPort("http")} },
			f + "KubeNodePortRanges", "http", "node port ranges should not contain named ports"},
		{"both route table fields", "default", func(s *FelixConfigurationSpec) {
			s.RouteTableRange = &RouteTableRange{Min: 1, Max: 250}
			s.RouteTableRanges = &RouteTableRanges{{Min: 1, Max: 250}}
		}, f + "RouteTableRange", "1-250", "cannot be set when `RouteTableRanges` is also set"},
		{"route table range", "default", func(s *FelixConfigurationSpec) { s.RouteTableRange = &RouteTableRange{Min: 0, Max: 250} },
			f + "RouteTableRange", "0-250", "within 1..250"},
		{"route table ranges order", "default", func(s *FelixConfigurationSpec) { s.RouteTableRanges = &RouteTableRanges{{Min: 200, Max: 100}} },
			f + "RouteTableRanges[0]", "200-100", "min must not be greater than max"},
		{"too many tables", "default", func(s *FelixConfigurationSpec) { s.RouteTableRanges = &RouteTableRanges{{Min: 1, Max: 70000}} },
			f + "RouteTableRanges", "70000", "targets too many tables"},
		{"negative duration", "default", func(s *FelixConfigurationSpec) { s.RouteRefreshInterval = &Duration{-time.Second} },
			f + "RouteRefreshInterval", "-1s", "must not be negative"},
		{"health override", "default", func(s *FelixConfigurationSpec) {
			s.HealthTimeoutOverrides = []HealthTimeoutOverride{{Name: "calc/graph", Timeout: Duration{time.Second}}}
		}, f + "HealthTimeoutOverrides[0].Name", "calc/graph", "name should match regex"},
		{"conntrack timeout", "default", func(s *FelixConfigurationSpec) {
			bad := BPFConntrackTimeout("forever")
			s.BPFConntrackTimeouts = &BPFConntrackTimeouts{TCPEstablished: &bad}
		}, f + "BPFConntrackTimeouts.TCPEstablished", "forever", "must be a duration or Auto"},
		{"wireguard iface", "default", func(s *FelixConfigurationSpec) { s.WireguardInterfaceName = ptrTo("wireguard.calico.long") },
			f + "WireguardInterfaceName", "wireguard.calico.long", "invalid interface name"},
		{"openstack region", "default", func(s *FelixConfigurationSpec) { s.OpenstackRegion = ptrTo("Region_1") },
			f + "OpenstackRegion", "Region_1", "must be a valid DNS label"},
		{"route priority", "default", func(s *FelixConfigurationSpec) { s.IPv4ElevatedRoutePriority = ptrTo(0) },
			f + "IPv4ElevatedRoutePriority", "0", "must be between 1 and 2147483646"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			infraWantErr(t, infraFelix(tt.cfgName, tt.mod).Validate(), tt.field, tt.value, tt.reason)
		})
	}

	ok := infraFelix("node.node-1", func(s *FelixConfigurationSpec) {
		s.LogSeverityScreen = ptrTo("info") // Calico's patterns are case-insensitive
		s.DefaultEndpointToHostAction = ptrTo("ACCEPT")
		s.IptablesBackend = ptrTo(IptablesBackend("nft"))
		s.IPIPEnabled = ptrTo(true)
		s.ReportingInterval = &Duration{0}
		s.FailsafeInboundHostPorts = &[]ProtoPort{{Protocol: "TCP", Port: 22}, {Protocol: "udp", Port: 68, Net: "10.0.0.0/8"}}
		s.FailsafeOutboundHostPorts = &[]ProtoPort{}
		s.KubeNodePortRanges = &[]Port{{MinPort: 30000, MaxPort: 32767}}
		s.RouteTableRanges = &RouteTableRanges{{Min: 1, Max: 250}, {Min: 1000, Max: 2000}}
		s.FeatureGates = ptrTo("BPFConnectTimeLoadBalancingWorkaround=enabled,")
		s.BPFLogFilters = &map[string]string{"all": "tcp", "eth0": "port 80"}
		s.BPFForceTrackPacketsFromIfaces = &[]string{"docker+"}
		s.HealthTimeoutOverrides = []HealthTimeoutOverride{{Name: "InternalDataplaneMainLoop", Timeout: Duration{time.Minute}}}
	})
	ok.Default()
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// Every Felix parameter of the fixture list that is datastore-settable has a
// JSON field whose name matches, case-insensitively, once Calico's renames
// (IpInIp->IPIP, *Secs suffixes and the like) are undone.
func TestFelixConfigurationCoversParams(t *testing.T) {
	data, err := fixtures.Read("felix-config-params.txt")
	if err != nil {
		t.Fatalf("reading params: %v", err)
	}
	fields := map[string]bool{}
	var all map[string]any
	full, _ := json.Marshal(infraFullFelixSpec())
	_ = json.Unmarshal(full, &all)
	for k := range all {
		fields[strings.ToLower(k)] = true
	}
	renames := map[string]string{
		"ipv6support": "ipv6support", "ipinipenabled": "ipipenabled", "ipinipmtu": "ipipmtu",
		"externalnodescidrlist": "externalnodeslist",
	}
	checked := 0
	lineRe := regexp.MustCompile(`^\s*(\w+)\s.*config:"([^"]*)"`)
	for _, line := range strings.Split(string(data), "\n") {
		g := lineRe.FindStringSubmatch(line)
		if g == nil {
			continue
		}
		if parts := strings.Split(g[2], ";"); len(parts) > 2 && strings.Contains(parts[2], "local") {
			continue // local-only parameters are not in the resource
		}
		checked++
		name := strings.ToLower(g[1])
		if r, ok := renames[name]; ok {
			name = r
		}
		for _, suffix := range []string{"secs", "millis"} {
			if trimmed, ok := strings.CutSuffix(name, suffix); ok && !fields[name] {
				name = trimmed
			}
		}
		switch name {
		case "ipv4vxlantunneladdr", "vxlantunnelmacaddr", "ipiniptunneladdr",
			"clusterguid", "clustertype", "calicoversion", "variant",
			"debugcpuprofilepath", "debugpanicafter", "debugsimulatedatarace":
			continue // from Node/ClusterInformation, or debug-only in Felix
		}
		if !fields[name] {
			t.Errorf("felix parameter %s has no FelixConfiguration field", g[1])
		}
	}
	if checked < 100 {
		t.Errorf("only %d parameters checked", checked)
	}
}

// infraFullFelixSpec returns a spec with every pointer field set, so that
// marshalling lists every JSON name.
func infraFullFelixSpec() *FelixConfigurationSpec {
	s := &FelixConfigurationSpec{}
	infraFillPointers(s)
	return s
}

// infraFillPointers sets every nil pointer, slice and map field of the
// struct v points to.
func infraFillPointers(v any) {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		switch f.Kind() {
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Map:
			f.Set(reflect.MakeMap(f.Type()))
		}
	}
}

// The fields of Calico's newest FelixConfigurationSpec decode strictly,
// validate and round-trip.
func TestFelixConfigurationNewestFields(t *testing.T) {
	const spec = `{"bpfIPFragTimeout":"30s","bpfIPFragmentReassemblyEnabled":true,"bpfJITHardening":"Strict",` +
		`"bpfOverlayHostSourceIP":"HostAddress","istioAmbientMode":"Enabled","istioDSCPMark":23,` +
		`"localSubnetL2Reachability":"PodsAndLoadBalancers","localSubnetL2ReachabilityRefreshInterval":"2m0s",` +
		`"logActionRateLimit":"10/second","logActionRateLimitBurst":5,"nftablesFlowTableDataIfacePattern":"^eth",` +
		`"nodeSelector":"has(edge)","prometheusMetricsCAFile":"/ca","prometheusMetricsCertFile":"/c",` +
		`"prometheusMetricsKeyFile":"/k","prometheusMetricsClientAuth":"RequireAndVerifyClientCert"}`
	r, err := DecodeJSON([]byte(`{"apiVersion":"projectcalico.org/v3","kind":"FelixConfiguration","metadata":{"name":"edge"},"spec":` + spec + `}`))
	if err != nil {
		t.Fatal(err)
	}
	fc := r.(*FelixConfiguration)
	if err := fc.Validate(); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	b, _ := json.Marshal(fc.Spec)
	_ = json.Unmarshal(b, &got)
	var want map[string]any
	_ = json.Unmarshal([]byte(spec), &want)
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("%s round-trips to %v, want %v", k, got[k], v)
		}
	}
	fc.Spec.LogActionRateLimit = ptrTo("lots")
	fc.Spec.PrometheusMetricsClientAuth = ptrTo("Sometimes")
	if err := fc.Validate(); err == nil || !strings.Contains(err.Error(), "LogActionRateLimit") || !strings.Contains(err.Error(), "PrometheusMetricsClientAuth") {
		t.Errorf("bad values accepted: %v", err)
	}
}
