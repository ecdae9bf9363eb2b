package calc

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/model"
)

// DefaultRestartTime is the graceful restart time when none is configured.
const DefaultRestartTime = 120 * time.Second

// DefaultRoutePriority is Calico's ipv4/ipv6NormalRoutePriority default:
// the kernel metric of bgpd's routes.
const DefaultRoutePriority = 1024

// Secrets resolves BGP passwords (secretKeyRef). There is no Kubernetes
// here, so the daemon's implementation reads files (package confd/secrets).
type Secrets interface {
	// Lookup returns the value stored under key in the secret called
	// name, or an error saying why it cannot.
	Lookup(name, key string) (string, error)
}

// ErrNodeNotReady means the node cannot run BGP yet: it has no Node
// resource or no BGP address.
var ErrNodeNotReady = errors.New("node has no BGP address")

// Result is Compute's output.
type Result struct {
	Config *bgpconfig.Config
	// Warnings are problems that removed or weakened part of the
	// configuration (a password that cannot be read, a missing filter),
	// sorted.
	Warnings []string
}

// computation carries one Compute call's inputs and derived values.
type computation struct {
	s        *State
	secrets  Secrets
	node     *v3.Node
	v4, v6   netip.Prefix // this node's addresses, with their lengths
	as       uint32
	globalAS uint32
	def      *v3.BGPConfigurationSpec
	nodeCfg  *v3.BGPConfigurationSpec
	warnings []string
}

func (c *computation) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// Compute returns node's BGP configuration. It fails only with
// ErrNodeNotReady; anything else that is wrong is left out and reported in
// Result.Warnings.
func Compute(s *State, node string, secrets Secrets) (*Result, error) {
	n := s.Nodes[node]
	if n == nil {
		return nil, fmt.Errorf("node %s does not exist: %w", node, ErrNodeNotReady)
	}
	c := &computation{s: s, secrets: secrets, node: n, def: &v3.BGPConfigurationSpec{}, nodeCfg: &v3.BGPConfigurationSpec{}}
	if n.Spec.BGP != nil {
		c.v4 = nodeAddr(n.Spec.BGP.IPv4Address)
		c.v6 = nodeAddr(n.Spec.BGP.IPv6Address)
	}
	if !c.v4.IsValid() && !c.v6.IsValid() {
		return nil, fmt.Errorf("node %s: %w", node, ErrNodeNotReady)
	}
	if d := s.BGPConfigs["default"]; d != nil {
		c.def = &d.Spec
	}
	if nc := s.BGPConfigs["node."+node]; nc != nil {
		c.nodeCfg = &nc.Spec
	}
	c.globalAS = uint32(v3.DefaultASNumber)
	if c.def.ASNumber != nil {
		c.globalAS = uint32(*c.def.ASNumber)
	}
	c.as = c.nodeAS(n)

	cfg := &bgpconfig.Config{
		Version:    bgpconfig.FormatVersion,
		NodeName:   node,
		RouterID:   c.routerID(),
		ASNumber:   c.as,
		ListenPort: c.listenPort(),
		LogLevel:   strings.ToLower(firstNonEmpty(c.nodeCfg.LogSeverityScreen, c.def.LogSeverityScreen)),

		RoutePriority4: priority(c.def.IPv4NormalRoutePriority),
		RoutePriority6: priority(c.def.IPv6NormalRoutePriority),
	}
	if c.v4.IsValid() {
		cfg.NodeIPv4 = c.v4.String()
	}
	if c.v6.IsValid() {
		cfg.NodeIPv6 = c.v6.String()
	}
	if bm := firstBindMode(c.nodeCfg.BindMode, c.def.BindMode); bm == v3.BindModeNodeIP {
		for _, p := range []netip.Prefix{c.v4, c.v6} {
			if p.IsValid() {
				cfg.ListenAddresses = append(cfg.ListenAddresses, p.Addr().String())
			}
		}
	}
	cfg.IgnoredInterfaces = c.def.IgnoredInterfaces
	if len(c.nodeCfg.IgnoredInterfaces) > 0 {
		cfg.IgnoredInterfaces = c.nodeCfg.IgnoredInterfaces
	}
	cfg.Peers = c.peers()
	cfg.Pools = c.pools()
	cfg.Blocks = c.blocks(cfg.Pools)
	cfg.Communities = c.communities()
	slices.Sort(c.warnings)
	return &Result{Config: cfg, Warnings: slices.Compact(c.warnings)}, nil
}

// nodeAddr parses a Node's "addr/len" or "addr" (full length) without
// masking the host part away; invalid input gives the zero prefix.
func nodeAddr(s string) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.Prefix{}
}

func (c *computation) nodeAS(n *v3.Node) uint32 {
	if n.Spec.BGP != nil && n.Spec.BGP.ASNumber != nil {
		return uint32(*n.Spec.BGP.ASNumber)
	}
	return c.globalAS
}

// routerID is the IPv4 address, or for IPv6-only nodes a stable 32-bit
// hash of the node name written as an address.
func (c *computation) routerID() string {
	if c.v4.IsValid() {
		return c.v4.Addr().String()
	}
	h := fnv.New32a()
	h.Write([]byte(c.node.Name))
	v := h.Sum32()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

func (c *computation) listenPort() uint16 {
	switch {
	case c.nodeCfg.ListenPort != 0:
		return c.nodeCfg.ListenPort
	case c.def.ListenPort != 0:
		return c.def.ListenPort
	}
	return v3.DefaultBGPListenPort
}

func priority(p *int) int {
	if p != nil && *p > 0 {
		return *p
	}
	return DefaultRoutePriority
}

func firstBindMode(ms ...*v3.BindMode) v3.BindMode {
	for _, m := range ms {
		if m != nil {
			return *m
		}
	}
	return v3.BindModeNone
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// pools lists every pool; only enabled pools without disableBGPExport may
// be exported.
func (c *computation) pools() []bgpconfig.Pool {
	out := []bgpconfig.Pool{}
	for _, name := range sortedKeys(c.s.Pools) {
		p := c.s.Pools[name]
		cidr, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil {
			c.warn("IPPool %s: CIDR %q does not parse", name, p.Spec.CIDR)
			continue
		}
		out = append(out, bgpconfig.Pool{
			CIDR:      cidr.Masked().String(),
			Export:    !p.Spec.Disabled && !p.Spec.DisableBGPExport,
			IPIPMode:  encapMode(string(p.Spec.IPIPMode)),
			VXLANMode: encapMode(string(p.Spec.VXLANMode)),
		})
	}
	slices.SortFunc(out, func(a, b bgpconfig.Pool) int { return comparePrefixStrings(a.CIDR, b.CIDR) })
	return out
}

func encapMode(m string) string {
	if m == string(v3.IPIPModeNever) {
		return ""
	}
	return m
}

// blocks lists this node's confirmed affine blocks; a block is exported
// when the most specific pool holding it is exportable.
func (c *computation) blocks(pools []bgpconfig.Pool) []bgpconfig.Block {
	out := []bgpconfig.Block{}
	for cidr, a := range c.s.Affinities {
		if a == nil || a.Deleted || (a.State != "" && a.State != model.AffinityConfirmed) {
			continue
		}
		export := false
		best := -1
		for _, p := range pools {
			pp := netip.MustParsePrefix(p.CIDR)
			if pp.Bits() <= cidr.Bits() && pp.Contains(cidr.Addr()) && pp.Bits() > best {
				best, export = pp.Bits(), p.Export
			}
		}
		out = append(out, bgpconfig.Block{CIDR: cidr.Masked().String(), Export: export})
	}
	slices.SortFunc(out, func(a, b bgpconfig.Block) int { return comparePrefixStrings(a.CIDR, b.CIDR) })
	return out
}

// communities resolves prefixAdvertisements (the node's own
// BGPConfiguration's when it has any, else the default's) to values.
func (c *computation) communities() []bgpconfig.PrefixCommunities {
	ads := c.def.PrefixAdvertisements
	if len(c.nodeCfg.PrefixAdvertisements) > 0 {
		ads = c.nodeCfg.PrefixAdvertisements
	}
	named := map[string]string{}
	for _, spec := range []*v3.BGPConfigurationSpec{c.def, c.nodeCfg} {
		for _, cm := range spec.Communities {
			named[cm.Name] = cm.Value
		}
	}
	var out []bgpconfig.PrefixCommunities
	for _, ad := range ads {
		cidr, err := netip.ParsePrefix(ad.CIDR)
		if err != nil {
			c.warn("prefixAdvertisement %q: not a CIDR", ad.CIDR)
			continue
		}
		pc := bgpconfig.PrefixCommunities{CIDR: cidr.Masked().String()}
		for _, name := range ad.Communities {
			v := name
			if val, ok := named[name]; ok {
				v = val
			}
			if _, _, err := bgpconfig.ParseCommunity(v); err != nil {
				c.warn("prefixAdvertisement %s: community %q is neither defined nor a value", ad.CIDR, name)
				continue
			}
			pc.Communities = append(pc.Communities, v)
		}
		if len(pc.Communities) > 0 {
			out = append(out, pc)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func comparePrefixStrings(a, b string) int {
	pa, erra := netip.ParsePrefix(a)
	pb, errb := netip.ParsePrefix(b)
	if erra != nil || errb != nil {
		return strings.Compare(a, b)
	}
	if c := pa.Addr().Compare(pb.Addr()); c != 0 {
		return c
	}
	return pa.Bits() - pb.Bits()
}
