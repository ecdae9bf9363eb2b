// Package config is felix's configuration: the parameters that matter to
// this implementation, with Calico's names and defaults, loaded from five
// sources in precedence order:
//
//	env FELIX_<NAME> > config file ([global] of felix.cfg) >
//	FelixConfiguration node.<name> > FelixConfiguration default > built-in
//
// A value that does not parse is logged (parameter, value, source) and the
// next source down is used. Only this package reads the environment and
// the file; the rest of felix gets a *Config.
package config

import (
	"errors"
	"fmt"
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
// parameters, named as in Calico: "kind;default;flags". Flags: local (not
// settable from the datastore), non-zero (empty is invalid), live (a
// change is applied without a restart).
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

	Ipv6Support              bool          `config:"bool;true"`
	IptablesBackend          string        `config:"oneof(legacy,nft,auto);auto"`
	RouteRefreshInterval     time.Duration `config:"seconds;90"`
	InterfaceRefreshInterval time.Duration `config:"seconds;90"`
	IptablesRefreshInterval  time.Duration `config:"seconds;90"`
	IpsetsRefreshInterval    time.Duration `config:"seconds;10"`
	DeviceRouteProtocol      int           `config:"int(0,255);3"`
	MaxIpsetSize             int           `config:"int;1048576;non-zero"`
	InterfacePrefix          string        `config:"iface-list;cali;non-zero"`
	ChainInsertMode          string        `config:"oneof(insert,append);insert;non-zero"`

	DefaultEndpointToHostAction string `config:"oneof(DROP,RETURN,ACCEPT);DROP;non-zero"`
	IptablesFilterAllowAction   string `config:"oneof(ACCEPT,RETURN);ACCEPT;non-zero"`
	IptablesMangleAllowAction   string `config:"oneof(ACCEPT,RETURN);ACCEPT;non-zero"`
	IptablesMarkMask            uint32 `config:"mark-bitmask;0xffff0000;non-zero"`
	LogPrefix                   string `config:"string;calico-packet"`

	LogFilePath       string `config:"file;;"`
	LogSeverityFile   string `config:"oneof(DEBUG,INFO,WARNING,ERROR,FATAL);INFO;live"`
	LogSeverityScreen string `config:"oneof(DEBUG,INFO,WARNING,ERROR,FATAL);INFO;live"`
	LogSeveritySys    string `config:"oneof(DEBUG,INFO,WARNING,ERROR,FATAL);INFO;live"`

	VXLANEnabled       bool   `config:"bool;false"`
	VXLANPort          int    `config:"int(1,65535);4789"`
	VXLANVNI           int    `config:"int(1,16777215);4096"`
	VXLANMTU           int    `config:"int(0,65535);0"`
	VXLANMTUV6         int    `config:"int(0,65535);0"`
	IpInIpEnabled      bool   `config:"bool;false"`
	IpInIpMtu          int    `config:"int(0,65535);0"`
	NATOutgoingAddress string `config:"ipv4;"`
	// MTUIfacePattern selects the host interfaces whose smallest MTU (of
	// those up) is the host MTU, from which the pod MTU is worked out.
	MTUIfacePattern string `config:"regexp;^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)"`

	ReportingIntervalSecs      time.Duration `config:"seconds;30"`
	ReportingTTLSecs           time.Duration `config:"seconds;90"`
	EndpointReportingEnabled   bool          `config:"bool;false"`
	EndpointReportingDelaySecs time.Duration `config:"seconds;1"`

	HealthEnabled bool `config:"bool;false"`
	// An empty value is invalid rather than "every address" (0.0.0.0 or ::).
	HealthHost               string `config:"host-address;localhost;non-zero"`
	HealthPort               int    `config:"int(0,65535);9099"`
	PrometheusMetricsEnabled bool   `config:"bool;false"`
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
	// With the certificate and key set, the metrics endpoint requires
	// client certificates that this CA signed.
	PrometheusMetricsCAFile string `config:"file;;local"`

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

	// sources records where each parameter's value came from.
	sources map[string]Source
	loader  *Loader
}

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
		VXLANVNI:                    c.VXLANVNI,
		VXLANPort:                   c.VXLANPort,
		VXLANMTU:                    c.VXLANMTU,
		VXLANMTUV6:                  c.VXLANMTUV6,
		MTUIfacePattern:             c.MTUIfacePattern,
		MTUFile:                     c.MTUFile,
		IPIPMTU:                     c.IpInIpMtu,
		NATOutgoingAddress:          c.NATOutgoingAddress,
		RouteProtocol:               c.DeviceRouteProtocol,
	}
}
