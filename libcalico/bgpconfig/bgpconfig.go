// Package bgpconfig is the file confd writes and bgpd reads: one node's
// complete BGP configuration, as JSON. It is this project's own format (not
// BIRD's): confd resolves every Calico resource (Node, BGPConfiguration,
// BGPPeer, BGPFilter, IPPool, block affinities, secrets) into plain values,
// so bgpd needs no datastore and no selector logic.
//
//	etcd ── confd (calculation) ── $CALICO_RUN_DIR/bgpd.json ── bgpd (gobgp, netlink)
//
// The file is replaced atomically (write to a temporary file, rename) and
// only when its bytes change; confd then sends bgpd SIGHUP (see the confd
// and bgpd package docs). Version guards the format: bgpd rejects a file
// whose Version it does not know.
package bgpconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// FormatVersion is the current Config.Version.
const FormatVersion = 1

// FileName is the config file's name inside the run directory.
const FileName = "bgpd.json"

// PidfileName is bgpd's pidfile in the run directory; confd signals the
// process it names to reload.
const PidfileName = "bgpd.pid"

// RunDir resolves a run directory: dir, else $CALICO_RUN_DIR, else
// bgpstatus.DefaultRunDir.
func RunDir(dir string) string {
	if dir == "" {
		dir = os.Getenv("CALICO_RUN_DIR")
	}
	if dir == "" {
		dir = bgpstatus.DefaultRunDir
	}
	return dir
}

// Path returns the config file's path in RunDir(runDir).
func Path(runDir string) string { return filepath.Join(RunDir(runDir), FileName) }

// PidfilePath returns bgpd's pidfile path in RunDir(runDir).
func PidfilePath(runDir string) string { return filepath.Join(RunDir(runDir), PidfileName) }

// Peer types, as `calicoctl node status` prints them.
const (
	PeerTypeMesh   = bgpstatus.PeerTypeMesh
	PeerTypeGlobal = bgpstatus.PeerTypeGlobal
	PeerTypeNode   = bgpstatus.PeerTypeNode
)

// Next hop modes of a peer.
const (
	// NextHopAuto: BGP's default (self for eBGP, unchanged for iBGP).
	NextHopAuto = ""
	// NextHopSelf: always this node.
	NextHopSelf = "self"
	// NextHopKeep: never rewrite (keepOriginalNextHop).
	NextHopKeep = "keep"
)

// Config is one node's BGP configuration.
type Config struct {
	// Version is FormatVersion.
	Version int `json:"version"`
	// NodeName is the Calico node this configuration is for.
	NodeName string `json:"nodeName"`
	// RouterID is the BGP router ID (the node's IPv4 address, or a stable
	// hash of the node name for IPv6-only nodes).
	RouterID string `json:"routerID"`
	// ASNumber is the node's AS.
	ASNumber uint32 `json:"asNumber"`
	// ListenPort is the BGP port (179 unless configured).
	ListenPort uint16 `json:"listenPort"`
	// ListenAddresses limits the listening sockets (bindMode NodeIP);
	// empty means all addresses.
	ListenAddresses []string `json:"listenAddresses,omitempty"`
	// NodeIPv4 and NodeIPv6 are the node's BGP addresses with their
	// prefix lengths ("172.31.255.11/24"); either may be empty.
	NodeIPv4 string `json:"nodeIPv4,omitempty"`
	NodeIPv6 string `json:"nodeIPv6,omitempty"`
	// LogLevel is BGPConfiguration logSeverityScreen, lower case.
	LogLevel string `json:"logLevel,omitempty"`
	// RoutePriority4 and RoutePriority6 are the kernel metrics of the
	// routes bgpd programs (BGPConfiguration ipv4/ipv6NormalRoutePriority);
	// a metric other than felix's and the host's (0) means bgpd never
	// replaces their routes. 0 means the kernel default.
	RoutePriority4 int `json:"routePriority4,omitempty"`
	RoutePriority6 int `json:"routePriority6,omitempty"`
	// IgnoredInterfaces name interfaces (globs) whose routes are never
	// advertised.
	IgnoredInterfaces []string `json:"ignoredInterfaces,omitempty"`
	// Peers are the BGP sessions, sorted by address.
	Peers []Peer `json:"peers"`
	// Pools are every IP pool, sorted by CIDR: they decide what may be
	// exported and how learned routes are programmed.
	Pools []Pool `json:"pools"`
	// Blocks are the IPAM blocks affine to this node, sorted: each gets a
	// blackhole route and, when Export is set, is advertised.
	Blocks []Block `json:"blocks"`
	// Communities are attached to advertised routes within a CIDR.
	Communities []PrefixCommunities `json:"communities,omitempty"`
}

// Peer is one BGP session.
type Peer struct {
	// Name says where the session comes from: "Mesh_172_31_255_12",
	// "Global_<bgppeer>", "Node_<bgppeer>".
	Name string `json:"name"`
	// Address is the peer's IP; Port its BGP port (0 = 179).
	Address string `json:"address"`
	Port    uint16 `json:"port,omitempty"`
	// ASNumber is the peer's AS; LocalASNumber overrides Config.ASNumber
	// for this session when non-zero.
	ASNumber      uint32 `json:"asNumber"`
	LocalASNumber uint32 `json:"localASNumber,omitempty"`
	// Type is PeerTypeMesh, PeerTypeGlobal or PeerTypeNode.
	Type string `json:"type"`
	// Passive: wait for the peer to connect. Between two Calico nodes
	// only the side whose address is higher as a string connects, as
	// Calico's BIRD template decides.
	Passive bool `json:"passive,omitempty"`
	// RouteReflectorClient makes the peer a client of this node, a route
	// reflector with ClusterID.
	RouteReflectorClient bool   `json:"routeReflectorClient,omitempty"`
	ClusterID            string `json:"clusterID,omitempty"`
	// Password enables TCP MD5 authentication.
	Password string `json:"password,omitempty"`
	// RestartTime is the graceful restart time in seconds.
	RestartTime uint32 `json:"restartTime"`
	// KeepaliveTime is the keepalive interval in seconds (0 = default);
	// the hold time is three times it.
	KeepaliveTime uint32 `json:"keepaliveTime,omitempty"`
	// NextHop is NextHopAuto, NextHopSelf or NextHopKeep.
	NextHop string `json:"nextHop,omitempty"`
	// SourceAddress is the local address of the session; empty lets the
	// kernel choose.
	SourceAddress string `json:"sourceAddress,omitempty"`
	// Multihop allows an eBGP peer that is not on a connected subnet.
	Multihop bool `json:"multihop,omitempty"`
	// TTLSecurity, when non-zero, is the GTSM hop count.
	TTLSecurity uint8 `json:"ttlSecurity,omitempty"`
	// AllowOwnAS accepts routes with this node's AS in their path this
	// many times.
	AllowOwnAS uint8 `json:"allowOwnAS,omitempty"`
	// ImportRules and ExportRules are the peer's BGPFilter rules, in
	// order, already narrowed to the peer's address family and BGP type.
	// The first matching rule decides; when none matches, the default
	// applies (import: accept; export: the pool rules).
	ImportRules []FilterRule `json:"importRules,omitempty"`
	ExportRules []FilterRule `json:"exportRules,omitempty"`
}

// Filter rule match operators and actions (Calico's names).
const (
	MatchEqual    = "Equal"
	MatchNotEqual = "NotEqual"
	MatchIn       = "In"
	MatchNotIn    = "NotIn"
	ActionAccept  = "Accept"
	ActionReject  = "Reject"
	// SourceRemotePeers matches routes learned from BGP peers.
	SourceRemotePeers = "RemotePeers"
)

// FilterRule is one BGPFilter rule.
type FilterRule struct {
	// Filter names the BGPFilter the rule came from.
	Filter string `json:"filter"`
	// CIDR and MatchOperator match the route's prefix; PrefixLengthMin and
	// PrefixLengthMax (0 = unset) narrow an In match.
	CIDR            string `json:"cidr,omitempty"`
	MatchOperator   string `json:"matchOperator,omitempty"`
	PrefixLengthMin int    `json:"prefixLengthMin,omitempty"`
	PrefixLengthMax int    `json:"prefixLengthMax,omitempty"`
	// Source is "" or SourceRemotePeers.
	Source string `json:"source,omitempty"`
	// Interface is accepted for completeness; bgpd cannot match on it and
	// treats such a rule as never matching.
	Interface string `json:"interface,omitempty"`
	// Communities matches routes carrying any of these communities.
	Communities []string `json:"communities,omitempty"`
	// ASPathPrefix matches routes whose AS path starts with these ASes.
	ASPathPrefix []uint32 `json:"asPathPrefix,omitempty"`
	// Action is ActionAccept or ActionReject.
	Action string `json:"action"`
	// AddCommunities and PrependASPath change a matching route.
	AddCommunities []string `json:"addCommunities,omitempty"`
	PrependASPath  []uint32 `json:"prependASPath,omitempty"`
}

// Pool is an IP pool as bgpd needs it.
type Pool struct {
	CIDR string `json:"cidr"`
	// Export: routes within the pool may be advertised (the pool is
	// enabled and BGP export is not disabled).
	Export bool `json:"export"`
	// IPIPMode and VXLANMode are "", "Always" or "CrossSubnet".
	IPIPMode  string `json:"ipipMode,omitempty"`
	VXLANMode string `json:"vxlanMode,omitempty"`
}

// Block is an IPAM block affine to this node.
type Block struct {
	CIDR string `json:"cidr"`
	// Export: the block lies in an exportable pool.
	Export bool `json:"export"`
}

// PrefixCommunities attaches community values ("aa:nn" standard or
// "aa:nn:mm" large) to routes within CIDR.
type PrefixCommunities struct {
	CIDR        string   `json:"cidr"`
	Communities []string `json:"communities"`
}

// Marshal renders c in its canonical form: indented JSON with a final
// newline, so equal configs have equal bytes.
func Marshal(c *Config) ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Unmarshal parses and validates a config.
func Unmarshal(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decoding bgp config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading bgp config: %w", err)
	}
	c, err := Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks that every address and prefix parses and that the
// version is known.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Version != FormatVersion {
		add("version %d is not supported (want %d)", c.Version, FormatVersion)
	}
	if a, err := netip.ParseAddr(c.RouterID); err != nil || !a.Is4() {
		add("routerID %q is not an IPv4 address", c.RouterID)
	}
	if c.ASNumber == 0 {
		add("asNumber must be set")
	}
	if c.RoutePriority4 < 0 || c.RoutePriority6 < 0 {
		add("route priorities must not be negative")
	}
	for _, s := range []struct{ name, v string }{{"nodeIPv4", c.NodeIPv4}, {"nodeIPv6", c.NodeIPv6}} {
		if s.v != "" {
			if _, err := netip.ParsePrefix(s.v); err != nil {
				add("%s %q is not an address/prefix", s.name, s.v)
			}
		}
	}
	for _, a := range c.ListenAddresses {
		if _, err := netip.ParseAddr(a); err != nil {
			add("listen address %q is not an IP", a)
		}
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		if _, err := netip.ParseAddr(p.Address); err != nil {
			add("peers[%d] address %q is not an IP", i, p.Address)
		}
		if seen[p.Address] {
			add("peers[%d] address %s is listed twice", i, p.Address)
		}
		seen[p.Address] = true
		if p.ASNumber == 0 {
			add("peers[%d] (%s) has no asNumber", i, p.Address)
		}
		if p.SourceAddress != "" {
			if _, err := netip.ParseAddr(p.SourceAddress); err != nil {
				add("peers[%d] sourceAddress %q is not an IP", i, p.SourceAddress)
			}
		}
		switch p.NextHop {
		case NextHopAuto, NextHopSelf, NextHopKeep:
		default:
			add("peers[%d] nextHop %q is not one of self, keep", i, p.NextHop)
		}
		for j, r := range append(append([]FilterRule(nil), p.ImportRules...), p.ExportRules...) {
			if err := r.validate(); err != nil {
				add("peers[%d] rule %d: %w", i, j, err)
			}
		}
	}
	for i, p := range c.Pools {
		if _, err := netip.ParsePrefix(p.CIDR); err != nil {
			add("pools[%d] cidr %q is not a prefix", i, p.CIDR)
		}
	}
	for i, b := range c.Blocks {
		if _, err := netip.ParsePrefix(b.CIDR); err != nil {
			add("blocks[%d] cidr %q is not a prefix", i, b.CIDR)
		}
	}
	for i, pc := range c.Communities {
		if _, err := netip.ParsePrefix(pc.CIDR); err != nil {
			add("communities[%d] cidr %q is not a prefix", i, pc.CIDR)
		}
		for _, v := range pc.Communities {
			if _, _, err := ParseCommunity(v); err != nil {
				add("communities[%d]: %w", i, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (r *FilterRule) validate() error {
	if r.CIDR != "" {
		if _, err := netip.ParsePrefix(r.CIDR); err != nil {
			return fmt.Errorf("cidr %q is not a prefix", r.CIDR)
		}
	}
	switch r.MatchOperator {
	case "", MatchEqual, MatchNotEqual, MatchIn, MatchNotIn:
	default:
		return fmt.Errorf("unknown match operator %q", r.MatchOperator)
	}
	switch r.Action {
	case ActionAccept, ActionReject:
	default:
		return fmt.Errorf("unknown action %q", r.Action)
	}
	for _, c := range append(append([]string(nil), r.Communities...), r.AddCommunities...) {
		if _, _, err := ParseCommunity(c); err != nil {
			return err
		}
	}
	return nil
}

// ParseCommunity parses "aa:nn" (standard, large=false) or "aa:nn:mm"
// (large=true) into its parts.
func ParseCommunity(s string) (parts []uint32, large bool, err error) {
	fields := strings.Split(s, ":")
	if len(fields) != 2 && len(fields) != 3 {
		return nil, false, fmt.Errorf("community %q is not aa:nn or aa:nn:mm", s)
	}
	large = len(fields) == 3
	limit := uint64(0xffff)
	if large {
		limit = 0xffffffff
	}
	for _, f := range fields {
		var v uint64
		if _, err := fmt.Sscanf(f, "%d", &v); err != nil || fmt.Sprint(v) != f || v > limit {
			return nil, false, fmt.Errorf("community %q has an invalid part %q", s, f)
		}
		parts = append(parts, uint32(v))
	}
	return parts, large, nil
}
