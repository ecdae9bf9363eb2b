package v3

import (
	"fmt"
	"strings"
)

var (
	healthOverrideNameRe = lazyRegexp(`^[a-zA-Z0-9_ -]+$`)
	conntrackTimeoutRe   = lazyRegexp(`^(([0-9]*(\.[0-9]*)?(ms|s|h|m|us)+)+|Auto)$`)
	logRateRe            = lazyRegexp(`^[1-9]\d{0,3}/(?:second|minute|hour|day)$`)
)

// Log levels Felix accepts, case-insensitively.
var felixLogLevels = []string{"Trace", "Debug", "Info", "Warning", "Error", "Fatal"}

// routeTableRangeMaxTables caps the tables routeTableRanges may designate.
const routeTableRangeMaxTables = 0xffff

// Validate checks the name form and every set field.
func (c *FelixConfiguration) Validate() error {
	v := newValidator()
	v.meta(KindFelixConfiguration, &c.ObjectMeta, false)
	validateConfigName(v, "FelixConfiguration", c.Name)
	s := &c.Spec
	validateFelixEnums(v, s)
	validateFelixNumbers(v, s)
	validateFelixStrings(v, s)
	validateFelixNets(v, s)
	validateFelixDurations(v, s)
	validateFelixRouteTables(v, s)
	validateFelixFailsafes(v, "FelixConfiguration.Spec.FailsafeInboundHostPorts", s.FailsafeInboundHostPorts)
	validateFelixFailsafes(v, "FelixConfiguration.Spec.FailsafeOutboundHostPorts", s.FailsafeOutboundHostPorts)
	return v.err()
}

// felixEnum is one enumerated field; fold makes the match case-insensitive
// where Calico's CRD pattern is (?i).
type felixEnum struct {
	name    string
	val     *string
	fold    bool
	allowed []string
}

func strPtr[T ~string](p *T) *string {
	if p == nil {
		return nil
	}
	s := string(*p)
	return &s
}

func validateFelixEnums(v *validator, s *FelixConfigurationSpec) {
	onOff := []string{"Enabled", "Disabled"}
	acceptReturn := []string{"Accept", "Return"}
	dropReject := []string{"Drop", "Reject"}
	enums := []felixEnum{
		{"ChainInsertMode", s.ChainInsertMode, true, []string{"Insert", "Append"}},
		{"DefaultEndpointToHostAction", s.DefaultEndpointToHostAction, true, []string{"Drop", "Accept", "Return"}},
		{"IptablesFilterAllowAction", s.IptablesFilterAllowAction, true, acceptReturn},
		{"IptablesMangleAllowAction", s.IptablesMangleAllowAction, true, acceptReturn},
		{"IptablesFilterDenyAction", s.IptablesFilterDenyAction, true, dropReject},
		{"NftablesFilterAllowAction", s.NftablesFilterAllowAction, true, acceptReturn},
		{"NftablesMangleAllowAction", s.NftablesMangleAllowAction, true, acceptReturn},
		{"NftablesFilterDenyAction", s.NftablesFilterDenyAction, true, dropReject},
		{"LogSeverityFile", s.LogSeverityFile, true, felixLogLevels},
		{"LogSeverityScreen", s.LogSeverityScreen, true, felixLogLevels},
		{"LogSeveritySys", s.LogSeveritySys, true, felixLogLevels},
		{"IptablesBackend", strPtr(s.IptablesBackend), true, []string{"Auto", "Legacy", "NFT"}},
		{"NFTablesMode", strPtr(s.NFTablesMode), false, []string{"Disabled", "Enabled", "Auto"}},
		{"NFTablesFlowTableOffload", s.NFTablesFlowTableOffload, false, []string{"Disabled", "Enabled", "All"}},
		{"BPFLogLevel", &s.BPFLogLevel, true, []string{"Off", "Info", "Debug"}},
		{"BPFConntrackLogLevel", s.BPFConntrackLogLevel, false, []string{"Off", "Debug"}},
		{"BPFConntrackCleanupMode", strPtr(s.BPFConntrackCleanupMode), false, []string{"Auto", "Userspace", "BPFProgram"}},
		{"BPFConnectTimeLoadBalancing", strPtr(s.BPFConnectTimeLoadBalancing), false, []string{"TCP", "Enabled", "Disabled"}},
		{"BPFHostNetworkedNATWithoutCTLB", strPtr(s.BPFHostNetworkedNATWithoutCTLB), false, onOff},
		{"BPFExternalServiceMode", s.BPFExternalServiceMode, true, []string{"Tunnel", "DSR"}},
		{"BPFMapSizeConntrackScaling", s.BPFMapSizeConntrackScaling, true, []string{"Disabled", "DoubleIfFull"}},
		{"BPFEnforceRPF", s.BPFEnforceRPF, true, []string{"Disabled", "Strict", "Loose"}},
		{"BPFRedirectToPeer", s.BPFRedirectToPeer, false, []string{"Enabled", "Disabled", "L2Only"}},
		{"BPFProfiling", s.BPFProfiling, false, onOff},
		{"BPFAttachType", s.BPFAttachType, false, []string{"Netkit", "TCX", "TC"}},
		{"FlowLogsPolicyEvaluationMode", strPtr(s.FlowLogsPolicyEvaluationMode), false, []string{"None", "Continuous"}},
		{"FlowLogsLocalReporter", s.FlowLogsLocalReporter, false, []string{"Disabled", "Enabled"}},
		{"RouteSource", s.RouteSource, true, []string{"WorkloadIPs", "CalicoIPAM"}},
		{"AWSSrcDstCheck", strPtr(s.AWSSrcDstCheck), false, []string{"DoNothing", "Enable", "Disable"}},
		{"ServiceLoopPrevention", s.ServiceLoopPrevention, true, []string{"Drop", "Reject", "Disabled"}},
		{"WorkloadSourceSpoofing", s.WorkloadSourceSpoofing, true, []string{"Disabled", "Any"}},
		{"FloatingIPs", strPtr(s.FloatingIPs), false, onOff},
		{"WindowsManageFirewallRules", strPtr(s.WindowsManageFirewallRules), false, onOff},
		{"NATOutgoingExclusions", strPtr(s.NATOutgoingExclusions), false, []string{"IPPoolsOnly", "IPPoolsAndHostIPs"}},
		{"ProgramClusterRoutes", s.ProgramClusterRoutes, false, []string{"Enabled", "Disabled", "EnabledIPIPOnly", "EnabledNoEncapOnly"}},
		{"IPForwarding", s.IPForwarding, false, onOff},
		{"BPFOverlayHostSourceIP", s.BPFOverlayHostSourceIP, false, []string{"TunnelAddress", "HostAddress"}},
		{"BPFJITHardening", s.BPFJITHardening, false, []string{"Auto", "Strict"}},
		{"IstioAmbientMode", s.IstioAmbientMode, false, onOff},
		{"LocalSubnetL2Reachability", s.LocalSubnetL2Reachability, false, []string{"Disabled", "PodsAndLoadBalancers"}},
		{"PrometheusMetricsClientAuth", s.PrometheusMetricsClientAuth, false,
			[]string{"RequireAndVerifyClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "NoClientCert"}},
	}
	for _, e := range enums {
		if e.val == nil || *e.val == "" {
			continue // unset; Calico's patterns also accept ""
		}
		field := "FelixConfiguration.Spec." + e.name
		if e.fold {
			requireFoldedOneOf(v, field, *e.val, e.allowed...)
		} else {
			v.oneOf(field, *e.val, e.allowed...)
		}
	}
}

func validateFelixNumbers(v *validator, s *FelixConfigurationSpec) {
	const f = "FelixConfiguration.Spec."
	ranges := []struct {
		name   string
		n      *int
		lo, hi int
	}{
		{"HealthPort", s.HealthPort, 0, 65535},
		{"PrometheusMetricsPort", s.PrometheusMetricsPort, 0, 65535},
		{"MetadataPort", s.MetadataPort, 0, 65535},
		{"DebugPort", s.DebugPort, 0, 65535},
		{"VXLANPort", s.VXLANPort, 1, 65535},
		{"BPFKubeProxyHealthzPort", s.BPFKubeProxyHealthzPort, 0, 65535},
		{"BPFExtToServiceConnmark", s.BPFExtToServiceConnmark, 0, 4294967295},
		{"WireguardListeningPort", s.WireguardListeningPort, 1, 65535},
		{"WireguardListeningPortV6", s.WireguardListeningPortV6, 1, 65535},
		{"WireguardRoutingRulePriority", s.WireguardRoutingRulePriority, 1, 32765},
		{"IPv4NormalRoutePriority", s.IPv4NormalRoutePriority, 1, 2147483646},
		{"IPv4ElevatedRoutePriority", s.IPv4ElevatedRoutePriority, 1, 2147483646},
		{"IPv6NormalRoutePriority", s.IPv6NormalRoutePriority, 1, 2147483646},
		{"IPv6ElevatedRoutePriority", s.IPv6ElevatedRoutePriority, 1, 2147483646},
		{"BPFMaglevMaxEndpointsPerService", s.BPFMaglevMaxEndpointsPerService, 1, 3000},
		{"BPFMaglevMaxServices", s.BPFMaglevMaxServices, 1, 3000},
		{"BPFMapSizeConntrackCleanupQueue", s.BPFMapSizeConntrackCleanupQueue, 1, 1 << 31},
		{"DeviceRouteProtocol", s.DeviceRouteProtocol, 0, 255},
		{"LogActionRateLimitBurst", s.LogActionRateLimitBurst, 0, 9999},
	}
	for _, r := range ranges {
		requireIntRange(v, f+r.name, r.n, r.lo, r.hi)
	}
	for _, m := range []struct {
		name string
		n    *int
	}{{"GoGCThreshold", s.GoGCThreshold}, {"GoMemoryLimitMB", s.GoMemoryLimitMB}, {"GoMaxProcs", s.GoMaxProcs}} {
		if m.n != nil && *m.n < -1 {
			v.add(f+m.name, *m.n, "must be -1 or greater")
		}
	}
	if s.KubeNodePortRanges != nil {
		for _, p := range *s.KubeNodePortRanges {
			if p.PortName != "" {
				v.add(f+"KubeNodePortRanges", p.PortName, "node port ranges should not contain named ports")
			}
		}
	}
	for _, p := range []struct {
		name string
		p    *Port
	}{{"NATPortRange", s.NATPortRange}, {"BPFPSNATPorts", s.BPFPSNATPorts}} {
		if p.p != nil && p.p.PortName != "" {
			v.add(f+p.name, p.p.PortName, "must be a port or port range, not a named port")
		}
	}
}

func validateFelixStrings(v *validator, s *FelixConfigurationSpec) {
	const f = "FelixConfiguration.Spec."
	for _, r := range []struct {
		name string
		s    *string
	}{
		{"LogDebugFilenameRegex", s.LogDebugFilenameRegex}, {"BPFDataIfacePattern", s.BPFDataIfacePattern},
		{"BPFL3IfacePattern", s.BPFL3IfacePattern}, {"BPFDisableGROForIfaces", s.BPFDisableGROForIfaces},
		{"MTUIfacePattern", s.MTUIfacePattern}, {"NFTablesFlowTableDataIfacePattern", s.NFTablesFlowTableDataIfacePattern},
	} {
		if r.s != nil && *r.s != "" {
			requireRegexp(v, f+r.name, *r.s)
		}
	}
	if r := s.LogActionRateLimit; r != nil && *r != "" && !logRateRe().MatchString(*r) {
		v.add(f+"LogActionRateLimit", *r, "must be N/unit with N 1-9999 and unit second, minute, hour or day")
	}
	if sel := s.NodeSelector; sel != nil && *sel != "" {
		if len(*sel) > 1024 {
			v.add(f+"NodeSelector", *sel, "must be at most 1024 characters")
		} else {
			v.selector(f+"NodeSelector", *sel)
		}
	}
	if d := s.IstioDSCPMark; d != nil {
		if err := d.Validate(); err != nil {
			v.add(f+"IstioDSCPMark", d.String(), err.Error())
		}
	}
	if s.FeatureDetectOverride != nil {
		requireKeyValueList(v, f+"FeatureDetectOverride", *s.FeatureDetectOverride)
	}
	if s.FeatureGates != nil {
		requireKeyValueList(v, f+"FeatureGates", *s.FeatureGates)
	}
	for _, r := range []struct {
		name string
		s    *string
	}{{"WireguardInterfaceName", s.WireguardInterfaceName}, {"WireguardInterfaceNameV6", s.WireguardInterfaceNameV6}} {
		if r.s != nil && *r.s != "" {
			v.interfaceName(f+r.name, *r.s)
		}
	}
	if p := s.IptablesNATOutgoingInterfaceFilter; p != nil && *p != "" && !ifaceFilterRe().MatchString(*p) {
		v.add(f+"IptablesNATOutgoingInterfaceFilter", *p, "invalid interface filter")
	}
	if s.BPFForceTrackPacketsFromIfaces != nil {
		for i, name := range *s.BPFForceTrackPacketsFromIfaces {
			if !ifaceFilterRe().MatchString(name) {
				v.add(fmt.Sprintf("%sBPFForceTrackPacketsFromIfaces[%d]", f, i), name, "invalid interface filter")
			}
		}
	}
	if s.BPFLogFilters != nil {
		for k := range *s.BPFLogFilters {
			if !interfaceNameRe().MatchString(k) {
				v.add(f+"BPFLogFilters", k, "keys must be interface names, \"all\", \"weps\" or \"heps\"")
			}
		}
	}
	if h := s.PrometheusMetricsHost; h != nil && *h != "" && !prometheusHostRe().MatchString(*h) {
		v.add(f+"PrometheusMetricsHost", *h, "must be an IP address or a host name of at most 64 characters")
	}
	if r := s.OpenstackRegion; r != nil && *r != "" {
		const maxRegion = 63 - len("openstack-region-")
		if len(*r) > maxRegion {
			v.add(f+"OpenstackRegion", *r, "is too long")
		} else if !dns1123Label().MatchString(*r) {
			v.add(f+"OpenstackRegion", *r, "must be a valid DNS label")
		}
	}
	for i, o := range s.HealthTimeoutOverrides {
		field := fmt.Sprintf("%sHealthTimeoutOverrides[%d]", f, i)
		if !healthOverrideNameRe().MatchString(o.Name) {
			v.add(field+".Name", o.Name, "name should match regex "+healthOverrideNameRe().String())
		}
		if o.Timeout.Duration < 0 {
			v.add(field+".Timeout", o.Timeout.Duration.String(), "Timeout should not be negative")
		}
	}
	if t := s.BPFConntrackTimeouts; t != nil {
		for _, e := range []struct {
			name string
			v    *BPFConntrackTimeout
		}{
			{"CreationGracePeriod", t.CreationGracePeriod}, {"TCPSynSent", t.TCPSynSent},
			{"TCPEstablished", t.TCPEstablished}, {"TCPFinsSeen", t.TCPFinsSeen},
			{"TCPResetSeen", t.TCPResetSeen}, {"UDPTimeout", t.UDPTimeout},
			{"GenericTimeout", t.GenericTimeout}, {"ICMPTimeout", t.ICMPTimeout},
		} {
			if e.v != nil && !conntrackTimeoutRe().MatchString(string(*e.v)) {
				v.add(f+"BPFConntrackTimeouts."+e.name, string(*e.v), "must be a duration or Auto")
			}
		}
	}
}

func validateFelixNets(v *validator, s *FelixConfigurationSpec) {
	const f = "FelixConfiguration.Spec."
	if a := s.NATOutgoingAddress; a != nil && *a != "" {
		if ip, ok := parseIPAddr(*a); !ok || !ip.Is4() {
			v.add(f+"NATOutgoingAddress", *a, "is not a valid IPv4 address")
		}
	}
	if a := s.DeviceRouteSourceAddress; a != nil && *a != "" {
		if ip, ok := parseIPAddr(*a); !ok || !ip.Is4() {
			v.add(f+"DeviceRouteSourceAddress", *a, "is not a valid IPv4 address")
		}
	}
	if a := s.DeviceRouteSourceAddressIPv6; a != nil && *a != "" {
		if ip, ok := parseIPAddr(*a); !ok || !ip.Is6() {
			v.add(f+"DeviceRouteSourceAddressIPv6", *a, "is not a valid IPv6 address")
		}
	}
	if s.ExternalNodesCIDRList != nil {
		for _, c := range *s.ExternalNodesCIDRList {
			p, err := ParseCIDR(c)
			switch {
			case err != nil:
				v.add(f+"ExternalNodesCIDRList", c, "has invalid CIDR(s)")
			case !p.Addr().Is4():
				v.add(f+"ExternalNodesCIDRList", c, "has invalid IPv6 CIDR")
			}
		}
	}
	for _, l := range []struct {
		name string
		l    *[]string
	}{{"BPFDSROptoutCIDRs", s.BPFDSROptoutCIDRs}, {"BPFExcludeCIDRsFromNAT", s.BPFExcludeCIDRsFromNAT}} {
		if l.l == nil {
			continue
		}
		for i, c := range *l.l {
			if _, err := ParseCIDR(c); err != nil {
				v.add(fmt.Sprintf("%s%s[%d]", f, l.name, i), c, "invalid CIDR")
			}
		}
	}
}

func validateFelixDurations(v *validator, s *FelixConfigurationSpec) {
	const f = "FelixConfiguration.Spec."
	for _, d := range []struct {
		name string
		d    *Duration
	}{
		{"DataplaneWatchdogTimeout", s.DataplaneWatchdogTimeout}, {"RouteRefreshInterval", s.RouteRefreshInterval},
		{"InterfaceRefreshInterval", s.InterfaceRefreshInterval}, {"IptablesRefreshInterval", s.IptablesRefreshInterval},
		{"IptablesPostWriteCheckInterval", s.IptablesPostWriteCheckInterval}, {"IptablesLockTimeout", s.IptablesLockTimeout},
		{"IptablesLockProbeInterval", s.IptablesLockProbeInterval}, {"IpsetsRefreshInterval", s.IpsetsRefreshInterval},
		{"XDPRefreshInterval", s.XDPRefreshInterval}, {"NetlinkTimeout", s.NetlinkTimeout},
		{"ReportingInterval", s.ReportingInterval}, {"ReportingTTL", s.ReportingTTL},
		{"EndpointReportingDelay", s.EndpointReportingDelay}, {"UsageReportingInitialDelay", s.UsageReportingInitialDelay},
		{"UsageReportingInterval", s.UsageReportingInterval}, {"DebugSimulateCalcGraphHangAfter", s.DebugSimulateCalcGraphHangAfter},
		{"DebugSimulateDataplaneHangAfter", s.DebugSimulateDataplaneHangAfter},
		{"DebugSimulateDataplaneApplyDelay", s.DebugSimulateDataplaneApplyDelay},
		{"NftablesRefreshInterval", s.NftablesRefreshInterval}, {"BPFKubeProxyMinSyncPeriod", s.BPFKubeProxyMinSyncPeriod},
		{"FlowLogsFlushInterval", s.FlowLogsFlushInterval}, {"WireguardPersistentKeepAlive", s.WireguardPersistentKeepAlive},
		{"LiveMigrationRouteConvergenceTime", s.LiveMigrationRouteConvergenceTime},
		{"BPFIPFragTimeout", s.BPFIPFragTimeout},
		{"LocalSubnetL2ReachabilityRefreshInterval", s.LocalSubnetL2ReachabilityRefreshInterval},
	} {
		requireNonNegativeDuration(v, f+d.name, d.d)
	}
}

func validateFelixRouteTables(v *validator, s *FelixConfigurationSpec) {
	const f = "FelixConfiguration.Spec."
	if s.RouteTableRange != nil && s.RouteTableRanges != nil {
		v.add(f+"RouteTableRange", fmt.Sprintf("%d-%d", s.RouteTableRange.Min, s.RouteTableRange.Max),
			"cannot be set when `RouteTableRanges` is also set")
	}
	if r := s.RouteTableRange; r != nil && (r.Min < 1 || r.Max > 250 || r.Min > r.Max) {
		v.add(f+"RouteTableRange", fmt.Sprintf("%d-%d", r.Min, r.Max), "must be a range of route table indices within 1..250")
	}
	if s.RouteTableRanges == nil {
		return
	}
	for i, r := range *s.RouteTableRanges {
		field := fmt.Sprintf("%sRouteTableRanges[%d]", f, i)
		val := fmt.Sprintf("%d-%d", r.Min, r.Max)
		switch {
		case r.Min < 1:
			v.add(field, val, "min must be >= 1")
		case r.Min > r.Max:
			v.add(field, val, "min must not be greater than max")
		case int64(r.Max) > 0xffffffff:
			v.add(field, val, "max must be a 32-bit table index")
		}
	}
	total := 0
	for _, r := range *s.RouteTableRanges {
		if r.Max >= r.Min && r.Min >= 1 && int64(r.Max) <= 0xffffffff {
			total += r.Max - r.Min + 1
		}
		if total > routeTableRangeMaxTables {
			v.add(f+"RouteTableRanges", total, "targets too many tables")
			return
		}
	}
}

func validateFelixFailsafes(v *validator, field string, ports *[]ProtoPort) {
	if ports == nil {
		return
	}
	for i, p := range *ports {
		pf := fmt.Sprintf("%s[%d]", field, i)
		switch strings.ToUpper(p.Protocol) {
		case "", "TCP", "UDP", "SCTP":
		default:
			v.add(pf+".Protocol", p.Protocol, "protocol must be 'TCP' or 'UDP' or 'SCTP'.")
		}
		if p.Port == 0 {
			v.add(pf+".Port", p.Port, "port must be between 1 and 65535")
		}
		if p.Net != "" {
			if _, err := ParseCIDR(p.Net); err != nil {
				v.add(pf+".Net", p.Net, "invalid CIDR")
			}
		}
	}
}
