// Package config is felix's configuration: the parameters it acts on, with
// Calico's names and defaults, loaded from five sources in precedence
// order:
//
//	env FELIX_<NAME> > config file ([global] of felix.cfg) >
//	FelixConfiguration node.<name> > FelixConfiguration default > built-in
//
// A value that does not parse is logged (parameter, value, source) and the
// next source down is used. Calico's parameters felix does not act on
// (libcalico/felixparams) are not dropped in silence: each one set is a
// Refusal, which the daemon logs and counts. Only this package reads the
// environment and the file; the rest of felix gets a *Config.
package config

//lint:file-ignore ST1011 fields are named after the Felix parameters they hold (ReportingIntervalSecs, ...)

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
)

// Default paths.
const (
	DefaultConfigFile = "/etc/calico/felix.cfg"
	DefaultRunDir     = "/var/run/calico"
	// DefaultMTUFile is where felix tells the CNI plugin the pod MTU, as
	// Calico's felix does.
	DefaultMTUFile = "/var/lib/calico/mtu"
)

// Config holds felix's parameters. Fields with a `config` tag are Calico
// parameters felix acts on, named as in Calico: "kind;default;flags".
// Flags: local (not settable from the datastore), non-zero (empty is
// invalid), live (a change is applied without a restart). Calico's other
// parameters are listed, with why felix does not act on them, in
// libcalico/felixparams; setting one is warned about.
//
// Any parameter that may be empty can be set to "none" for its empty
// value, as in Calico.
type Config struct {
	// Datastore connection (local only).
	DatastoreType string   `config:"oneof(etcdv3);etcdv3;local,non-zero"`
	FelixHostname string   `config:"hostname;;local"`
	EtcdAddr      string   `config:"authority;127.0.0.1:2379;local"`
	EtcdScheme    string   `config:"oneof(http,https);http;local"`
	EtcdKeyFile   string   `config:"file(must-exist);;local"`
	EtcdCertFile  string   `config:"file(must-exist);;local"`
	EtcdCaFile    string   `config:"file(must-exist);;local"`
	EtcdEndpoints []string `config:"endpoint-list;;local"`

	Ipv6Support     bool   `config:"bool;true"`
	IptablesBackend string `config:"oneof(legacy,nft,auto);auto"`
	// RouteRefreshInterval: how often routes, neighbours and tunnel devices
	// are read back and repaired.
	RouteRefreshInterval time.Duration `config:"seconds;90"`
	// InterfaceRefreshInterval: how often the interfaces are listed again,
	// in case a netlink notification was missed; 0 = never (notifications only).
	InterfaceRefreshInterval time.Duration `config:"seconds;90"`
	IptablesRefreshInterval  time.Duration `config:"seconds;90"`
	IpsetsRefreshInterval    time.Duration `config:"seconds;10"`
	// DeviceRouteProtocol is the protocol of workload routes; with the
	// default (3, boot) felix's other routes use protocol 80, as Calico.
	DeviceRouteProtocol int `config:"int(0,255);3"`
	// DeviceRouteSourceAddress is the source address (src) of the IPv4
	// routes to local workloads; empty = none.
	DeviceRouteSourceAddress string `config:"ipv4;"`
	// DeviceRouteSourceAddressIPv6 is the src of the IPv6 workload routes.
	DeviceRouteSourceAddressIPv6 string `config:"ipv6;"`
	// RemoveExternalRoutes: routes to workload interfaces that felix did not
	// program are removed. Routes elsewhere are never touched unless felix
	// owns them (its own protocol, or a tunnel device).
	RemoveExternalRoutes bool `config:"bool;true"`
	// RouteSource: CalicoIPAM routes other hosts' IPAM blocks;
	// WorkloadIPs routes each remote workload's addresses instead.
	RouteSource string `config:"oneof(WorkloadIPs,CalicoIPAM);CalicoIPAM"`
	// RouteTableRanges: the route tables felix may use ("1-250" when
	// neither this nor RouteTableRange is set). Calico's WireGuard takes the
	// first two; felix has no WireGuard, so it keeps those two empty of
	// routes and of WireGuard's routing rule (priority 99), as Calico does
	// with WireGuard off: do not use them for other routing.
	RouteTableRanges string `config:"route-table-ranges;"`
	// RouteTableRange is the deprecated single range; RouteTableRanges wins.
	RouteTableRange string `config:"route-table-range;"`
	// IPForwarding: Enabled turns on net.ipv4.ip_forward (and IPv6
	// forwarding) at start; Disabled leaves them alone.
	IPForwarding string `config:"oneof(Enabled,Disabled);Enabled"`
	MaxIpsetSize int    `config:"int;1048576;non-zero"`
	// InterfacePrefix: the prefixes of workload interfaces.
	InterfacePrefix string `config:"iface-list;cali;non-zero"`
	// InterfaceExclude: interfaces (names, or /regexps/) never treated as
	// host endpoint interfaces, even when they hold an expected IP.
	InterfaceExclude string `config:"iface-regexp-list;kube-ipvs0"`
	// ChainInsertMode: insert puts felix's jumps at the top of the
	// kernel's chains; append puts them at the bottom, after the
	// operator's own rules.
	ChainInsertMode string `config:"oneof(insert,append);insert;non-zero"`

	DefaultEndpointToHostAction string `config:"oneof(DROP,RETURN,ACCEPT);DROP;non-zero"`
	// IptablesFilterAllowAction: what felix's filter chains do with
	// allowed packets: ACCEPT, or RETURN so that later rules in the
	// kernel's chains still see them.
	IptablesFilterAllowAction string `config:"oneof(ACCEPT,RETURN);ACCEPT;non-zero"`
	// IptablesMangleAllowAction: the same for felix's mangle chains
	// (pre-DNAT policy, established connections).
	IptablesMangleAllowAction string `config:"oneof(ACCEPT,RETURN);ACCEPT;non-zero"`
	// IptablesFilterDenyAction: what policy does with denied packets.
	IptablesFilterDenyAction string `config:"oneof(DROP,REJECT);DROP;non-zero"`
	IptablesMarkMask         uint32 `config:"mark-bitmask;0xffff0000;non-zero"`
	// LogPrefix of Log rules; %t, %k, %n and %p become the tier, the kind
	// (np, gnp, pro), the name and the namespace/name, as Calico.
	LogPrefix string `config:"string;calico-packet"`
	// LogActionRateLimit limits how often each Log rule logs ("10/second":
	// 1-9999 per second, minute, hour or day); empty = no limit.
	LogActionRateLimit string `config:"log-rate;"`
	// LogActionRateLimitBurst is the burst of LogActionRateLimit.
	LogActionRateLimitBurst int `config:"int(0,9999);5"`
	// DisableConntrackInvalidCheck: do not drop packets conntrack marks
	// INVALID in endpoint chains.
	DisableConntrackInvalidCheck bool `config:"bool;false"`
	// AllowVXLANPacketsFromWorkloads: do not drop VXLAN packets (UDP to
	// VXLANPort) that workloads send.
	AllowVXLANPacketsFromWorkloads bool `config:"bool;false"`
	// AllowIPIPPacketsFromWorkloads: do not drop IPIP packets that
	// workloads send.
	AllowIPIPPacketsFromWorkloads bool `config:"bool;false"`
	// WorkloadSourceSpoofing: Any lets a workload send from the source
	// prefixes in its allowSpoofedSourcePrefixes; Disabled ignores them.
	WorkloadSourceSpoofing string `config:"oneof(Disabled,Any);Disabled"`
	// FloatingIPs: Enabled programs workloads' ipNATs (DNAT and SNAT).
	FloatingIPs string `config:"oneof(Enabled,Disabled);Disabled"`
	// ServiceLoopPrevention: what happens to forwarded or host traffic to
	// service ranges the BGPConfiguration advertises that no local rule
	// claimed (chain cali-cidr-block): Drop, Reject or Disabled.
	ServiceLoopPrevention string `config:"oneof(Drop,Reject,Disabled);Drop"`
	// ExternalNodesCIDRList: non-Calico hosts allowed to send IPIP and
	// VXLAN traffic (added to the all-hosts IP set).
	ExternalNodesCIDRList []netip.Prefix `config:"cidr-list;"`

	// LogFilePath: where the file log goes; empty = no file (journald
	// has the screen log). Calico's default is /var/log/calico/felix.log.
	LogFilePath       string `config:"file;;"`
	LogSeverityFile   string `config:"oneof(TRACE,DEBUG,INFO,WARNING,ERROR,FATAL);INFO;live"`
	LogSeverityScreen string `config:"oneof(TRACE,DEBUG,INFO,WARNING,ERROR,FATAL);INFO;live"`
	// LogSeveritySys: the level sent to the local syslog; empty = none
	// (Calico's default is INFO; felix's screen log already reaches the
	// journal under systemd).
	LogSeveritySys string `config:"oneof(TRACE,DEBUG,INFO,WARNING,ERROR,FATAL);;live"`

	// VXLANEnabled overrides whether IPv4 VXLAN is set up; unset = as the
	// IP pools ask.
	VXLANEnabled *bool `config:"*bool;"`
	VXLANPort    int   `config:"int(1,65535);4789"`
	VXLANVNI     int   `config:"int(1,16777215);4096"`
	// VXLANMTU: the MTU of vxlan.calico; 0 = the host MTU less 50.
	VXLANMTU int `config:"int(0,65535);0"`
	// VXLANMTUV6: the MTU of vxlan-v6.calico; 0 = the host MTU less 70.
	VXLANMTUV6 int `config:"int(0,65535);0"`
	// IpInIpEnabled overrides whether IPIP is set up; unset = as the IP
	// pools ask.
	IpInIpEnabled *bool `config:"*bool;"`
	// IpInIpMtu: the MTU of tunl0; 0 = the host MTU less 20.
	IpInIpMtu int `config:"int(0,65535);0"`
	// NATOutgoingAddress: SNAT NAT-outgoing traffic to this address
	// instead of masquerading.
	NATOutgoingAddress string `config:"ipv4;"`
	// NATOutgoingExclusions: IPPoolsOnly skips NAT to pool addresses;
	// IPPoolsAndHostIPs also to Calico hosts' addresses.
	NATOutgoingExclusions string `config:"oneof(IPPoolsOnly,IPPoolsAndHostIPs);IPPoolsOnly"`
	// NATPortRange: the source ports NAT outgoing uses for TCP and UDP
	// ("32768:65535"); empty = the kernel's choice.
	NATPortRange string `config:"portrange;"`
	// IptablesNATOutgoingInterfaceFilter: NAT outgoing only for packets
	// leaving by this interface (a trailing + is a wildcard).
	IptablesNATOutgoingInterfaceFilter string `config:"iface-param;"`
	// MTUIfacePattern selects the host interfaces whose smallest MTU (of
	// those up) is the host MTU, from which the pod MTU is worked out.
	MTUIfacePattern string `config:"regexp;^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)"`

	ReportingIntervalSecs      time.Duration `config:"seconds;30"`
	ReportingTTLSecs           time.Duration `config:"seconds;90"`
	EndpointReportingEnabled   bool          `config:"bool;false"`
	EndpointReportingDelaySecs time.Duration `config:"seconds;1"`

	HealthEnabled bool `config:"bool;false"`
	// An empty value is invalid rather than "every address" (0.0.0.0 or ::).
	HealthHost string `config:"host-address;localhost;non-zero"`
	HealthPort int    `config:"int(0,65535);9099"`
	// DataplaneWatchdogTimeout: /liveness fails when felix's main loop has
	// not reported for this long.
	DataplaneWatchdogTimeout time.Duration `config:"seconds;90"`
	PrometheusMetricsEnabled bool          `config:"bool;false"`
	// Loopback unless set; an empty value is invalid rather than "every
	// address" (0.0.0.0 or ::). Calico's default is every address.
	PrometheusMetricsHost           string `config:"host-address;localhost;non-zero"`
	PrometheusMetricsPort           int    `config:"int(0,65535);9091"`
	PrometheusGoMetricsEnabled      bool   `config:"bool;true"`
	PrometheusProcessMetricsEnabled bool   `config:"bool;true"`
	// With PrometheusMetricsKeyFile, the metrics endpoint serves HTTPS. Read
	// once at start; a file that does not load stops felix rather than
	// falling back to plain HTTP.
	PrometheusMetricsCertFile string `config:"file;;local"`
	// The key of PrometheusMetricsCertFile.
	PrometheusMetricsKeyFile string `config:"file;;local"`
	// With the certificate and key set, the metrics endpoint checks client
	// certificates against this CA as PrometheusMetricsClientAuth says.
	PrometheusMetricsCAFile string `config:"file;;local"`
	// PrometheusMetricsClientAuth: how client certificates are checked;
	// empty = RequireAndVerifyClientCert when a CA is set (Calico's
	// default is NoClientCert).
	PrometheusMetricsClientAuth string `config:"oneof(RequireAndVerifyClientCert,RequireAnyClientCert,VerifyClientCertIfGiven,NoClientCert);;local"`

	// GoGCThreshold: the Go GC threshold (percent heap growth; -1 turns
	// the collector off, for use with GoMemoryLimitMB). The GOGC
	// environment variable, when set, wins.
	GoGCThreshold int `config:"int(-1,1000000);40;live"`
	// GoMemoryLimitMB: the Go runtime's soft memory limit (-1: none). The
	// GOMEMLIMIT environment variable, when set, wins.
	GoMemoryLimitMB int `config:"int(-1,100000000);-1;live"`
	// GoMaxProcs: the CPUs the Go runtime uses at once (-1: the system's
	// default). The GOMAXPROCS environment variable, when set, wins.
	GoMaxProcs int `config:"int(-1,100000);-1;live"`

	FailsafeInboundHostPorts  []dpapi.ProtoPort `config:"port-list;tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"`
	FailsafeOutboundHostPorts []dpapi.ProtoPort `config:"port-list;udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"`

	// Not parameters: set from flags by the caller.

	// ConfigFile is the INI file read ("" = none).
	ConfigFile string
	// NodenameFile holds the node name when no parameter or env gives it.
	NodenameFile string
	// RunDir holds per-host state (CALICO_RUN_DIR).
	RunDir string
	// MTUFile is where the pod MTU is written for the CNI plugin.
	MTUFile string
	// Datastore is the libcalico datastore spec from ETCD_* env, used
	// when EtcdEndpoints is not set.
	Datastore *apiconfig.Spec
	// GoRuntimeEnv names those of GOGC, GOMEMLIMIT and GOMAXPROCS the
	// environment sets: they win over GoGCThreshold, GoMemoryLimitMB and
	// GoMaxProcs.
	GoRuntimeEnv []string

	// sources records where each parameter's value came from.
	sources map[string]Source
	// refusals are the set parameters felix does not act on.
	refusals []Refusal
	loader   *Loader
}

// Refusals lists the parameters some source sets that felix does not act
// on (with a value that is not quiet): highest precedence source first,
// then by name. felix warns about each and counts them in the
// felix_config_unsupported metric.
func (c *Config) Refusals() []Refusal { return append([]Refusal(nil), c.refusals...) }

// Load reads env and the config file (see NewLoader) and resolves them.
func Load(opts Options, environ []string, log *logrus.Entry) (*Config, error) {
	l, err := NewLoader(opts, environ, log)
	if err != nil {
		return nil, err
	}
	return l.Config(), nil
}

// WithDatastore returns the config resolved again with the datastore's
// FelixConfiguration "default" and "node.<name>" (either may be nil). A
// Config not made by a Loader is returned as a copy.
func (c *Config) WithDatastore(global, node *v3.FelixConfiguration) *Config {
	if c.loader == nil {
		cp := *c
		return &cp
	}
	c.loader.SetDatastore(global, node)
	return c.loader.Config()
}

// SourceOf says where a parameter's value came from.
func (c *Config) SourceOf(param string) Source { return c.sources[strings.ToLower(param)] }

// Validate checks what single parameters cannot: the node name is known,
// ports do not collide and the metrics TLS files come as a set.
func (c *Config) Validate() error {
	var errs []error
	if c.FelixHostname == "" {
		errs = append(errs, errors.New("no node name: set NODENAME or FELIX_FELIXHOSTNAME"))
	}
	if c.HealthEnabled && c.PrometheusMetricsEnabled && c.HealthPort == c.PrometheusMetricsPort && c.HealthPort != 0 {
		errs = append(errs, fmt.Errorf("HealthPort and PrometheusMetricsPort are both %d", c.HealthPort))
	}
	if (c.PrometheusMetricsCertFile == "") != (c.PrometheusMetricsKeyFile == "") {
		errs = append(errs, errors.New("PrometheusMetricsCertFile and PrometheusMetricsKeyFile must be set together"))
	}
	if c.PrometheusMetricsCAFile != "" && c.PrometheusMetricsCertFile == "" {
		errs = append(errs, errors.New("PrometheusMetricsCAFile needs PrometheusMetricsCertFile and PrometheusMetricsKeyFile: client certificates are checked only over TLS"))
	}
	if c.ReportingIntervalSecs > 0 && c.ReportingTTLSecs > 0 && c.ReportingTTLSecs < c.ReportingIntervalSecs {
		errs = append(errs, fmt.Errorf("ReportingTTLSecs %v is shorter than ReportingIntervalSecs %v", c.ReportingTTLSecs, c.ReportingIntervalSecs))
	}
	if _, err := c.EtcdConfig(0); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// InterfacePrefixes splits InterfacePrefix ("cali,tap").
func (c *Config) InterfacePrefixes() []string {
	var out []string
	for _, p := range strings.Split(c.InterfacePrefix, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// EtcdConfig returns how to reach etcd: FELIX_ETCDENDPOINTS (with the
// Etcd*File parameters) when set, else the ETCD_* environment
// (Datastore), else EtcdScheme://EtcdAddr.
func (c *Config) EtcdConfig(timeout time.Duration) (etcd.Config, error) {
	if c.DatastoreType != "" && c.DatastoreType != apiconfig.DatastoreEtcdV3 {
		return etcd.Config{}, fmt.Errorf("datastore type %q is not supported", c.DatastoreType)
	}
	ec := etcd.Config{Endpoints: c.EtcdEndpoints, KeyFile: c.EtcdKeyFile, CertFile: c.EtcdCertFile, CACertFile: c.EtcdCaFile, Timeout: timeout}
	if len(ec.Endpoints) == 0 && c.Datastore != nil && c.SourceOf("EtcdAddr") == SourceDefault {
		ec = c.Datastore.EtcdConfig(timeout)
		ec.KeyFile = firstSet(c.EtcdKeyFile, ec.KeyFile)
		ec.CertFile = firstSet(c.EtcdCertFile, ec.CertFile)
		ec.CACertFile = firstSet(c.EtcdCaFile, ec.CACertFile)
	}
	if len(ec.Endpoints) == 0 {
		ec.Endpoints = []string{c.EtcdScheme + "://" + c.EtcdAddr}
	}
	return ec, nil
}

func firstSet(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// DataplaneConfig is what the dataplane needs.
func (c *Config) DataplaneConfig() dpapi.Config {
	title := func(s string) string {
		s = strings.ToLower(s)
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	}
	var natMin, natMax uint16
	if c.NATPortRange != "" {
		natMin, natMax, _ = ParsePortRange(c.NATPortRange)
	}
	exclude, _ := ParseInterfaceMatchers(c.InterfaceExclude)
	return dpapi.Config{
		Hostname:                    c.FelixHostname,
		InterfacePrefixes:           c.InterfacePrefixes(),
		DefaultEndpointToHostAction: title(c.DefaultEndpointToHostAction),
		FailsafeInbound:             c.FailsafeInboundHostPorts,
		FailsafeOutbound:            c.FailsafeOutboundHostPorts,
		IptablesBackend:             c.IptablesBackend,
		IptablesMarkMask:            c.IptablesMarkMask,
		IptablesRefreshInterval:     c.IptablesRefreshInterval,
		RouteRefreshInterval:        c.RouteRefreshInterval,
		IPSetsRefreshInterval:       c.IpsetsRefreshInterval,
		IPv6Support:                 c.Ipv6Support,
		LogPrefix:                   c.LogPrefix,
		LogRateLimit:                c.LogActionRateLimit,
		LogRateLimitBurst:           c.LogActionRateLimitBurst,
		VXLANVNI:                    c.VXLANVNI,
		VXLANPort:                   c.VXLANPort,
		VXLANMTU:                    c.VXLANMTU,
		VXLANMTUV6:                  c.VXLANMTUV6,
		MTUIfacePattern:             c.MTUIfacePattern,
		MTUFile:                     c.MTUFile,
		IPIPMTU:                     c.IpInIpMtu,
		NATOutgoingAddress:          c.NATOutgoingAddress,
		RouteProtocol:               c.DeviceRouteProtocol,

		ChainInsertMode:                strings.ToLower(c.ChainInsertMode),
		FilterAllowAction:              c.IptablesFilterAllowAction,
		MangleAllowAction:              c.IptablesMangleAllowAction,
		FilterDenyAction:               c.IptablesFilterDenyAction,
		DisableConntrackInvalidCheck:   c.DisableConntrackInvalidCheck,
		AllowVXLANPacketsFromWorkloads: c.AllowVXLANPacketsFromWorkloads,
		AllowIPIPPacketsFromWorkloads:  c.AllowIPIPPacketsFromWorkloads,
		WorkloadSourceSpoofing:         strings.EqualFold(c.WorkloadSourceSpoofing, "Any"),
		FloatingIPs:                    strings.EqualFold(c.FloatingIPs, "Enabled"),
		ServiceLoopPrevention:          c.ServiceLoopPrevention,
		NATOutgoingExclusions:          c.NATOutgoingExclusions,
		NATPortMin:                     natMin,
		NATPortMax:                     natMax,
		NATOutgoingInterfaceFilter:     c.IptablesNATOutgoingInterfaceFilter,
		ExternalNodes:                  c.ExternalNodesCIDRList,
		VXLANEnabled:                   c.VXLANEnabled,
		IPIPEnabled:                    c.IpInIpEnabled,
		InterfaceExclude:               exclude,
		InterfaceRefreshInterval:       c.InterfaceRefreshInterval,
		MaxIPSetSize:                   c.MaxIpsetSize,
		KeepExternalRoutes:             !c.RemoveExternalRoutes,
		RouteSource:                    c.RouteSource,
		DeviceRouteSourceAddress:       c.DeviceRouteSourceAddress,
		DeviceRouteSourceAddressV6:     c.DeviceRouteSourceAddressIPv6,
		RouteTableRanges:               c.routeTableRanges(),
		IPForwardingDisabled:           strings.EqualFold(c.IPForwarding, "Disabled"),
	}
}

// routeTableRanges is RouteTableRanges, else the deprecated
// RouteTableRange, else Calico's default 1-250.
func (c *Config) routeTableRanges() []dpapi.TableRange {
	raw := c.RouteTableRanges
	if raw == "" {
		raw = c.RouteTableRange
	}
	if raw == "" {
		raw = "1-250"
	}
	rs, err := ParseRouteTableRanges(raw)
	if err != nil {
		return []dpapi.TableRange{{Min: 1, Max: 250}}
	}
	out := make([]dpapi.TableRange, len(rs))
	for i, r := range rs {
		out[i] = dpapi.TableRange{Min: r.Min, Max: r.Max}
	}
	return out
}
