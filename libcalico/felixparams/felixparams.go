// Package felixparams is the one list of Calico's felix parameters that
// this suite's felix does not act on, and the map between parameter names
// (FELIX_<NAME>, felix.cfg) and FelixConfiguration fields. felix warns
// about each one that is set, calicoctl warns when a FelixConfiguration
// sets one, and docs/reference.md is generated from it; felix's own
// parameter list (felix/config) holds the ones it acts on, and a felix
// test checks that the two together cover every Calico parameter and
// FelixConfiguration field exactly once.
//
// A refused parameter is quiet when it is unset or holds Calico's default
// (or a value felix behaves the same with): such a setting asks for
// nothing felix does not do. Any other value is stored and round-trips,
// but has no effect, and is reported.
package felixparams

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// Unsupported is a parameter felix does not act on.
type Unsupported struct {
	// Param is Calico's parameter name; "" for a FelixConfiguration field
	// that is no felix parameter (nodeSelector).
	Param string
	// Field is the FelixConfiguration spec field (JSON name); "" when the
	// parameter is set only by environment or file.
	Field string
	// Default is Calico's default, in felix.cfg syntax.
	Default string
	// Quiet lists further values that ask for nothing felix does not do.
	Quiet []string
	// Reason says what is missing, for the warning.
	Reason string
	// LocalOnly marks a field whose parameter felix acts on only when it
	// comes from the environment or the config file: any value in a
	// FelixConfiguration is refused.
	LocalOnly bool
}

// Refusal is one set parameter felix does not act on.
type Refusal struct {
	Unsupported
	Value string
}

// Name is the field's path for a FelixConfiguration field, else the parameter.
func (r Refusal) Name() string {
	if r.Field != "" {
		return "spec." + r.Field
	}
	return r.Param
}

// String is the warning: "spec.wireguardEnabled = true is not supported: ...".
func (r Refusal) String() string {
	return fmt.Sprintf("%s = %s is not supported by this felix (%s); it is stored but has no effect", r.Name(), r.Value, r.Reason)
}

const (
	rBPF       = "the eBPF dataplane is not implemented"
	rWireguard = "WireGuard encryption is not implemented"
	rNFTables  = "the nftables dataplane is not implemented; felix programs iptables"
	rTypha     = "Typha is not used; felix watches etcd directly"
	rFlowLogs  = "flow logs are not implemented"
	rIstio     = "Istio ambient mode is not implemented"
	rDebug     = "debug hooks are not implemented"
	rUsage     = "usage reporting is not implemented; felix never reports usage"
	rOpenstack = "OpenStack special cases are not implemented"
	rXDP       = "XDP acceleration is not implemented; untracked policy is enforced in the raw table"
	rIptLock   = "felix waits up to 10 s for the xtables lock and does not re-check after writing"
	rNode      = "felix takes tunnel addresses and MACs from the Node resource"
	rRoutePrio = "route priorities and live migration are not implemented"
)

func u(param, def, reason string, quiet ...string) Unsupported {
	return Unsupported{Param: param, Default: def, Reason: reason, Quiet: quiet}
}

// local is a parameter felix reads only from its environment or file.
func local(param string) Unsupported {
	return Unsupported{Param: param, LocalOnly: true,
		Reason: "felix reads the metrics TLS settings only from its environment or config file, so the datastore cannot point them elsewhere"}
}

var list = []Unsupported{
	u("UseInternalDataplaneDriver", "true", "external dataplane drivers are not supported"),
	u("DataplaneDriver", "calico-iptables-plugin", "external dataplane drivers are not supported"),
	u("WireguardEnabled", "false", rWireguard),
	u("WireguardEnabledV6", "false", rWireguard),
	u("WireguardListeningPort", "51820", rWireguard),
	u("WireguardListeningPortV6", "51821", rWireguard),
	u("WireguardRoutingRulePriority", "99", rWireguard),
	u("WireguardInterfaceName", "wireguard.cali", rWireguard),
	u("WireguardInterfaceNameV6", "wg-v6.cali", rWireguard),
	u("WireguardMTU", "0", rWireguard),
	u("WireguardMTUV6", "0", rWireguard),
	u("WireguardHostEncryptionEnabled", "false", rWireguard),
	u("WireguardPersistentKeepAlive", "0", rWireguard),
	u("WireguardThreadingEnabled", "false", rWireguard),
	u("PrometheusWireGuardMetricsEnabled", "true", rWireguard, "false"),
	u("NFTablesMode", "Auto", rNFTables, "Disabled"),
	u("NFTablesFlowTableOffload", "Disabled", rNFTables),
	u("NFTablesFlowTableDataIfacePattern", "", rNFTables),
	u("NftablesRefreshInterval", "180", rNFTables),
	u("NftablesFilterAllowAction", "ACCEPT", rNFTables),
	u("NftablesMangleAllowAction", "ACCEPT", rNFTables),
	u("NftablesFilterDenyAction", "DROP", rNFTables),
	u("NftablesMarkMask", "0xffff0000", rNFTables),
	u("BPFEnabled", "false", rBPF),
	u("BPFOverlayHostSourceIP", "TunnelAddress", rBPF),
	u("BPFDisableUnprivileged", "true", rBPF),
	u("BPFJITHardening", "Auto", rBPF),
	u("BPFLogLevel", "off", rBPF),
	u("BPFConntrackLogLevel", "off", rBPF),
	u("BPFConntrackCleanupMode", "Auto", rBPF),
	u("BPFConntrackTimeouts", "", rBPF),
	u("BPFIPFragTimeout", "0", rBPF),
	u("BPFLogFilters", "", rBPF),
	u("BPFCTLBLogFilter", "", rBPF),
	u("BPFDataIfacePattern", `^((en|wl|ww|sl|ib)[Popsx].*|(eth|wlan|wwan|bond).*)`, rBPF),
	u("BPFL3IfacePattern", "", rBPF),
	u("BPFConnectTimeLoadBalancingEnabled", "", rBPF),
	u("BPFConnectTimeLoadBalancing", "TCP", rBPF),
	u("BPFHostNetworkedNATWithoutCTLB", "Enabled", rBPF),
	u("BPFExternalServiceMode", "tunnel", rBPF),
	u("BPFDSROptoutCIDRs", "", rBPF),
	u("BPFKubeProxyIptablesCleanupEnabled", "true", rBPF),
	u("BPFKubeProxyMinSyncPeriod", "1", rBPF),
	u("BPFKubeProxyHealthzPort", "10256", rBPF),
	u("BPFKubeProxyEndpointSlicesEnabled", "false", rBPF, "true"),
	u("BPFExtToServiceConnmark", "0", rBPF),
	u("BPFPSNATPorts", "20000:29999", rBPF),
	u("BPFMapSizeNATFrontend", "65536", rBPF),
	u("BPFMapSizeNATBackend", "262144", rBPF),
	u("BPFMapSizeNATAffinity", "65536", rBPF),
	u("BPFMapSizeRoute", "262144", rBPF),
	u("BPFMapSizeConntrack", "512000", rBPF),
	u("BPFMapSizePerCPUConntrack", "0", rBPF),
	u("BPFMapSizeConntrackScaling", "DoubleIfFull", rBPF),
	u("BPFMapSizeConntrackCleanupQueue", "100000", rBPF),
	u("BPFMapSizeIPSets", "1048576", rBPF),
	u("BPFMapSizeIfState", "1000", rBPF),
	u("BPFHostConntrackBypass", "false", rBPF),
	u("BPFIPFragmentReassemblyEnabled", "true", rBPF),
	u("BPFEnforceRPF", "Loose", rBPF),
	u("BPFPolicyDebugEnabled", "true", rBPF),
	u("BPFForceTrackPacketsFromIfaces", "docker+", rBPF),
	u("BPFDisableGROForIfaces", "", rBPF),
	u("BPFExcludeCIDRsFromNAT", "", rBPF),
	u("BPFRedirectToPeer", "Enabled", rBPF),
	u("BPFAttachType", "Netkit", rBPF),
	u("BPFExportBufferSizeMB", "1", rBPF),
	u("BPFProfiling", "Disabled", rBPF),
	u("BPFMaglevMaxEndpointsPerService", "100", rBPF),
	u("BPFMaglevMaxServices", "100", rBPF),
	u("DebugBPFCgroupV2", "", rBPF),
	u("DebugBPFMapRepinEnabled", "false", rBPF),
	u("CgroupV2Path", "", rBPF),
	u("XDPEnabled", "true", rXDP, "false"),
	u("GenericXDPEnabled", "false", rXDP),
	u("XDPRefreshInterval", "90", rXDP),
	u("SidecarAccelerationEnabled", "false", "sidecar acceleration is not implemented"),
	u("IstioAmbientMode", "Disabled", rIstio),
	u("IstioDSCPMark", "23", rIstio),
	u("TyphaAddr", "", rTypha),
	u("TyphaK8sServiceName", "", rTypha),
	u("TyphaK8sNamespace", "kube-system", rTypha),
	u("TyphaReadTimeout", "30", rTypha),
	u("TyphaWriteTimeout", "10", rTypha),
	u("TyphaKeyFile", "", rTypha),
	u("TyphaCertFile", "", rTypha),
	u("TyphaCAFile", "", rTypha),
	u("TyphaCN", "", rTypha),
	u("TyphaURISAN", "", rTypha),
	u("ProgramClusterRoutes", "EnabledIPIPOnly",
		"felix always programs the IPIP and VXLAN routes to other hosts' blocks and bgpd the unencapsulated ones, as EnabledIPIPOnly"),
	u("IptablesPostWriteCheckIntervalSecs", "5", rIptLock),
	u("IptablesLockFilePath", "/run/xtables.lock", rIptLock),
	u("IptablesLockTimeoutSecs", "0", rIptLock),
	u("IptablesLockProbeIntervalMillis", "50", rIptLock),
	u("FeatureDetectOverride", "", "kernel feature detection cannot be overridden"),
	u("FeatureGates", "", "no feature gates are implemented"),
	u("PolicySyncPathPrefix", "", "the policy sync API (Dikastes) is not implemented"),
	u("NetlinkTimeoutSecs", "10", "netlink calls are not timed out separately"),
	u("MetadataAddr", "127.0.0.1", rOpenstack),
	u("MetadataPort", "8775", rOpenstack),
	u("OpenstackRegion", "", rOpenstack),
	u("LogDebugFilenameRegex", "", "debug logs are not filtered by file name"),
	u("IPv4VXLANTunnelAddr", "", rNode),
	u("IPv6VXLANTunnelAddr", "", rNode),
	u("VXLANTunnelMACAddr", "", rNode),
	u("VXLANTunnelMACAddrV6", "", rNode),
	u("IpInIpTunnelAddr", "", rNode),
	u("LocalSubnetL2Reachability", "Disabled", "answering ARP/NDP for local pod IPs on host interfaces is not implemented"),
	u("LocalSubnetL2ReachabilityRefreshInterval", "120", "answering ARP/NDP for local pod IPs on host interfaces is not implemented"),
	u("WindowsManageFirewallRules", "Disabled", "felix runs on Linux only"),
	u("AWSSrcDstCheck", "DoNothing", "felix does not call the EC2 API"),
	u("EndpointStatusPathPrefix", "/var/run/calico", "endpoint status files are not written; endpoint status is reported to etcd"),
	u("HealthTimeoutOverrides", "", "felix has one health reporter, with the DataplaneWatchdogTimeout"),
	u("FlowLogsFlushInterval", "300", rFlowLogs),
	u("FlowLogsCollectorDebugTrace", "false", rFlowLogs),
	u("FlowLogsGoldmaneServer", "", rFlowLogs),
	u("FlowLogsLocalReporter", "Disabled", rFlowLogs),
	u("FlowLogsPolicyEvaluationMode", "Continuous", rFlowLogs, "None"),
	u("KubeNodePortRanges", "30000:32767", "kube-proxy IPVS mode support is not implemented"),
	u("UsageReportingEnabled", "true", rUsage, "false"),
	u("UsageReportingInitialDelaySecs", "300", rUsage),
	u("UsageReportingIntervalSecs", "86400", rUsage),
	u("ClusterGUID", "baddecaf", rUsage),
	u("ClusterType", "", rUsage),
	u("CalicoVersion", "", rUsage),
	u("Variant", "Calico", rUsage),
	u("DebugMemoryProfilePath", "", rDebug),
	u("DebugCPUProfilePath", "/tmp/felix-cpu-<timestamp>.pprof", rDebug),
	u("DebugDisableLogDropping", "false", "felix never drops logs", "true"),
	u("DebugSimulateCalcGraphHangAfter", "0", rDebug),
	u("DebugSimulateDataplaneHangAfter", "0", rDebug),
	u("DebugSimulateDataplaneApplyDelay", "0", rDebug),
	u("DebugPanicAfter", "0", rDebug),
	u("DebugSimulateDataRace", "false", rDebug),
	u("DebugHost", "localhost", rDebug),
	u("DebugPort", "", rDebug, "0"),
	u("RouteSyncDisabled", "false", "route programming cannot be turned off"),
	u("IPv4NormalRoutePriority", "1024", rRoutePrio),
	u("IPv4ElevatedRoutePriority", "512", rRoutePrio),
	u("IPv6NormalRoutePriority", "1024", rRoutePrio),
	u("IPv6ElevatedRoutePriority", "512", rRoutePrio),
	u("LiveMigrationRouteConvergenceTime", "30", rRoutePrio),
	u("RequireMTUFile", "false", "felix writes the MTU file itself and never waits for one"),
	local("PrometheusMetricsCertFile"),
	local("PrometheusMetricsKeyFile"),
	local("PrometheusMetricsCAFile"),
	local("PrometheusMetricsClientAuth"),
	{Field: "nodeSelector", Reason: "selector-scoped FelixConfigurations are not implemented; only \"default\" and \"node.<name>\" apply"},
}

// fieldRenames maps parameter names to FelixConfiguration fields where
// the field is not the parameter's name with a lower-case first word.
var fieldRenames = map[string]string{
	"IpInIpEnabled":                      "ipipEnabled",
	"IpInIpMtu":                          "ipipMTU",
	"ReportingIntervalSecs":              "reportingInterval",
	"ReportingTTLSecs":                   "reportingTTL",
	"EndpointReportingDelaySecs":         "endpointReportingDelay",
	"ExternalNodesCIDRList":              "externalNodesList",
	"IptablesPostWriteCheckIntervalSecs": "iptablesPostWriteCheckInterval",
	"IptablesLockTimeoutSecs":            "iptablesLockTimeout",
	"IptablesLockProbeIntervalMillis":    "iptablesLockProbeInterval",
	"NetlinkTimeoutSecs":                 "netlinkTimeout",
	"UsageReportingInitialDelaySecs":     "usageReportingInitialDelay",
	"UsageReportingIntervalSecs":         "usageReportingInterval",
	"BPFConntrackCleanupMode":            "bpfConntrackMode",
	"WireguardPersistentKeepAlive":       "wireguardKeepAlive",
	"BPFMapSizePerCPUConntrack":          "bpfMapSizePerCpuConntrack",
}

// specFields are the FelixConfigurationSpec JSON names, lower-cased → as spelt.
var specFields = func() map[string]string {
	out := map[string]string{}
	t := reflect.TypeFor[v3.FelixConfigurationSpec]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[strings.ToLower(name)] = name
		}
	}
	return out
}()

// FieldOf returns the FelixConfiguration field that sets param, or "".
func FieldOf(param string) string {
	for p, f := range fieldRenames {
		if strings.EqualFold(p, param) {
			return f
		}
	}
	return specFields[strings.ToLower(param)]
}

// ParamOf returns the parameter a FelixConfiguration field sets, in the
// case params spell it (or field itself, capitalised, when no rename applies).
func ParamOf(field string) string {
	for p, f := range fieldRenames {
		if strings.EqualFold(f, field) {
			return p
		}
	}
	if field == "" {
		return ""
	}
	return strings.ToUpper(field[:1]) + field[1:]
}

var byParam, byField = func() (map[string]*Unsupported, map[string]*Unsupported) {
	bp, bf := map[string]*Unsupported{}, map[string]*Unsupported{}
	for i := range list {
		e := &list[i]
		if e.Param != "" && e.Field == "" {
			e.Field = FieldOf(e.Param)
		}
		if e.Param != "" && !e.LocalOnly {
			bp[strings.ToLower(e.Param)] = e
		}
		if e.Field != "" {
			bf[strings.ToLower(e.Field)] = e
		}
	}
	return bp, bf
}()

// List returns every unsupported parameter and local-only field, sorted by name.
func List() []Unsupported {
	out := append([]Unsupported(nil), list...)
	sort.Slice(out, func(i, j int) bool { return sortKey(out[i]) < sortKey(out[j]) })
	return out
}

func sortKey(e Unsupported) string {
	if e.Param != "" {
		return strings.ToLower(e.Param)
	}
	return strings.ToLower(e.Field)
}

// ByParam finds an unsupported parameter by name, in any case (never a
// LocalOnly one: felix acts on those).
func ByParam(name string) (Unsupported, bool) {
	e, ok := byParam[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Unsupported{}, false
	}
	return *e, true
}

// ByField finds an unsupported FelixConfiguration field by JSON name, in any case.
func ByField(name string) (Unsupported, bool) {
	e, ok := byField[strings.ToLower(name)]
	if !ok {
		return Unsupported{}, false
	}
	return *e, true
}

// IsQuiet reports whether value asks for nothing felix does not do: empty,
// Calico's default or one of Quiet, compared without regard to case, as
// numbers, or as durations (a bare number is seconds). For a LocalOnly
// field only empty is quiet.
func (e Unsupported) IsQuiet(value string) bool {
	value = strings.TrimSpace(value)
	if value == "" || value == "[]" || value == "{}" || value == "null" {
		return true
	}
	if e.LocalOnly {
		return false
	}
	for _, q := range append([]string{e.Default}, e.Quiet...) {
		if sameValue(value, q) {
			return true
		}
	}
	return false
}

func sameValue(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	if x, err := strconv.ParseFloat(a, 64); err == nil {
		if y, err := strconv.ParseFloat(b, 64); err == nil {
			return x == y
		}
	}
	if x, ok := duration(a); ok {
		if y, ok := duration(b); ok {
			return x == y
		}
	}
	return false
}

func duration(s string) (time.Duration, bool) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// Check returns the refusal for a parameter set (by environment or file)
// to value, if felix does not act on it.
func Check(param, value string) (Refusal, bool) {
	e, ok := ByParam(param)
	if !ok || e.IsQuiet(value) {
		return Refusal{}, false
	}
	e.Field = "" // named by parameter: it was not set in a FelixConfiguration
	return Refusal{Unsupported: e, Value: value}, true
}

// Refusals lists the fields of spec that felix does not act on and that
// are set to something other than a quiet value, sorted by field.
func Refusals(spec *v3.FelixConfigurationSpec) []Refusal {
	if spec == nil {
		return nil
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	var out []Refusal
	for k, v := range m {
		e, ok := ByField(k)
		if !ok {
			continue
		}
		val := Render(v)
		if e.IsQuiet(val) {
			continue
		}
		out = append(out, Refusal{Unsupported: e, Value: val})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// Render writes a decoded JSON value as felix.cfg would: strings as they
// are, numbers without exponent, lists comma-joined, objects as JSON.
func Render(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			if _, ok := e.(map[string]any); ok {
				b, _ := json.Marshal(e)
				parts[i] = string(b)
				continue
			}
			parts[i] = Render(e)
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}
