package v3

import (
	"encoding/json"
	"testing"
	"time"
)

func TestASNumberJSON(t *testing.T) {
	tests := []struct {
		in   string
		want ASNumber
		ok   bool
	}{
		{`64512`, 64512, true},
		{`0`, 0, true},
		{`4294967295`, 4294967295, true},
		{`"64512"`, 64512, true},
		{`"1.10"`, 1<<16 + 10, true},
		{`"65535.65535"`, 4294967295, true},
		{`4294967296`, 0, false},
		{`-1`, 0, false},
		{`1.5`, 0, false},
		{`"65536.1"`, 0, false},
		{`"1.2.3"`, 0, false},
		{`"abc"`, 0, false},
		{`true`, 0, false},
	}
	for _, tt := range tests {
		var a ASNumber
		err := json.Unmarshal([]byte(tt.in), &a)
		if (err == nil) != tt.ok || (tt.ok && a != tt.want) {
			t.Errorf("%s: got %d, %v", tt.in, a, err)
		}
	}
	out, _ := json.Marshal(ASNumber(64512))
	if string(out) != "64512" {
		t.Errorf("marshal: %s", out)
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"90s"`), &d); err != nil || d.Duration != 90*time.Second {
		t.Fatalf("got %v, %v", d, err)
	}
	out, _ := json.Marshal(d)
	if string(out) != `"1m30s"` {
		t.Errorf("marshal: %s", out)
	}
	for _, bad := range []string{`90`, `"soon"`, `{}`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func infraPeer(mod func(s *BGPPeerSpec)) *BGPPeer {
	p := NewBGPPeer()
	p.Name = "peer-1"
	p.Spec.PeerIP = "192.168.1.1"
	p.Spec.ASNumber = 64567
	mod(&p.Spec)
	return p
}

func TestBGPPeerValidation(t *testing.T) {
	const f = "BGPPeer.Spec."
	tests := []struct {
		name                 string
		mod                  func(s *BGPPeerSpec)
		field, value, reason string
	}{
		{"bad peer ip", func(s *BGPPeerSpec) { s.PeerIP = "192.168.1" }, f + "PeerIP", "192.168.1", "must be an IP address"},
		{"port zero", func(s *BGPPeerSpec) { s.PeerIP = "192.168.1.1:0" }, f + "PeerIP", "192.168.1.1:0", "must be an IP address"},
		{"v6 without brackets", func(s *BGPPeerSpec) { s.PeerIP = "fd00::1:179x" }, f + "PeerIP", "fd00::1:179x", "must be an IP address"},
		{"node and node selector", func(s *BGPPeerSpec) { s.Node = "node1"; s.NodeSelector = "all()" }, f + "Node", "node1",
			"Node field must be empty when NodeSelector is specified"},
		{"bad node name", func(s *BGPPeerSpec) { s.Node = "Node_1" }, f + "Node", "Node_1", "name must consist of"},
		{"peer ip and selector", func(s *BGPPeerSpec) { s.PeerSelector = "rr == 'true'" }, f + "PeerIP", "192.168.1.1",
			"PeerIP field must be empty when PeerSelector is specified"},
		{"as and selector", func(s *BGPPeerSpec) { s.PeerIP = ""; s.PeerSelector = "all()" }, f + "ASNumber", "64567",
			"ASNumber field must be empty when PeerSelector is specified"},
		{"bad peer selector", func(s *BGPPeerSpec) { s.PeerIP = ""; s.ASNumber = 0; s.PeerSelector = "rr ==" }, f + "PeerSelector", "rr ==", "invalid selector"},
		{"bad node selector", func(s *BGPPeerSpec) { s.NodeSelector = "!" }, f + "NodeSelector", "!", "invalid selector"},
		{"source address", func(s *BGPPeerSpec) { s.SourceAddress = "NodeIP" }, f + "SourceAddress", "NodeIP", "must be one of UseNodeIP, None"},
		{"password without key", func(s *BGPPeerSpec) { s.Password = &BGPPassword{SecretKeyRef: &SecretKeySelector{Name: "bgp"}} },
			f + "Password.SecretKeyRef.Key", "", "secret key must be specified"},
		{"negative restart", func(s *BGPPeerSpec) { s.MaxRestartTime = &Duration{-time.Second} }, f + "MaxRestartTime", "-1s", "must not be negative"},
		{"negative local AS count", func(s *BGPPeerSpec) { n := int32(-1); s.NumAllowedLocalASNumbers = &n }, f + "NumAllowedLocalASNumbers", "-1", "must not be negative"},
		{"bad filter name", func(s *BGPPeerSpec) { s.Filters = []string{"ok", "Not OK"} }, f + "Filters[1]", "Not OK", "name must consist of"},
		{"bad reachable by", func(s *BGPPeerSpec) { s.ReachableBy = "gateway" }, f + "ReachableBy", "gateway", "ReachableBy is invalid address"},
		{"reachable by family", func(s *BGPPeerSpec) { s.ReachableBy = "fd00::1" }, f + "ReachableBy", "fd00::1", "ReachableBy and PeerIP address family mismatched"},
		{"reachable by without peer", func(s *BGPPeerSpec) { s.PeerIP = ""; s.ReachableBy = "10.0.0.1" }, f + "ReachableBy", "10.0.0.1", "requires peerIP"},
		{"next hop mode", func(s *BGPPeerSpec) { m := NextHopMode("Other"); s.NextHopMode = &m }, f + "NextHopMode", "Other", "must be one of Auto, Self, Keep"},
		{"next hop both", func(s *BGPPeerSpec) { m := NextHopModeSelf; s.NextHopMode = &m; s.KeepOriginalNextHop = true }, f + "NextHopMode", "Self", "cannot both be set"},
		{"reverse peering", func(s *BGPPeerSpec) { r := ReversePeering("Never"); s.ReversePeering = &r }, f + "ReversePeering", "Never", "must be one of Auto, Manual"},
		{"local workload with peer ip", func(s *BGPPeerSpec) { s.LocalWorkloadSelector = "app == 'bgp'" }, f + "PeerIP", "192.168.1.1",
			"peerIP must be empty when localWorkloadSelector is set"},
		{"local workload without AS", func(s *BGPPeerSpec) { s.PeerIP = ""; s.ASNumber = 0; s.LocalWorkloadSelector = "all()" }, f + "ASNumber", "0",
			"asNumber is required when localWorkloadSelector is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			infraWantErr(t, infraPeer(tt.mod).Validate(), tt.field, tt.value, tt.reason)
		})
	}
	valid := []func(s *BGPPeerSpec){
		func(s *BGPPeerSpec) {},
		func(s *BGPPeerSpec) { s.PeerIP = "192.168.1.1:1179"; s.Node = "node1" },
		func(s *BGPPeerSpec) { s.PeerIP = "[fd00::1]:179"; s.ReachableBy = "fd00::fe" },
		func(s *BGPPeerSpec) { s.PeerIP = "fd00::1" },
		func(s *BGPPeerSpec) {
			s.PeerIP = ""
			s.ASNumber = 0
			s.PeerSelector = "route-reflector == 'true'"
			s.NodeSelector = "!has(rr)"
		},
		func(s *BGPPeerSpec) {
			s.KeepOriginalNextHop = true
			s.SourceAddress = SourceAddressNone
			s.Password = &BGPPassword{SecretKeyRef: &SecretKeySelector{Name: "bgp-secrets", Key: "rr-password"}}
			s.MaxRestartTime = &Duration{2 * time.Minute}
			ttl := uint8(1)
			s.TTLSecurity = &ttl
			s.Filters = []string{"export-only"}
			s.ReachableBy = "192.168.1.254"
		},
		func(s *BGPPeerSpec) { s.PeerIP = ""; s.LocalWorkloadSelector = "app == 'bgp'" },
	}
	for i, mod := range valid {
		if err := infraPeer(mod).Validate(); err != nil {
			t.Errorf("valid case %d: %v", i, err)
		}
	}
}

func infraBGPConfig(name string, mod func(s *BGPConfigurationSpec)) *BGPConfiguration {
	c := NewBGPConfiguration()
	c.Name = name
	mod(&c.Spec)
	return c
}

func TestBGPConfigurationDefaults(t *testing.T) {
	c := infraBGPConfig("default", func(s *BGPConfigurationSpec) {})
	c.Default()
	if a := c.Spec.ServiceLoadBalancerAggregation; a == nil || *a != ServiceLoadBalancerAggregationEnabled {
		t.Errorf("aggregation %v", a)
	}
	if c.Spec.NodeToNodeMeshEnabled != nil || c.Spec.ASNumber != nil || c.Spec.ListenPort != 0 {
		t.Errorf("unexpected defaults %+v", c.Spec)
	}
	c.Spec.ServiceLoadBalancerAggregation = ptrTo(ServiceLoadBalancerAggregationDisabled)
	c.Default()
	if *c.Spec.ServiceLoadBalancerAggregation != ServiceLoadBalancerAggregationDisabled {
		t.Error("Default overwrote a set value")
	}
}

func TestBGPConfigurationValidation(t *testing.T) {
	const f = "BGPConfiguration.Spec."
	yes := true
	as := ASNumber(64512)
	tests := []struct {
		name                 string
		cfgName              string
		mod                  func(s *BGPConfigurationSpec)
		field, value, reason string
	}{
		{"bad node name", "node.", func(s *BGPConfigurationSpec) {}, "Metadata.Name", "node.", `needs a valid node name`},
		{"mesh on node", "node.node1", func(s *BGPConfigurationSpec) { s.NodeToNodeMeshEnabled = &yes }, f + "NodeToNodeMeshEnabled", "true",
			"Cannot set nodeToNodeMeshEnabled on a non default BGP Configuration."},
		{"as on node", "node.node1", func(s *BGPConfigurationSpec) { s.ASNumber = &as }, f + "ASNumber", "64512",
			"Cannot set ASNumber on a non default BGP Configuration."},
		{"cluster ips on node", "node.node1", func(s *BGPConfigurationSpec) { s.ServiceClusterIPs = []ServiceClusterIPBlock{{CIDR: "10.96.0.0/12"}} },
			f + "ServiceClusterIPs", "[{10.96.0.0/12}]", "Cannot set ServiceClusterIPs on a non default BGP Configuration."},
		{"external ips on node", "node.node1", func(s *BGPConfigurationSpec) { s.ServiceExternalIPs = []ServiceExternalIPBlock{{CIDR: "1.2.3.0/24"}} },
			f + "ServiceExternalIPs", "[{1.2.3.0/24}]", "Cannot set ServiceExternalIPs"},
		{"lb ips on node", "node.node1", func(s *BGPConfigurationSpec) {
			s.ServiceLoadBalancerIPs = []ServiceLoadBalancerIPBlock{{CIDR: "1.2.3.0/24"}}
		},
			f + "ServiceLoadBalancerIPs", "[{1.2.3.0/24}]", "Cannot set ServiceLoadBalancerIPs"},
		{"log level", "default", func(s *BGPConfigurationSpec) { s.LogSeverityScreen = "Verbose" }, f + "LogSeverityScreen", "Verbose",
			"must be one of Debug, Info, Warning, Error, Fatal"},
		{"cluster ip cidr", "default", func(s *BGPConfigurationSpec) { s.ServiceClusterIPs = []ServiceClusterIPBlock{{CIDR: "10.96.0.1/12"}} },
			f + "ServiceClusterIPs[0].CIDR", "10.96.0.1/12", "strictly masked"},
		{"community value", "default", func(s *BGPConfigurationSpec) {
			s.Communities = []Community{{Name: "c1", Value: "100"}}
			s.PrefixAdvertisements = []PrefixAdvertisement{{CIDR: "10.0.0.0/8", Communities: []string{"c1"}}}
		}, f + "Communities[0].Value", "100", "invalid community value or format used."},
		{"community 16 bit", "default", func(s *BGPConfigurationSpec) {
			s.Communities = []Community{{Name: "c1", Value: "70000:1"}}
			s.PrefixAdvertisements = []PrefixAdvertisement{{CIDR: "10.0.0.0/8", Communities: []string{"c1"}}}
		}, f + "Communities[0].Value", "70000:1", "invalid community value, expected 16 bit value"},
		{"unused communities", "default", func(s *BGPConfigurationSpec) { s.Communities = []Community{{Name: "c1", Value: "100:1"}} },
			f + "Communities", "1", "communities are defined but not used in Spec.PrefixAdvertisement[]."},
		{"undefined community", "default", func(s *BGPConfigurationSpec) {
			s.PrefixAdvertisements = []PrefixAdvertisement{{CIDR: "10.0.0.0/8", Communities: []string{"nope"}}}
		}, f + "PrefixAdvertisements[0].Communities[0]", "nope", "community used is invalid or not defined."},
		{"advert cidr", "default", func(s *BGPConfigurationSpec) {
			s.PrefixAdvertisements = []PrefixAdvertisement{{CIDR: "10.0.0/8", Communities: []string{"100:1"}}}
		}, f + "PrefixAdvertisements[0].CIDR", "10.0.0/8", "invalid CIDR value."},
		{"bind mode", "default", func(s *BGPConfigurationSpec) { m := BindMode("All"); s.BindMode = &m }, f + "BindMode", "All", "must be one of None, NodeIP"},
		{"ignored iface", "default", func(s *BGPConfigurationSpec) { s.IgnoredInterfaces = []string{"*"} }, f + "IgnoredInterfaces[0]", "*", "invalid interface name"},
		{"aggregation", "default", func(s *BGPConfigurationSpec) {
			a := ServiceLoadBalancerAggregation("On")
			s.ServiceLoadBalancerAggregation = &a
		},
			f + "ServiceLoadBalancerAggregation", "On", "must be one of Enabled, Disabled"},
		{"local workload v4", "default", func(s *BGPConfigurationSpec) { s.LocalWorkloadPeeringIPV4 = "fd00::1" }, f + "LocalWorkloadPeeringIPV4", "fd00::1", "IPv4"},
		{"mesh password on node", "node.n1", func(s *BGPConfigurationSpec) {
			s.NodeMeshPassword = &BGPPassword{SecretKeyRef: &SecretKeySelector{Name: "s", Key: "k"}}
		}, f + "NodeMeshPassword", "", "Cannot set NodeMeshPassword on a non default BGP Configuration."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			infraWantErr(t, infraBGPConfig(tt.cfgName, tt.mod).Validate(), tt.field, tt.value, tt.reason)
		})
	}
	valid := []*BGPConfiguration{
		infraBGPConfig("default", func(s *BGPConfigurationSpec) {
			s.LogSeverityScreen = "Info"
			s.NodeToNodeMeshEnabled = &yes
			s.ASNumber = &as
			s.ListenPort = 1179
			s.ServiceClusterIPs = []ServiceClusterIPBlock{{CIDR: "10.96.0.0/12"}}
			s.ServiceExternalIPs = []ServiceExternalIPBlock{{CIDR: "fd00:96::/112"}}
			s.Communities = []Community{{Name: "big", Value: "4200000000:1:2"}}
			s.PrefixAdvertisements = []PrefixAdvertisement{{CIDR: "10.0.0.0/8", Communities: []string{"big", "65000:100"}}}
			s.NodeMeshMaxRestartTime = &Duration{time.Minute}
		}),
		infraBGPConfig("node.node1", func(s *BGPConfigurationSpec) { s.ListenPort = 179; s.LogSeverityScreen = "Debug" }),
	}
	for _, c := range valid {
		c.Default()
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
}

func infraFilter(mod func(s *BGPFilterSpec)) *BGPFilter {
	b := NewBGPFilter()
	b.Name = "filter-1"
	mod(&b.Spec)
	return b
}

func TestBGPFilterValidation(t *testing.T) {
	const f = "BGPFilter.Spec."
	i32 := func(n int32) *int32 { return &n }
	tests := []struct {
		name                 string
		mod                  func(s *BGPFilterSpec)
		field, value, reason string
	}{
		{"no action", func(s *BGPFilterSpec) { s.ExportV4 = []BGPFilterRuleV4{{CIDR: "10.0.0.0/8", MatchOperator: "In"}} },
			f + "ExportV4[0].Action", "", "must be one of Accept, Reject"},
		{"bad action", func(s *BGPFilterSpec) { s.ImportV6 = []BGPFilterRuleV6{{Action: "Drop"}} }, f + "ImportV6[0].Action", "Drop", "must be one of Accept, Reject"},
		{"v6 cidr in v4 rule", func(s *BGPFilterSpec) {
			s.ExportV4 = []BGPFilterRuleV4{{CIDR: "fd00::/64", MatchOperator: "In", Action: "Accept"}}
		},
			f + "ExportV4[0].CIDR", "fd00::/64", "must be an IPv4 CIDR"},
		{"v4 cidr in v6 rule", func(s *BGPFilterSpec) {
			s.ExportV6 = []BGPFilterRuleV6{{CIDR: "10.0.0.0/8", MatchOperator: "In", Action: "Accept"}}
		},
			f + "ExportV6[0].CIDR", "10.0.0.0/8", "must be an IPv6 CIDR"},
		{"unmasked cidr", func(s *BGPFilterSpec) {
			s.ImportV4 = []BGPFilterRuleV4{{CIDR: "10.0.0.1/8", MatchOperator: "In", Action: "Reject"}}
		},
			f + "ImportV4[0].CIDR", "10.0.0.1/8", "strictly masked"},
		{"bad operator", func(s *BGPFilterSpec) {
			s.ExportV4 = []BGPFilterRuleV4{{CIDR: "10.0.0.0/8", MatchOperator: "Within", Action: "Accept"}}
		},
			f + "ExportV4[0].MatchOperator", "Within", "must be one of Equal, NotEqual, In, NotIn"},
		{"cidr without operator", func(s *BGPFilterSpec) { s.ExportV4 = []BGPFilterRuleV4{{CIDR: "10.0.0.0/8", Action: "Accept"}} },
			f + "ExportV4[0].MatchOperator", "", "cidr and matchOperator must both be set or both be empty"},
		{"prefix length without cidr", func(s *BGPFilterSpec) {
			s.ExportV4 = []BGPFilterRuleV4{{PrefixLength: &BGPFilterPrefixLengthV4{Min: i32(24)}, Action: "Accept"}}
		}, f + "ExportV4[0].PrefixLength", "", "cidr is required when prefixLength is set"},
		{"prefix length range", func(s *BGPFilterSpec) {
			s.ExportV4 = []BGPFilterRuleV4{{CIDR: "10.0.0.0/8", MatchOperator: "In", PrefixLength: &BGPFilterPrefixLengthV4{Max: i32(33)}, Action: "Accept"}}
		}, f + "ExportV4[0].PrefixLength.Max", "33", "must be between 0 and 32"},
		{"source on import", func(s *BGPFilterSpec) { s.ImportV4 = []BGPFilterRuleV4{{Source: "RemotePeers", Action: "Accept"}} },
			f + "ImportV4[0].Source", "RemotePeers", "source is not applicable to import rules"},
		{"interface", func(s *BGPFilterSpec) { s.ExportV4 = []BGPFilterRuleV4{{Interface: "eth0 eth1", Action: "Accept"}} },
			f + "ExportV4[0].Interface", "eth0 eth1", "invalid interface name"},
		{"operations on reject", func(s *BGPFilterSpec) {
			s.ExportV4 = []BGPFilterRuleV4{{Action: "Reject", Operations: []BGPFilterOperation{{SetPriority: &BGPFilterSetPriority{Value: 10}}}}}
		}, f + "ExportV4[0].Operations", "1", "operations may only be used with action Accept"},
		{"two operations in one", func(s *BGPFilterSpec) {
			s.ExportV4 = []BGPFilterRuleV4{{Action: "Accept", Operations: []BGPFilterOperation{{
				SetPriority: &BGPFilterSetPriority{Value: 10}, AddCommunity: &BGPFilterAddCommunity{Value: "65000:1"}}}}}
		}, f + "ExportV4[0].Operations[0]", "2", "exactly one operation must be set"},
		{"community match", func(s *BGPFilterSpec) {
			s.ImportV4 = []BGPFilterRuleV4{{Action: "Accept", Communities: &BGPFilterCommunityMatch{Values: []string{"65000"}}}}
		}, f + "ImportV4[0].Communities.Values[0]", "65000", "invalid community value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			infraWantErr(t, infraFilter(tt.mod).Validate(), tt.field, tt.value, tt.reason)
		})
	}
	ok := infraFilter(func(s *BGPFilterSpec) {
		s.ExportV4 = []BGPFilterRuleV4{
			{CIDR: "10.0.0.0/8", MatchOperator: "In", PrefixLength: &BGPFilterPrefixLengthV4{Min: i32(16), Max: i32(24)}, Action: "Accept",
				Operations: []BGPFilterOperation{{AddCommunity: &BGPFilterAddCommunity{Value: "65000:100"}}, {PrependASPath: &BGPFilterPrependASPath{Prefix: []ASNumber{65000}}}}},
			{Source: "RemotePeers", Interface: "cali*", PeerType: "eBGP", Action: "Reject"},
		}
		s.ImportV6 = []BGPFilterRuleV6{{CIDR: "fd00::/8", MatchOperator: "NotIn", Action: "Reject"}}
	})
	if err := ok.Validate(); err != nil {
		t.Errorf("valid filter: %v", err)
	}
}
