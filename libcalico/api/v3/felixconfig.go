package v3

// FelixConfiguration holds Felix settings: "default" for the cluster and
// "node.<nodename>" for one host. Every spec field is optional; unset means
// Felix's built-in default.
type FelixConfiguration struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`

	Spec FelixConfigurationSpec `json:"spec,omitempty"`
}

// FelixConfigurationSpec lists every Felix parameter Calico's API carries.
// BPFLogLevel alone is a plain string written even when empty, as Calico does.
type FelixConfigurationSpec struct {
	UseInternalDataplaneDriver     *bool            `json:"useInternalDataplaneDriver,omitempty"`
	DataplaneDriver                *string          `json:"dataplaneDriver,omitempty"`
	DataplaneWatchdogTimeout       *Duration        `json:"dataplaneWatchdogTimeout,omitempty"`
	IPv6Support                    *bool            `json:"ipv6Support,omitempty"`
	RouteRefreshInterval           *Duration        `json:"routeRefreshInterval,omitempty"`
	InterfaceRefreshInterval       *Duration        `json:"interfaceRefreshInterval,omitempty"`
	IptablesRefreshInterval        *Duration        `json:"iptablesRefreshInterval,omitempty"`
	IptablesPostWriteCheckInterval *Duration        `json:"iptablesPostWriteCheckInterval,omitempty"`
	IptablesLockFilePath           *string          `json:"iptablesLockFilePath,omitempty"`
	IptablesLockTimeout            *Duration        `json:"iptablesLockTimeout,omitempty"`
	IptablesLockProbeInterval      *Duration        `json:"iptablesLockProbeInterval,omitempty"`
	FeatureDetectOverride          *string          `json:"featureDetectOverride,omitempty"`
	FeatureGates                   *string          `json:"featureGates,omitempty"`
	IpsetsRefreshInterval          *Duration        `json:"ipsetsRefreshInterval,omitempty"`
	MaxIpsetSize                   *int             `json:"maxIpsetSize,omitempty"`
	IptablesBackend                *IptablesBackend `json:"iptablesBackend,omitempty"`
	XDPRefreshInterval             *Duration        `json:"xdpRefreshInterval,omitempty"`
	NetlinkTimeout                 *Duration        `json:"netlinkTimeout,omitempty"`
	MetadataAddr                   *string          `json:"metadataAddr,omitempty"`
	MetadataPort                   *int             `json:"metadataPort,omitempty"`
	OpenstackRegion                *string          `json:"openstackRegion,omitempty"`
	InterfacePrefix                *string          `json:"interfacePrefix,omitempty"`
	InterfaceExclude               *string          `json:"interfaceExclude,omitempty"`
	ChainInsertMode                *string          `json:"chainInsertMode,omitempty"`
	DefaultEndpointToHostAction    *string          `json:"defaultEndpointToHostAction,omitempty"`
	IptablesFilterAllowAction      *string          `json:"iptablesFilterAllowAction,omitempty"`
	IptablesMangleAllowAction      *string          `json:"iptablesMangleAllowAction,omitempty"`
	IptablesFilterDenyAction       *string          `json:"iptablesFilterDenyAction,omitempty"`
	LogPrefix                      *string          `json:"logPrefix,omitempty"`
	LogFilePath                    *string          `json:"logFilePath,omitempty"`
	LogSeverityFile                *string          `json:"logSeverityFile,omitempty"`
	LogSeverityScreen              *string          `json:"logSeverityScreen,omitempty"`
	LogSeveritySys                 *string          `json:"logSeveritySys,omitempty"`
	LogDebugFilenameRegex          *string          `json:"logDebugFilenameRegex,omitempty"`
	// LogActionRateLimit limits how often a Log rule logs ("10/second");
	// LogActionRateLimitBurst is its burst.
	LogActionRateLimit      *string `json:"logActionRateLimit,omitempty"`
	LogActionRateLimitBurst *int    `json:"logActionRateLimitBurst,omitempty"`
	// NodeSelector scopes a FelixConfiguration that is neither "default"
	// nor "node.<name>" to the nodes it selects.
	NodeSelector *string `json:"nodeSelector,omitempty"`

	IPIPEnabled                    *bool     `json:"ipipEnabled,omitempty"`
	IPIPMTU                        *int      `json:"ipipMTU,omitempty"`
	VXLANEnabled                   *bool     `json:"vxlanEnabled,omitempty"`
	VXLANMTU                       *int      `json:"vxlanMTU,omitempty"`
	VXLANMTUV6                     *int      `json:"vxlanMTUV6,omitempty"`
	VXLANPort                      *int      `json:"vxlanPort,omitempty"`
	VXLANVNI                       *int      `json:"vxlanVNI,omitempty"`
	AllowVXLANPacketsFromWorkloads *bool     `json:"allowVXLANPacketsFromWorkloads,omitempty"`
	AllowIPIPPacketsFromWorkloads  *bool     `json:"allowIPIPPacketsFromWorkloads,omitempty"`
	ReportingInterval              *Duration `json:"reportingInterval,omitempty"`
	ReportingTTL                   *Duration `json:"reportingTTL,omitempty"`
	EndpointReportingEnabled       *bool     `json:"endpointReportingEnabled,omitempty"`
	EndpointReportingDelay         *Duration `json:"endpointReportingDelay,omitempty"`
	EndpointStatusPathPrefix       *string   `json:"endpointStatusPathPrefix,omitempty"`
	IptablesMarkMask               *uint32   `json:"iptablesMarkMask,omitempty"`
	DisableConntrackInvalidCheck   *bool     `json:"disableConntrackInvalidCheck,omitempty"`

	HealthEnabled                     *bool                   `json:"healthEnabled,omitempty"`
	HealthHost                        *string                 `json:"healthHost,omitempty"`
	HealthPort                        *int                    `json:"healthPort,omitempty"`
	HealthTimeoutOverrides            []HealthTimeoutOverride `json:"healthTimeoutOverrides,omitempty"`
	PrometheusMetricsEnabled          *bool                   `json:"prometheusMetricsEnabled,omitempty"`
	PrometheusMetricsHost             *string                 `json:"prometheusMetricsHost,omitempty"`
	PrometheusMetricsPort             *int                    `json:"prometheusMetricsPort,omitempty"`
	PrometheusGoMetricsEnabled        *bool                   `json:"prometheusGoMetricsEnabled,omitempty"`
	PrometheusProcessMetricsEnabled   *bool                   `json:"prometheusProcessMetricsEnabled,omitempty"`
	PrometheusWireGuardMetricsEnabled *bool                   `json:"prometheusWireGuardMetricsEnabled,omitempty"`
	// PrometheusMetricsCertFile and PrometheusMetricsKeyFile serve the
	// metrics endpoint over TLS; PrometheusMetricsCAFile verifies clients as
	// PrometheusMetricsClientAuth says.
	PrometheusMetricsCAFile     *string `json:"prometheusMetricsCAFile,omitempty"`
	PrometheusMetricsCertFile   *string `json:"prometheusMetricsCertFile,omitempty"`
	PrometheusMetricsKeyFile    *string `json:"prometheusMetricsKeyFile,omitempty"`
	PrometheusMetricsClientAuth *string `json:"prometheusMetricsClientAuth,omitempty"`

	// FailsafeInboundHostPorts and FailsafeOutboundHostPorts: an empty list
	// ("[]") disables the failsafes, unset keeps Felix's defaults.
	FailsafeInboundHostPorts     *[]ProtoPort               `json:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts    *[]ProtoPort               `json:"failsafeOutboundHostPorts,omitempty"`
	KubeNodePortRanges           *[]Port                    `json:"kubeNodePortRanges,omitempty"`
	PolicySyncPathPrefix         *string                    `json:"policySyncPathPrefix,omitempty"`
	UsageReportingEnabled        *bool                      `json:"usageReportingEnabled,omitempty"`
	UsageReportingInitialDelay   *Duration                  `json:"usageReportingInitialDelay,omitempty"`
	UsageReportingInterval       *Duration                  `json:"usageReportingInterval,omitempty"`
	NATPortRange                 *Port                      `json:"natPortRange,omitempty"`
	NATOutgoingAddress           *string                    `json:"natOutgoingAddress,omitempty"`
	NATOutgoingExclusions        *NATOutgoingExclusionsType `json:"natOutgoingExclusions,omitempty"`
	DeviceRouteSourceAddress     *string                    `json:"deviceRouteSourceAddress,omitempty"`
	DeviceRouteSourceAddressIPv6 *string                    `json:"deviceRouteSourceAddressIPv6,omitempty"`
	DeviceRouteProtocol          *int                       `json:"deviceRouteProtocol,omitempty"`
	RemoveExternalRoutes         *bool                      `json:"removeExternalRoutes,omitempty"`
	ProgramClusterRoutes         *string                    `json:"programClusterRoutes,omitempty"`
	IPForwarding                 *string                    `json:"ipForwarding,omitempty"`
	ExternalNodesCIDRList        *[]string                  `json:"externalNodesList,omitempty"`

	DebugMemoryProfilePath             *string   `json:"debugMemoryProfilePath,omitempty"`
	DebugDisableLogDropping            *bool     `json:"debugDisableLogDropping,omitempty"`
	DebugSimulateCalcGraphHangAfter    *Duration `json:"debugSimulateCalcGraphHangAfter,omitempty"`
	DebugSimulateDataplaneHangAfter    *Duration `json:"debugSimulateDataplaneHangAfter,omitempty"`
	DebugSimulateDataplaneApplyDelay   *Duration `json:"debugSimulateDataplaneApplyDelay,omitempty"`
	DebugHost                          *string   `json:"debugHost,omitempty"`
	DebugPort                          *int      `json:"debugPort,omitempty"`
	IptablesNATOutgoingInterfaceFilter *string   `json:"iptablesNATOutgoingInterfaceFilter,omitempty"`
	SidecarAccelerationEnabled         *bool     `json:"sidecarAccelerationEnabled,omitempty"`
	XDPEnabled                         *bool     `json:"xdpEnabled,omitempty"`
	GenericXDPEnabled                  *bool     `json:"genericXDPEnabled,omitempty"`

	NFTablesMode              *NFTablesMode `json:"nftablesMode,omitempty"`
	NFTablesFlowTableOffload  *string       `json:"nftablesFlowTableOffload,omitempty"`
	NftablesRefreshInterval   *Duration     `json:"nftablesRefreshInterval,omitempty"`
	NftablesFilterAllowAction *string       `json:"nftablesFilterAllowAction,omitempty"`
	NftablesMangleAllowAction *string       `json:"nftablesMangleAllowAction,omitempty"`
	NftablesFilterDenyAction  *string       `json:"nftablesFilterDenyAction,omitempty"`
	NftablesMarkMask          *uint32       `json:"nftablesMarkMask,omitempty"`
	// NFTablesFlowTableDataIfacePattern picks the host interfaces added to
	// the nftables flowtable.
	NFTablesFlowTableDataIfacePattern *string `json:"nftablesFlowTableDataIfacePattern,omitempty"`

	BPFEnabled                         *bool                    `json:"bpfEnabled,omitempty"`
	BPFOverlayHostSourceIP             *string                  `json:"bpfOverlayHostSourceIP,omitempty"`
	BPFJITHardening                    *string                  `json:"bpfJITHardening,omitempty"`
	BPFIPFragTimeout                   *Duration                `json:"bpfIPFragTimeout,omitempty"`
	BPFIPFragmentReassemblyEnabled     *bool                    `json:"bpfIPFragmentReassemblyEnabled,omitempty"`
	BPFDisableUnprivileged             *bool                    `json:"bpfDisableUnprivileged,omitempty"`
	BPFLogLevel                        string                   `json:"bpfLogLevel"`
	BPFConntrackLogLevel               *string                  `json:"bpfConntrackLogLevel,omitempty"`
	BPFConntrackCleanupMode            *BPFConntrackMode        `json:"bpfConntrackMode,omitempty"`
	BPFConntrackTimeouts               *BPFConntrackTimeouts    `json:"bpfConntrackTimeouts,omitempty"`
	BPFLogFilters                      *map[string]string       `json:"bpfLogFilters,omitempty"`
	BPFCTLBLogFilter                   *string                  `json:"bpfCTLBLogFilter,omitempty"`
	BPFDataIfacePattern                *string                  `json:"bpfDataIfacePattern,omitempty"`
	BPFL3IfacePattern                  *string                  `json:"bpfL3IfacePattern,omitempty"`
	BPFConnectTimeLoadBalancingEnabled *bool                    `json:"bpfConnectTimeLoadBalancingEnabled,omitempty"`
	BPFConnectTimeLoadBalancing        *BPFConnectTimeLBType    `json:"bpfConnectTimeLoadBalancing,omitempty"`
	BPFHostNetworkedNATWithoutCTLB     *BPFHostNetworkedNATType `json:"bpfHostNetworkedNATWithoutCTLB,omitempty"`
	BPFExternalServiceMode             *string                  `json:"bpfExternalServiceMode,omitempty"`
	BPFDSROptoutCIDRs                  *[]string                `json:"bpfDSROptoutCIDRs,omitempty"`
	BPFExtToServiceConnmark            *int                     `json:"bpfExtToServiceConnmark,omitempty"`
	BPFKubeProxyIptablesCleanupEnabled *bool                    `json:"bpfKubeProxyIptablesCleanupEnabled,omitempty"`
	BPFKubeProxyMinSyncPeriod          *Duration                `json:"bpfKubeProxyMinSyncPeriod,omitempty"`
	BPFKubeProxyEndpointSlicesEnabled  *bool                    `json:"bpfKubeProxyEndpointSlicesEnabled,omitempty"`
	BPFKubeProxyHealthzPort            *int                     `json:"bpfKubeProxyHealthzPort,omitempty"`
	BPFPSNATPorts                      *Port                    `json:"bpfPSNATPorts,omitempty"`
	BPFMapSizeNATFrontend              *int                     `json:"bpfMapSizeNATFrontend,omitempty"`
	BPFMapSizeNATBackend               *int                     `json:"bpfMapSizeNATBackend,omitempty"`
	BPFMapSizeNATAffinity              *int                     `json:"bpfMapSizeNATAffinity,omitempty"`
	BPFMapSizeRoute                    *int                     `json:"bpfMapSizeRoute,omitempty"`
	BPFMapSizeConntrack                *int                     `json:"bpfMapSizeConntrack,omitempty"`
	BPFMapSizePerCPUConntrack          *int                     `json:"bpfMapSizePerCpuConntrack,omitempty"`
	BPFMapSizeConntrackScaling         *string                  `json:"bpfMapSizeConntrackScaling,omitempty"`
	BPFMapSizeConntrackCleanupQueue    *int                     `json:"bpfMapSizeConntrackCleanupQueue,omitempty"`
	BPFMapSizeIPSets                   *int                     `json:"bpfMapSizeIPSets,omitempty"`
	BPFMapSizeIfState                  *int                     `json:"bpfMapSizeIfState,omitempty"`
	BPFHostConntrackBypass             *bool                    `json:"bpfHostConntrackBypass,omitempty"`
	BPFEnforceRPF                      *string                  `json:"bpfEnforceRPF,omitempty"`
	BPFPolicyDebugEnabled              *bool                    `json:"bpfPolicyDebugEnabled,omitempty"`
	BPFForceTrackPacketsFromIfaces     *[]string                `json:"bpfForceTrackPacketsFromIfaces,omitempty"`
	BPFDisableGROForIfaces             *string                  `json:"bpfDisableGROForIfaces,omitempty"`
	BPFExcludeCIDRsFromNAT             *[]string                `json:"bpfExcludeCIDRsFromNAT,omitempty"`
	BPFExportBufferSizeMB              *int                     `json:"bpfExportBufferSizeMB,omitempty"`
	BPFRedirectToPeer                  *string                  `json:"bpfRedirectToPeer,omitempty"`
	BPFProfiling                       *string                  `json:"bpfProfiling,omitempty"`
	BPFAttachType                      *string                  `json:"bpfAttachType,omitempty"`
	BPFMaglevMaxEndpointsPerService    *int                     `json:"bpfMaglevMaxEndpointsPerService,omitempty"`
	BPFMaglevMaxServices               *int                     `json:"bpfMaglevMaxServices,omitempty"`

	IstioAmbientMode *string `json:"istioAmbientMode,omitempty"`
	IstioDSCPMark    *DSCP   `json:"istioDSCPMark,omitempty"`

	FlowLogsPolicyEvaluationMode *FlowLogsPolicyEvaluationModeType `json:"flowLogsPolicyEvaluationMode,omitempty"`
	FlowLogsFlushInterval        *Duration                         `json:"flowLogsFlushInterval,omitempty"`
	FlowLogsCollectorDebugTrace  *bool                             `json:"flowLogsCollectorDebugTrace,omitempty"`
	FlowLogsGoldmaneServer       *string                           `json:"flowLogsGoldmaneServer,omitempty"`
	FlowLogsLocalReporter        *string                           `json:"flowLogsLocalReporter,omitempty"`

	RouteSource       *string           `json:"routeSource,omitempty"`
	RouteTableRanges  *RouteTableRanges `json:"routeTableRanges,omitempty"`
	RouteTableRange   *RouteTableRange  `json:"routeTableRange,omitempty"`
	RouteSyncDisabled *bool             `json:"routeSyncDisabled,omitempty"`

	WireguardEnabled               *bool     `json:"wireguardEnabled,omitempty"`
	WireguardEnabledV6             *bool     `json:"wireguardEnabledV6,omitempty"`
	WireguardThreadingEnabled      *bool     `json:"wireguardThreadingEnabled,omitempty"`
	WireguardListeningPort         *int      `json:"wireguardListeningPort,omitempty"`
	WireguardListeningPortV6       *int      `json:"wireguardListeningPortV6,omitempty"`
	WireguardRoutingRulePriority   *int      `json:"wireguardRoutingRulePriority,omitempty"`
	WireguardInterfaceName         *string   `json:"wireguardInterfaceName,omitempty"`
	WireguardInterfaceNameV6       *string   `json:"wireguardInterfaceNameV6,omitempty"`
	WireguardMTU                   *int      `json:"wireguardMTU,omitempty"`
	WireguardMTUV6                 *int      `json:"wireguardMTUV6,omitempty"`
	WireguardHostEncryptionEnabled *bool     `json:"wireguardHostEncryptionEnabled,omitempty"`
	WireguardPersistentKeepAlive   *Duration `json:"wireguardKeepAlive,omitempty"`

	AWSSrcDstCheck         *AWSSrcDstCheckOption `json:"awsSrcDstCheck,omitempty"`
	ServiceLoopPrevention  *string               `json:"serviceLoopPrevention,omitempty"`
	WorkloadSourceSpoofing *string               `json:"workloadSourceSpoofing,omitempty"`
	MTUIfacePattern        *string               `json:"mtuIfacePattern,omitempty"`
	FloatingIPs            *FloatingIPType       `json:"floatingIPs,omitempty"`
	// LocalSubnetL2Reachability answers ARP/NDP on host interfaces for
	// local pod IPs in the host's subnet.
	LocalSubnetL2Reachability                *string                         `json:"localSubnetL2Reachability,omitempty"`
	LocalSubnetL2ReachabilityRefreshInterval *Duration                       `json:"localSubnetL2ReachabilityRefreshInterval,omitempty"`
	WindowsManageFirewallRules               *WindowsManageFirewallRulesMode `json:"windowsManageFirewallRules,omitempty"`
	GoGCThreshold                            *int                            `json:"goGCThreshold,omitempty"`
	GoMemoryLimitMB                          *int                            `json:"goMemoryLimitMB,omitempty"`
	GoMaxProcs                               *int                            `json:"goMaxProcs,omitempty"`
	RequireMTUFile                           *bool                           `json:"requireMTUFile,omitempty"`
	CgroupV2Path                             *string                         `json:"cgroupV2Path,omitempty"`

	IPv4NormalRoutePriority           *int      `json:"ipv4NormalRoutePriority,omitempty"`
	IPv4ElevatedRoutePriority         *int      `json:"ipv4ElevatedRoutePriority,omitempty"`
	IPv6NormalRoutePriority           *int      `json:"ipv6NormalRoutePriority,omitempty"`
	IPv6ElevatedRoutePriority         *int      `json:"ipv6ElevatedRoutePriority,omitempty"`
	LiveMigrationRouteConvergenceTime *Duration `json:"liveMigrationRouteConvergenceTime,omitempty"`
}

// IptablesBackend selects the iptables flavour.
type IptablesBackend string

// Iptables backends.
const (
	IptablesBackendLegacy   IptablesBackend = "Legacy"
	IptablesBackendNFTables IptablesBackend = "NFT"
	IptablesBackendAuto     IptablesBackend = "Auto"
)

// NFTablesMode turns Felix's nftables dataplane on, off or to auto-detect.
type NFTablesMode string

// NFTables modes.
const (
	NFTablesModeEnabled  NFTablesMode = "Enabled"
	NFTablesModeDisabled NFTablesMode = "Disabled"
	NFTablesModeAuto     NFTablesMode = "Auto"
)

// AWSSrcDstCheckOption says what Felix does to the EC2 source/dest check.
type AWSSrcDstCheckOption string

// AWS source/dest check options.
const (
	AWSSrcDstCheckOptionDoNothing AWSSrcDstCheckOption = "DoNothing"
	AWSSrcDstCheckOptionEnable    AWSSrcDstCheckOption = "Enable"
	AWSSrcDstCheckOptionDisable   AWSSrcDstCheckOption = "Disable"
)

// FloatingIPType says whether non-OpenStack floating IPs are programmed.
type FloatingIPType string

// Floating IP modes.
const (
	FloatingIPsEnabled  FloatingIPType = "Enabled"
	FloatingIPsDisabled FloatingIPType = "Disabled"
)

// BPFHostNetworkedNATType says whether BPF mode NATs host traffic without CTLB.
type BPFHostNetworkedNATType string

// BPF host-networked NAT modes.
const (
	BPFHostNetworkedNATEnabled  BPFHostNetworkedNATType = "Enabled"
	BPFHostNetworkedNATDisabled BPFHostNetworkedNATType = "Disabled"
)

// BPFConnectTimeLBType says where BPF mode's connect-time load balancer applies.
type BPFConnectTimeLBType string

// Connect-time load balancing modes.
const (
	BPFConnectTimeLBTCP      BPFConnectTimeLBType = "TCP"
	BPFConnectTimeLBEnabled  BPFConnectTimeLBType = "Enabled"
	BPFConnectTimeLBDisabled BPFConnectTimeLBType = "Disabled"
)

// BPFConntrackMode says how BPF conntrack entries are cleaned up.
type BPFConntrackMode string

// BPF conntrack cleanup modes.
const (
	BPFConntrackModeAuto       BPFConntrackMode = "Auto"
	BPFConntrackModeUserspace  BPFConntrackMode = "Userspace"
	BPFConntrackModeBPFProgram BPFConntrackMode = "BPFProgram"
)

// WindowsManageFirewallRulesMode says whether Felix opens its ports in Windows Firewall.
type WindowsManageFirewallRulesMode string

// Windows firewall modes.
const (
	WindowsManageFirewallRulesEnabled  WindowsManageFirewallRulesMode = "Enabled"
	WindowsManageFirewallRulesDisabled WindowsManageFirewallRulesMode = "Disabled"
)

// FlowLogsPolicyEvaluationModeType says whether flows are re-evaluated against policy.
type FlowLogsPolicyEvaluationModeType string

// Flow log policy evaluation modes.
const (
	FlowLogsPolicyEvaluationModeNone       FlowLogsPolicyEvaluationModeType = "None"
	FlowLogsPolicyEvaluationModeContinuous FlowLogsPolicyEvaluationModeType = "Continuous"
)

// NATOutgoingExclusionsType says which destinations skip outgoing NAT.
type NATOutgoingExclusionsType string

// NAT outgoing exclusion modes.
const (
	NATOutgoingExclusionsIPPoolsOnly       NATOutgoingExclusionsType = "IPPoolsOnly"
	NATOutgoingExclusionsIPPoolsAndHostIPs NATOutgoingExclusionsType = "IPPoolsAndHostIPs"
)

// HealthTimeoutOverride overrides one Felix component's watchdog timeout.
type HealthTimeoutOverride struct {
	Name    string   `json:"name"`
	Timeout Duration `json:"timeout"`
}

// RouteTableRange is the deprecated single range of route table indices.
type RouteTableRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// RouteTableIDRange is one inclusive range of route table indices.
type RouteTableIDRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// RouteTableRanges are the route table indices Felix may use.
type RouteTableRanges []RouteTableIDRange

// NumDesignatedTables counts the indices the ranges cover.
func (r RouteTableRanges) NumDesignatedTables() int {
	n := 0
	for _, rng := range r {
		n += rng.Max - rng.Min + 1
	}
	return n
}

// ProtoPort is a failsafe port: protocol (TCP when empty), port and optional CIDR.
type ProtoPort struct {
	Protocol string `json:"protocol,omitempty"`
	Port     uint16 `json:"port"`
	Net      string `json:"net,omitempty"`
}

// BPFConntrackTimeout is a duration such as "30s" or "Auto".
type BPFConntrackTimeout string

// BPFConntrackTimeouts overrides BPF conntrack timers.
type BPFConntrackTimeouts struct {
	CreationGracePeriod *BPFConntrackTimeout `json:"creationGracePeriod,omitempty"`
	TCPSynSent          *BPFConntrackTimeout `json:"tcpSynSent,omitempty"`
	TCPEstablished      *BPFConntrackTimeout `json:"tcpEstablished,omitempty"`
	TCPFinsSeen         *BPFConntrackTimeout `json:"tcpFinsSeen,omitempty"`
	TCPResetSeen        *BPFConntrackTimeout `json:"tcpResetSeen,omitempty"`
	UDPTimeout          *BPFConntrackTimeout `json:"udpTimeout,omitempty"`
	GenericTimeout      *BPFConntrackTimeout `json:"genericTimeout,omitempty"`
	ICMPTimeout         *BPFConntrackTimeout `json:"icmpTimeout,omitempty"`
}

// NewFelixConfiguration returns an empty FelixConfiguration with its type metadata set.
func NewFelixConfiguration() *FelixConfiguration {
	return &FelixConfiguration{TypeMeta: TypeMeta{Kind: KindFelixConfiguration, APIVersion: APIVersion}}
}

// Default fills missing type metadata and applies what Calico writes into
// every FelixConfiguration: floatingIPs Disabled, bpfConnectTimeLoadBalancing
// TCP, bpfHostNetworkedNATWithoutCTLB Enabled, nftablesMode Auto and
// nftablesFlowTableOffload Disabled. The deprecated
// bpfConnectTimeLoadBalancingEnabled, when set, decides the two CTLB fields.
func (c *FelixConfiguration) Default() {
	infraTypeMeta(&c.TypeMeta, KindFelixConfiguration)
	s := &c.Spec
	if s.FloatingIPs == nil {
		s.FloatingIPs = ptrTo(FloatingIPsDisabled)
	}
	if s.BPFConnectTimeLoadBalancing == nil {
		s.BPFConnectTimeLoadBalancing = ptrTo(BPFConnectTimeLBTCP)
	}
	if s.BPFHostNetworkedNATWithoutCTLB == nil {
		s.BPFHostNetworkedNATWithoutCTLB = ptrTo(BPFHostNetworkedNATEnabled)
	}
	if s.BPFConnectTimeLoadBalancingEnabled != nil {
		s.BPFHostNetworkedNATWithoutCTLB = ptrTo(BPFHostNetworkedNATDisabled)
		ctlb := BPFConnectTimeLBDisabled
		if *s.BPFConnectTimeLoadBalancingEnabled {
			ctlb = BPFConnectTimeLBEnabled
		}
		s.BPFConnectTimeLoadBalancing = &ctlb
	}
	if s.NFTablesMode == nil {
		s.NFTablesMode = ptrTo(NFTablesModeAuto)
	}
	if s.NFTablesFlowTableOffload == nil {
		s.NFTablesFlowTableOffload = ptrTo("Disabled")
	}
}
