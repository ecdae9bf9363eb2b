// Package rules turns felix's desired state (dpapi.State) into Calico's
// iptables structure: static chains hooked into the kernel's chains,
// workload and host endpoint dispatch and endpoint chains, per-policy and
// per-profile chains, NAT outgoing and floating IPs, for one IP version and
// all four tables. It is pure: no I/O, the same State gives the same chains.
//
// The verdict of policy chains travels in mark bits under the configured
// mask (Calico's scheme): accept (0x10000 under 0xffff0000), pass (0x20000)
// and two scratch bits used to OR several matches of one rule together.
package rules

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

// Chain names and prefixes, as Calico.
const (
	ChainPrefix = "cali-"

	ChainFilterInput   = "cali-INPUT"
	ChainFilterForward = "cali-FORWARD"
	ChainFilterOutput  = "cali-OUTPUT"
	ChainPrerouting    = "cali-PREROUTING"
	ChainPostrouting   = "cali-POSTROUTING"
	ChainOutput        = "cali-OUTPUT"

	ChainFailsafeIn  = "cali-failsafe-in"
	ChainFailsafeOut = "cali-failsafe-out"
	ChainNATOutgoing = "cali-nat-outgoing"
	ChainFIPDNAT     = "cali-fip-dnat"
	ChainFIPSNAT     = "cali-fip-snat"
	ChainCIDRBlock   = "cali-cidr-block"
	ChainRPFSkip     = "cali-rpf-skip"

	ChainWorkloadToHost       = "cali-wl-to-host"
	ChainFromWorkloadDispatch = "cali-from-wl-dispatch"
	ChainToWorkloadDispatch   = "cali-to-wl-dispatch"

	ChainFromHostEndpoint        = "cali-from-host-endpoint"
	ChainToHostEndpoint          = "cali-to-host-endpoint"
	ChainFromHostEndpointForward = "cali-from-hep-forward"
	ChainToHostEndpointForward   = "cali-to-hep-forward"

	PolicyInboundPrefix   = "cali-pi-"
	PolicyOutboundPrefix  = "cali-po-"
	ProfileInboundPrefix  = "cali-pri-"
	ProfileOutboundPrefix = "cali-pro-"

	WorkloadToEndpointPrefix   = "cali-tw-"
	WorkloadFromEndpointPrefix = "cali-fw-"
	HostToEndpointPrefix       = "cali-th-"
	HostFromEndpointPrefix     = "cali-fh-"
	HostToEndpointFwdPrefix    = "cali-thfw-"
	HostFromEndpointFwdPrefix  = "cali-fhfw-"

	// AllInterfaces is the interface name of a wildcard host endpoint ("*").
	AllInterfaces = "any-interface-at-all"

	VXLANDevice   = "vxlan.calico"
	VXLANV6Device = "vxlan-v6.calico"
	IPIPDevice    = "tunl0"
)

// Config is what rendering needs besides the State.
type Config struct {
	WorkloadIfacePrefixes []string
	MarkAccept            uint32
	MarkPass              uint32
	MarkScratch0          uint32
	MarkScratch1          uint32
	// EndpointToHostAction is "Drop", "Return" or "Accept".
	EndpointToHostAction string
	FailsafeInbound      []dpapi.ProtoPort
	FailsafeOutbound     []dpapi.ProtoPort
	LogPrefix            string
	// LogRateLimit and LogRateLimitBurst limit every Log rule ("" = none).
	LogRateLimit      string
	LogRateLimitBurst int
	VXLANPort         int
	// NATOutgoingAddress, when valid, SNATs IPv4 NAT-outgoing traffic to it.
	NATOutgoingAddress netip.Addr
	Hostname           string
	// Cache, when set, keeps rendered policy chains between Renders.
	Cache *ChainCache

	// AppendHooks puts the jumps from the kernel's chains at their bottom
	// (ChainInsertMode append) instead of their top.
	AppendHooks bool
	// FilterAllow and MangleAllow are what felix's filter and mangle chains
	// do with allowed packets (ACCEPT or RETURN); FilterDeny what the
	// filter table does with denied ones (DROP or REJECT; the other tables
	// always drop).
	FilterAllow, MangleAllow, FilterDeny iptables.Action
	// DisableConntrackInvalid keeps conntrack-INVALID packets.
	DisableConntrackInvalid bool
	// AllowVXLANFromWorkloads / AllowIPIPFromWorkloads keep encapsulated
	// packets workloads send.
	AllowVXLANFromWorkloads, AllowIPIPFromWorkloads bool
	// SourceSpoofing lets workloads send from their AllowSpoofedSourcePrefixes.
	SourceSpoofing bool
	// FloatingIPs programs workloads' NATs.
	FloatingIPs bool
	// ServiceLoopAction is what cali-cidr-block does to traffic to the
	// State's ServiceCIDRs; nil: nothing.
	ServiceLoopAction iptables.Action
	// NATExcludeHosts also skips NAT outgoing to Calico hosts.
	NATExcludeHosts bool
	// NATPortMin/Max limit NAT outgoing's TCP and UDP source ports.
	NATPortMin, NATPortMax uint16
	// NATOutgoingInterface limits NAT outgoing to one output interface.
	NATOutgoingInterface string
	// VXLANEnabled / IPIPEnabled override the pools' encapsulation.
	VXLANEnabled, IPIPEnabled *bool
}

// NewConfig derives a Config from felix's dataplane config, applying its
// defaults and allocating the mark bits from the mask, lowest first.
func NewConfig(c dpapi.Config) (Config, error) {
	mask := c.IptablesMarkMask
	if mask == 0 {
		mask = 0xffff0000
	}
	if bits.OnesCount32(mask) < 4 {
		return Config{}, fmt.Errorf("iptables mark mask %#x has fewer than the 4 bits felix needs", mask)
	}
	var marks [4]uint32
	for i, m := 0, mask; i < 4; i++ {
		marks[i] = m & -m
		m &^= marks[i]
	}
	rc := Config{
		WorkloadIfacePrefixes: c.InterfacePrefixes,
		MarkAccept:            marks[0],
		MarkPass:              marks[1],
		MarkScratch0:          marks[2],
		MarkScratch1:          marks[3],
		EndpointToHostAction:  c.DefaultEndpointToHostAction,
		FailsafeInbound:       c.FailsafeInbound,
		FailsafeOutbound:      c.FailsafeOutbound,
		LogPrefix:             c.LogPrefix,
		LogRateLimit:          c.LogRateLimit,
		LogRateLimitBurst:     c.LogRateLimitBurst,
		VXLANPort:             c.VXLANPort,
		Hostname:              c.Hostname,
	}
	if len(rc.WorkloadIfacePrefixes) == 0 {
		rc.WorkloadIfacePrefixes = []string{"cali"}
	}
	if rc.EndpointToHostAction == "" {
		rc.EndpointToHostAction = "Drop"
	}
	switch strings.ToLower(rc.EndpointToHostAction) {
	case "drop", "return", "accept":
	default:
		return Config{}, fmt.Errorf("unknown DefaultEndpointToHostAction %q", rc.EndpointToHostAction)
	}
	if rc.LogPrefix == "" {
		rc.LogPrefix = "calico-packet"
	}
	if rc.VXLANPort == 0 {
		rc.VXLANPort = 4789
	}
	if c.NATOutgoingAddress != "" {
		a, err := netip.ParseAddr(c.NATOutgoingAddress)
		if err != nil {
			return Config{}, fmt.Errorf("parsing NATOutgoingAddress: %w", err)
		}
		rc.NATOutgoingAddress = a
	}
	switch strings.ToLower(c.ChainInsertMode) {
	case "", "insert":
	case "append":
		rc.AppendHooks = true
	default:
		return Config{}, fmt.Errorf("unknown ChainInsertMode %q", c.ChainInsertMode)
	}
	var err error
	if rc.FilterAllow, err = allowAction("IptablesFilterAllowAction", c.FilterAllowAction); err != nil {
		return Config{}, err
	}
	if rc.MangleAllow, err = allowAction("IptablesMangleAllowAction", c.MangleAllowAction); err != nil {
		return Config{}, err
	}
	switch strings.ToUpper(c.FilterDenyAction) {
	case "", "DROP":
		rc.FilterDeny = iptables.Drop{}
	case "REJECT":
		rc.FilterDeny = iptables.Reject{}
	default:
		return Config{}, fmt.Errorf("unknown IptablesFilterDenyAction %q", c.FilterDenyAction)
	}
	switch strings.ToLower(c.ServiceLoopPrevention) {
	case "", "drop":
		rc.ServiceLoopAction = iptables.Drop{}
	case "reject":
		rc.ServiceLoopAction = iptables.Reject{}
	case "disabled":
	default:
		return Config{}, fmt.Errorf("unknown ServiceLoopPrevention %q", c.ServiceLoopPrevention)
	}
	switch strings.ToLower(c.NATOutgoingExclusions) {
	case "", "ippoolsonly":
	case "ippoolsandhostips":
		rc.NATExcludeHosts = true
	default:
		return Config{}, fmt.Errorf("unknown NATOutgoingExclusions %q", c.NATOutgoingExclusions)
	}
	if c.NATPortMax != 0 && (c.NATPortMin == 0 || c.NATPortMin > c.NATPortMax) {
		return Config{}, fmt.Errorf("invalid NATPortRange %d:%d", c.NATPortMin, c.NATPortMax)
	}
	rc.NATPortMin, rc.NATPortMax = c.NATPortMin, c.NATPortMax
	rc.NATOutgoingInterface = c.NATOutgoingInterfaceFilter
	rc.DisableConntrackInvalid = c.DisableConntrackInvalidCheck
	rc.AllowVXLANFromWorkloads, rc.AllowIPIPFromWorkloads = c.AllowVXLANPacketsFromWorkloads, c.AllowIPIPPacketsFromWorkloads
	rc.SourceSpoofing = c.WorkloadSourceSpoofing
	rc.FloatingIPs = c.FloatingIPs
	rc.VXLANEnabled, rc.IPIPEnabled = c.VXLANEnabled, c.IPIPEnabled
	return rc, nil
}

func allowAction(name, v string) (iptables.Action, error) {
	switch strings.ToUpper(v) {
	case "", "ACCEPT":
		return iptables.Accept{}, nil
	case "RETURN":
		return iptables.Return{}, nil
	}
	return nil, fmt.Errorf("unknown %s %q", name, v)
}

// deny is what the given table does with packets policy denies: REJECT
// is only valid in the filter table.
func (c *Config) deny(table string) iptables.Action {
	if table == "filter" && c.FilterDeny != nil {
		return c.FilterDeny
	}
	return iptables.Drop{}
}

func (c *Config) filterAllow() iptables.Action {
	if c.FilterAllow == nil {
		return iptables.Accept{}
	}
	return c.FilterAllow
}

func (c *Config) mangleAllow() iptables.Action {
	if c.MangleAllow == nil {
		return iptables.Accept{}
	}
	return c.MangleAllow
}

func (c *Config) allMarks() uint32 {
	return c.MarkAccept | c.MarkPass | c.MarkScratch0 | c.MarkScratch1
}

// PolicyChainName names the chain of one direction of a policy.
func PolicyChainName(prefix string, id dpapi.PolicyID) string {
	s := id.Tier + "/"
	if id.Namespace != "" {
		s += id.Namespace + "/"
	}
	return iptables.ChainName(prefix, s+id.Name)
}

// ProfileChainName names the chain of one direction of a profile.
func ProfileChainName(prefix, profile string) string {
	return iptables.ChainName(prefix, profile)
}

// EndpointChainName names an endpoint chain from its interface.
func EndpointChainName(prefix, iface string) string {
	if iface == "*" {
		iface = AllInterfaces
	}
	return iptables.ChainName(prefix, iface)
}

func policyDisplayName(id dpapi.PolicyID) string {
	if id.Namespace != "" {
		return id.Namespace + "/" + id.Name
	}
	return id.Name
}
