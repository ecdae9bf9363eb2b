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
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/sirupsen/logrus"
	"gopkg.in/natefinch/lumberjack.v2"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/buildinfo"

	"github.com/calico-etcd/calico/cni-plugin/pkg/agent"
)

// Defaults as in Calico.
const (
	DefaultNodenameFile = "/var/lib/calico/nodename"
	DefaultRunDir       = "/var/run/calico"
	// LockFileName is the host-wide IPAM lock under the run directory.
	LockFileName = "ipam.lock"
	// Log file rotation, as Calico's plugin: size in megabytes, age in
	// days, and the number of rotated files kept.
	DefaultLogFileMaxSize  = 100
	DefaultLogFileMaxAge   = 30
	DefaultLogFileMaxCount = 10
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
	// LogFileMaxSize (megabytes), LogFileMaxAge (days) and
	// LogFileMaxCount (rotated files kept) rotate log_file_path; 0 is
	// the default (100, 30, 10).
	LogFileMaxSize  int `json:"log_file_max_size,omitempty"`
	LogFileMaxAge   int `json:"log_file_max_age,omitempty"`
	LogFileMaxCount int `json:"log_file_max_count,omitempty"`

	RawPrevResult    map[string]any       `json:"prevResult,omitempty"`
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
}

// Parse decodes and checks a network configuration: a name CNI allows
// (it is part of every IPAM handle's etcd key), a valid ipam section and
// log settings.
func Parse(data []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parsing network config: %w", err)
	}
	if c.Name == "" {
		return nil, errors.New("network config has no name")
	}
	if e := utils.ValidateNetworkName(c.Name); e != nil {
		return nil, fmt.Errorf("network name %q: %s", c.Name, e.Msg)
	}
	switch c.DatastoreType {
	case "", apiconfig.DatastoreEtcdV3:
	default:
		return nil, fmt.Errorf("datastore_type %q is not supported (use %s)", c.DatastoreType, apiconfig.DatastoreEtcdV3)
	}
	if err := c.IPAM.Validate(); err != nil {
		return nil, err
	}
	if _, err := c.logLevel(); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"log_file_max_size", c.LogFileMaxSize}, {"log_file_max_age", c.LogFileMaxAge}, {"log_file_max_count", c.LogFileMaxCount}} {
		if f.v < 0 {
			return nil, fmt.Errorf("%s must not be negative, not %d", f.name, f.v)
		}
	}
	return &c, nil
}

// CalicoIPAM is the ipam type of calico-ipam.
const CalicoIPAM = "calico-ipam"

// Validate checks the ipam section: assign_ipv4 and assign_ipv6 are
// "true" or "false", pools are named (an IPv4 pool given by CIDR in
// ipv4_pools, IPv6 in ipv6_pools), and calico-ipam (type "calico-ipam",
// or none, as calico-ipam itself may be given) assigns at least one
// family. Another type's fields are its own business.
func (i *IPAM) Validate() error {
	for _, f := range []struct {
		name string
		v    *string
	}{{"assign_ipv4", i.AssignIPv4}, {"assign_ipv6", i.AssignIPv6}} {
		if f.v != nil && *f.v != "true" && *f.v != "false" {
			return fmt.Errorf("ipam.%s must be \"true\" or \"false\", not %q", f.name, *f.v)
		}
	}
	if i.Subnet == "usePodCidr" {
		return errors.New("ipam.subnet usePodCidr needs the Kubernetes datastore, which is not supported")
	}
	if i.Type != "" && i.Type != CalicoIPAM {
		return nil
	}
	if !i.WantIPv4() && !i.WantIPv6() {
		return errors.New("ipam assigns neither IPv4 nor IPv6: assign_ipv4 and assign_ipv6 are both \"false\"")
	}
	for _, f := range []struct {
		name  string
		pools []string
		v4    bool
	}{{"ipv4_pools", i.IPv4Pools, true}, {"ipv6_pools", i.IPv6Pools, false}} {
		for _, p := range f.pools {
			if strings.TrimSpace(p) == "" {
				return fmt.Errorf("ipam.%s has an empty pool name", f.name)
			}
			if c, err := netip.ParsePrefix(p); err == nil && c.Addr().Is4() != f.v4 {
				return fmt.Errorf("ipam.%s names %s, a pool of the other IP version", f.name, p)
			}
		}
	}
	return nil
}

// WantIPv4 reports whether ADD assigns an IPv4 address (default yes).
func (c *NetConf) WantIPv4() bool { return c.IPAM.WantIPv4() }

// WantIPv6 reports whether ADD assigns an IPv6 address (default no).
func (c *NetConf) WantIPv6() bool { return c.IPAM.WantIPv6() }

// WantIPv4 reports whether calico-ipam assigns an IPv4 address (default
// yes).
func (i *IPAM) WantIPv4() bool { return i.AssignIPv4 == nil || *i.AssignIPv4 == "true" }

// WantIPv6 reports whether calico-ipam assigns an IPv6 address (default
// no).
func (i *IPAM) WantIPv6() bool { return i.AssignIPv6 != nil && *i.AssignIPv6 == "true" }

// ValidateContainerID checks CNI_CONTAINERID as skel does for the
// binaries, for callers in-process: empty or with characters CNI forbids
// (it is part of the IPAM handle's etcd key) is CNI error 4.
func ValidateContainerID(id string) error {
	if id == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID is empty: a container ID is required", "")
	}
	if e := utils.ValidateContainerID(id); e != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_CONTAINERID %q: %s", id, e.Msg), "")
	}
	return nil
}

// ValidateNodeName checks a node name as Calico validates a Node's name
// (a DNS-1123 subdomain): every IPAM block affinity and endpoint is keyed
// by it, so a bad one must stop a request before it claims anything.
func ValidateNodeName(node string) error {
	n := v3.NewNode()
	n.Name = node
	if err := n.Validate(); err != nil {
		return fmt.Errorf("node name %q is not a valid Calico node name (set nodename or nodename_file): %w", node, err)
	}
	return nil
}

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
	return filepath.Join(RunDir(getenv), LockFileName)
}

// RunDir is the host's Calico run directory: $CALICO_RUN_DIR, default
// /var/run/calico. Of the lock file's directories it is the only one the
// plugins create.
func RunDir(getenv func(string) string) string {
	if dir := getenv("CALICO_RUN_DIR"); dir != "" {
		return dir
	}
	return DefaultRunDir
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
	cfg := spec.EtcdConfig(timeout)
	for _, ep := range cfg.Endpoints {
		if err := validEndpoint(ep); err != nil {
			return etcd.Config{}, err
		}
	}
	return cfg, nil
}

// validEndpoint checks an etcd endpoint up front: one without a host
// ("http://") would otherwise cost the whole dial timeout.
func validEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" && u.Opaque == "" {
		return nil
	}
	return fmt.Errorf("etcd endpoint %q is not valid: want http:// or https:// and a host, as in http://127.0.0.1:2379", ep)
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
// and, when log_file_path is set, appending to that file too, rotated as
// Calico's plugin rotates it (see logFile). Close the returned closer
// when done.
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
		// As Calico's plugin: the directory is made here, so that a bad
		// path fails the request rather than every log line.
		if err := os.MkdirAll(filepath.Dir(c.LogFilePath), 0o755); err != nil {
			return nil, nil, fmt.Errorf("creating log directory: %w", err)
		}
		f := c.logFile()
		l.SetOutput(io.MultiWriter(stderr, f))
		closer = f
	}
	return logrus.NewEntry(l), closer, nil
}

// logFile is log_file_path with Calico's rotation: a file reaching
// log_file_max_size megabytes is renamed with a timestamp and a new one
// started; rotated files older than log_file_max_age days, or beyond
// the log_file_max_count newest, are removed. It opens the file on the
// first write.
func (c *NetConf) logFile() *lumberjack.Logger {
	or := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	return &lumberjack.Logger{
		Filename:   c.LogFilePath,
		MaxSize:    or(c.LogFileMaxSize, DefaultLogFileMaxSize),
		MaxAge:     or(c.LogFileMaxAge, DefaultLogFileMaxAge),
		MaxBackups: or(c.LogFileMaxCount, DefaultLogFileMaxCount),
	}
}

// Opened is what a plugin needs for one request: its logger, this node's
// name and an etcd backend bounded by the configured timeouts.
type Opened struct {
	Log     *logrus.Entry
	Node    string
	Backend *etcd.Client
}

// Open resolves the logger, node name and datastore of the configuration
// and connects, or, with backends (calico-cni-agent), takes the
// connection kept for that datastore; close releases the log file.
// Without backends it is for a plugin process, which exits right after
// its one request.
func (c *NetConf) Open(getenv func(string) string, stderr io.Writer, backends *Backends) (*Opened, func(), error) {
	// The connection comes up in the background while the rest is read.
	cfg, err := c.Datastore(getenv, 0)
	if err != nil {
		return nil, nil, err
	}
	var be *etcd.Client
	if backends != nil {
		be, err = backends.Get(cfg)
	} else {
		be, err = etcd.New(cfg)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to etcd: %w", err)
	}
	closeBackend := func() {
		if backends == nil {
			be.Close()
		}
	}
	log, logCloser, err := c.Logger(stderr)
	if err != nil {
		closeBackend()
		return nil, nil, err
	}
	node, err := c.NodeName()
	if err == nil {
		err = ValidateNodeName(node)
	}
	if err != nil {
		closeBackend()
		logCloser.Close()
		return nil, nil, err
	}
	// The plugin process exits as soon as it has answered, and the
	// kernel closes its etcd connection then: closing it first, gracefully,
	// would add about half a millisecond to every request.
	return &Opened{Log: log, Node: node, Backend: be}, func() { logCloser.Close() }, nil
}

// Backends keeps one etcd client per datastore configuration, for a
// process serving many requests (calico-cni-agent). A client reconnects
// by itself after an outage; a changed certificate file needs a restart.
type Backends struct {
	mu      sync.Mutex
	clients map[backendKey]*etcd.Client
}

// backendKey is what identifies a datastore configuration.
type backendKey struct {
	endpoints, key, cert, ca, user, password string
	timeout                                  time.Duration
}

// Get returns the client for cfg, connecting the first time.
func (b *Backends) Get(cfg etcd.Config) (*etcd.Client, error) {
	k := backendKey{strings.Join(cfg.Endpoints, ","), cfg.KeyFile, cfg.CertFile, cfg.CACertFile,
		cfg.Username, cfg.Password, cfg.Timeout}
	b.mu.Lock()
	defer b.mu.Unlock()
	if be := b.clients[k]; be != nil {
		return be, nil
	}
	be, err := etcd.New(cfg)
	if err != nil {
		return nil, err
	}
	if b.clients == nil {
		b.clients = map[backendKey]*etcd.Client{}
	}
	b.clients[k] = be
	return be, nil
}

// Close closes every client.
func (b *Backends) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, be := range b.clients {
		be.Close()
		delete(b.clients, k)
	}
}

// SupportedVersions are the CNI spec versions the plugins speak.
var SupportedVersions = agent.SupportedVersions

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
