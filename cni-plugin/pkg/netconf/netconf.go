// Package netconf parses the network configuration Calico's CNI plugins
// (calico and calico-ipam) read from stdin, with Calico's field names, and
// derives from it what both need: the node name, the datastore and the
// logger.
package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
)

// Defaults as in Calico.
const (
	DefaultNodenameFile = "/var/lib/calico/nodename"
	DefaultRunDir       = "/var/run/calico"
	// LockFileName is the host-wide IPAM lock under the run directory.
	LockFileName = "ipam.lock"
)

// IPAM is the "ipam" section.
type IPAM struct {
	Type string `json:"type"`
	// AssignIPv4 and AssignIPv6 are "true" or "false" (strings, as in
	// Calico); IPv4 defaults to on, IPv6 to off.
	AssignIPv4 *string  `json:"assign_ipv4,omitempty"`
	AssignIPv6 *string  `json:"assign_ipv6,omitempty"`
	IPv4Pools  []string `json:"ipv4_pools,omitempty"`
	IPv6Pools  []string `json:"ipv6_pools,omitempty"`
	// Subnet is accepted for compatibility; "usePodCidr" is not supported.
	Subnet string `json:"subnet,omitempty"`
}

// NetConf is the network configuration. The calico plugin embeds it in
// its own type to add the fields only it reads.
type NetConf struct {
	CNIVersion string `json:"cniVersion,omitempty"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	IPAM       IPAM   `json:"ipam,omitempty"`
	MTU        int    `json:"mtu,omitempty"`

	Nodename             string `json:"nodename,omitempty"`
	NodenameFile         string `json:"nodename_file,omitempty"`
	NodenameFileOptional bool   `json:"nodename_file_optional,omitempty"`

	DatastoreType  string `json:"datastore_type,omitempty"`
	EtcdEndpoints  string `json:"etcd_endpoints,omitempty"`
	EtcdKeyFile    string `json:"etcd_key_file,omitempty"`
	EtcdCertFile   string `json:"etcd_cert_file,omitempty"`
	EtcdCACertFile string `json:"etcd_ca_cert_file,omitempty"`
	EtcdUsername   string `json:"etcd_username,omitempty"`
	EtcdPassword   string `json:"etcd_password,omitempty"`

	// IPAMLockFile overrides <run dir>/ipam.lock.
	IPAMLockFile string `json:"ipam_lock_file,omitempty"`

	LogLevel    string `json:"log_level,omitempty"`
	LogFilePath string `json:"log_file_path,omitempty"`

	RawPrevResult    map[string]any       `json:"prevResult,omitempty"`
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
}

// Parse decodes and checks a network configuration.
func Parse(data []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parsing network config: %w", err)
	}
	if c.Name == "" {
		return nil, errors.New("network config has no name")
	}
	switch c.DatastoreType {
	case "", apiconfig.DatastoreEtcdV3:
	default:
		return nil, fmt.Errorf("datastore_type %q is not supported (use %s)", c.DatastoreType, apiconfig.DatastoreEtcdV3)
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"assign_ipv4", c.IPAM.AssignIPv4}, {"assign_ipv6", c.IPAM.AssignIPv6}} {
		if f.v != nil && *f.v != "true" && *f.v != "false" {
			return nil, fmt.Errorf("ipam.%s must be \"true\" or \"false\", not %q", f.name, *f.v)
		}
	}
	if c.IPAM.Subnet == "usePodCidr" {
		return nil, errors.New("ipam.subnet usePodCidr needs the Kubernetes datastore, which is not supported")
	}
	if _, err := c.logLevel(); err != nil {
		return nil, err
	}
	return &c, nil
}

// WantIPv4 reports whether ADD assigns an IPv4 address (default yes).
func (c *NetConf) WantIPv4() bool { return c.IPAM.AssignIPv4 == nil || *c.IPAM.AssignIPv4 == "true" }

// WantIPv6 reports whether ADD assigns an IPv6 address (default no).
func (c *NetConf) WantIPv6() bool { return c.IPAM.AssignIPv6 != nil && *c.IPAM.AssignIPv6 == "true" }

// HandleID is the IPAM handle of a container's addresses on a network.
func HandleID(network, containerID string) string { return network + "." + containerID }

// NodeName returns, as Calico does, the "nodename" field, else the
// contents of nodename_file (default /var/lib/calico/nodename), else the
// lower-cased hostname. A nodename_file named explicitly and not marked
// optional must be readable.
func (c *NetConf) NodeName() (string, error) {
	if c.Nodename != "" {
		return c.Nodename, nil
	}
	file := c.NodenameFile
	if file == "" {
		file = DefaultNodenameFile
	}
	data, err := os.ReadFile(file)
	switch {
	case err == nil && strings.TrimSpace(string(data)) != "":
		return strings.TrimSpace(string(data)), nil
	case c.NodenameFile != "" && !c.NodenameFileOptional:
		return "", fmt.Errorf("reading nodename_file %s (is calico running on this host?): %w", file, err)
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("determining node name: %w", err)
	}
	return strings.ToLower(strings.TrimSpace(h)), nil
}

// LockFile is the host-wide IPAM lock: ipam_lock_file, else
// $CALICO_RUN_DIR/ipam.lock (default /var/run/calico/ipam.lock).
func (c *NetConf) LockFile(getenv func(string) string) string {
	if c.IPAMLockFile != "" {
		return c.IPAMLockFile
	}
	dir := getenv("CALICO_RUN_DIR")
	if dir == "" {
		dir = DefaultRunDir
	}
	return filepath.Join(dir, LockFileName)
}

// Datastore returns the etcd settings: the config's etcd_* fields over
// the environment (ETCD_ENDPOINTS, ... as calicoctl reads them).
func (c *NetConf) Datastore(getenv func(string) string, timeout time.Duration) (etcd.Config, error) {
	fromConf := map[string]string{
		"ETCD_ENDPOINTS":    c.EtcdEndpoints,
		"ETCD_KEY_FILE":     c.EtcdKeyFile,
		"ETCD_CERT_FILE":    c.EtcdCertFile,
		"ETCD_CA_CERT_FILE": c.EtcdCACertFile,
		"ETCD_USERNAME":     c.EtcdUsername,
		"ETCD_PASSWORD":     c.EtcdPassword,
		"DATASTORE_TYPE":    c.DatastoreType,
	}
	spec, err := apiconfig.FromEnv(func(k string) string {
		if v := fromConf[strings.TrimPrefix(k, "CALICO_")]; v != "" {
			return v
		}
		return getenv(k)
	})
	if err != nil {
		return etcd.Config{}, fmt.Errorf("datastore settings: %w", err)
	}
	return spec.EtcdConfig(timeout), nil
}

func (c *NetConf) logLevel() (logrus.Level, error) {
	if c.LogLevel == "" {
		return logrus.InfoLevel, nil
	}
	l, err := logrus.ParseLevel(c.LogLevel)
	if err != nil {
		return 0, fmt.Errorf("log_level %q: %w", c.LogLevel, err)
	}
	return l, nil
}

// Logger returns a logger at log_level (default info) writing to stderr
// and, when log_file_path is set, appending to that file too. Close the
// returned closer when done.
func (c *NetConf) Logger(stderr io.Writer) (*logrus.Entry, io.Closer, error) {
	lvl, err := c.logLevel()
	if err != nil {
		return nil, nil, err
	}
	l := logrus.New()
	l.SetLevel(lvl)
	l.SetOutput(stderr)
	var closer io.Closer = io.NopCloser(nil)
	if c.LogFilePath != "" {
		if err := os.MkdirAll(filepath.Dir(c.LogFilePath), 0o755); err != nil {
			return nil, nil, fmt.Errorf("creating log directory: %w", err)
		}
		f, err := os.OpenFile(c.LogFilePath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("opening log file: %w", err)
		}
		l.SetOutput(io.MultiWriter(stderr, f))
		closer = f
	}
	return logrus.NewEntry(l), closer, nil
}

// Opened is what a plugin needs for one request: its logger, this node's
// name and an etcd backend bounded by the configured timeouts.
type Opened struct {
	Log     *logrus.Entry
	Node    string
	Backend *etcd.Client
}

// Open resolves the logger, node name and datastore of the configuration
// and connects; close releases the log file. It is for a plugin process,
// which exits right after its one request.
func (c *NetConf) Open(getenv func(string) string, stderr io.Writer) (*Opened, func(), error) {
	// The connection comes up in the background while the rest is read.
	cfg, err := c.Datastore(getenv, 0)
	if err != nil {
		return nil, nil, err
	}
	be, err := etcd.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to etcd: %w", err)
	}
	log, logCloser, err := c.Logger(stderr)
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	node, err := c.NodeName()
	if err != nil {
		be.Close()
		logCloser.Close()
		return nil, nil, err
	}
	// The plugin process exits as soon as it has answered, and the
	// kernel closes its etcd connection then: closing it first, gracefully,
	// would add about half a millisecond to every request.
	return &Opened{Log: log, Node: node, Backend: be}, func() { logCloser.Close() }, nil
}

// SupportedVersions are the CNI spec versions the plugins speak.
var SupportedVersions = version.PluginSupports("0.3.1", "0.4.0", "1.0.0", "1.1.0")

// PluginMain is the main of a plugin binary: it answers -v/--version and
// otherwise hands each CNI verb to run through skel.
func PluginMain(name string, run func(args *skel.CmdArgs, verb string) error) {
	for _, a := range os.Args[1:] {
		if a == "-v" || a == "--version" || a == "version" {
			fmt.Println(buildinfo.String(name))
			return
		}
	}
	verb := func(v string) func(*skel.CmdArgs) error {
		return func(a *skel.CmdArgs) error { return run(a, v) }
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: verb("ADD"), Del: verb("DEL"), Check: verb("CHECK"), GC: verb("GC"), Status: verb("STATUS"),
	}, SupportedVersions, buildinfo.String(name))
}
