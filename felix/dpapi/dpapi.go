// Package dpapi is the contract between felix's calculation graph and its
// dataplane: the complete desired state of one host, as plain data.
//
//	syncer ──► calc (pure) ──State──► dataplane.Apply(State) ──► kernel
//
// calc builds a new State (or updates one it owns and hands over a copy);
// the dataplane converges the kernel to it and may be handed the same
// State again at any time. Nothing here does I/O.
package dpapi

import (
	"context"
	"net/netip"
	"slices"
)

// State is everything felix programs on one host.
type State struct {
	// Workloads are this host's WorkloadEndpoints, by WorkloadID.
	Workloads map[WorkloadID]*Workload
	// HostEndpoints are this host's HostEndpoints, by name.
	HostEndpoints map[string]*HostEndpoint
	// Policies are the policies some local endpoint uses.
	Policies map[PolicyID]*Policy
	// Profiles are the profiles some local endpoint uses, by name.
	Profiles map[string]*Profile
	// IPSets are the selector (and named-port) sets the active rules use.
	IPSets map[string]*IPSet
	// Pools are all IP pools (for NAT outgoing, the all/masq pool sets and
	// encapsulation decisions).
	Pools map[string]*Pool
	// RemoteBlocks are IPAM blocks affine to other hosts, for VXLAN/IPIP routes.
	RemoteBlocks []RemoteBlock
	// RemoteWorkloads are other hosts' workload addresses (host prefixes),
	// for RouteSource WorkloadIPs; sorted. Shared between States: read only.
	RemoteWorkloads []RemoteBlock
	// ServiceCIDRs are the service ranges the BGPConfiguration "default"
	// advertises (cluster, external and load balancer IPs), for service
	// loop prevention.
	ServiceCIDRs []netip.Prefix
	// Hosts are the other (and this) Calico hosts: all-hosts-net set,
	// VXLAN neighbours.
	Hosts map[string]*Host
	// InSync is false until calc has seen the datastore's full snapshot;
	// a dataplane must not touch the kernel before the first InSync state.
	InSync bool
}

// WorkloadID names a WorkloadEndpoint: "<namespace>/<name>".
type WorkloadID string

// Workload is one local WorkloadEndpoint, ready to program.
type Workload struct {
	ID    WorkloadID
	Iface string // host side veth, e.g. cali1234567890a
	MAC   string // workload MAC, may be empty
	IPv4  []netip.Prefix
	IPv6  []netip.Prefix
	NATs  []NAT
	// AllowSpoofedSourcePrefixes are source prefixes the workload may send
	// from besides its own addresses (when the configuration allows it).
	AllowSpoofedSourcePrefixes []netip.Prefix
	// Tiers hold, in tier order, the policies that apply to the endpoint;
	// tiers with no applying policy are left out.
	Tiers []TierPolicies
	// Profiles, in order; the endpoint's profile rules run only when no
	// policy applied in that direction or all tiers passed.
	Profiles []string
	Labels   map[string]string
}

// NAT is a 1:1 floating IP.
type NAT struct{ Internal, External netip.Addr }

// HostEndpoint is one local HostEndpoint.
type HostEndpoint struct {
	Name     string
	Iface    string // "" or "*" means by ExpectedIPs / all interfaces
	Expected []netip.Addr
	// Tiers apply to traffic to/from the host itself; the other lists are
	// for the preDNAT, untracked (doNotTrack) and applyOnForward policies.
	Tiers          []TierPolicies
	PreDNATTiers   []TierPolicies
	UntrackedTiers []TierPolicies
	ForwardTiers   []TierPolicies
	Profiles       []string
}

// PolicyID names a policy: Namespace is "" for global policies.
type PolicyID struct {
	Tier      string
	Namespace string
	Name      string
}

// TierPolicies is one tier's applying policies, in order, per direction.
type TierPolicies struct {
	Name string
	// DefaultAction applies when a packet matches no rule of the tier's
	// policies: "Deny" (default) or "Pass".
	DefaultAction string
	Ingress       []PolicyID
	Egress        []PolicyID
}

// EqualTiers reports whether two tier lists are the same.
func EqualTiers(a, b []TierPolicies) bool {
	return slices.EqualFunc(a, b, func(x, y TierPolicies) bool {
		return x.Name == y.Name && x.DefaultAction == y.DefaultAction &&
			slices.Equal(x.Ingress, y.Ingress) && slices.Equal(x.Egress, y.Egress)
	})
}

// Policy is an active policy with its selectors resolved to IP sets.
type Policy struct {
	Inbound        []Rule
	Outbound       []Rule
	PreDNAT        bool
	Untracked      bool
	ApplyOnForward bool
}

// Profile is an active profile.
type Profile struct {
	Inbound  []Rule
	Outbound []Rule
}

// Action of a rule.
type Action string

// Rule actions.
const (
	Allow Action = "Allow"
	Deny  Action = "Deny"
	Pass  Action = "Pass" // next tier
	Log   Action = "Log"
)

// Rule is a v3 rule with every selector replaced by IP set IDs. All
// conditions AND together; a rule with a selector that matches nothing
// still references its (empty) set, so it matches nothing.
type Rule struct {
	// ID is stable for the same rule content and position; it is used for
	// the iptables "cali:<id>" comment.
	ID string
	// Annotations are the rule's metadata annotations as "key=value",
	// sorted; rendered as comments, as Calico.
	Annotations []string
	Action      Action
	IPVersion   int // 0 = both

	Protocol    string // "tcp", "udp", "icmp", "icmpv6", "sctp", "udplite" or a number; "" = any
	NotProtocol string

	SrcNets, NotSrcNets []netip.Prefix
	DstNets, NotDstNets []netip.Prefix

	// IP set IDs (keys of State.IPSets) the source/destination must (not) be in.
	SrcIPSets, NotSrcIPSets []string
	DstIPSets, NotDstIPSets []string

	SrcPorts, NotSrcPorts []PortRange
	DstPorts, NotDstPorts []PortRange
	// Named ports resolve to IP sets of "ip,proto:port" members.
	SrcNamedPortIPSets, NotSrcNamedPortIPSets []string
	DstNamedPortIPSets, NotDstNamedPortIPSets []string

	ICMPType, ICMPCode       *int
	NotICMPType, NotICMPCode *int
}

// PortRange is [Min, Max]; a single port has Min == Max.
type PortRange struct{ Min, Max uint16 }

// IPSetType says what members hold.
type IPSetType string

// IP set types.
const (
	// IPSetNet members are CIDRs or addresses ("10.0.0.1/32").
	IPSetNet IPSetType = "hash:net"
	// IPSetIPPort members are "10.0.0.1,tcp:8080".
	IPSetIPPort IPSetType = "hash:ip,port"
)

// IPSet is one set; its ID is stable for the selector (e.g. "s:<hash>"),
// and the dataplane derives the kernel name (cali40s:<hash>, cali60...).
type IPSet struct {
	ID      string
	Type    IPSetType
	Members []string // both families; the dataplane splits v4 and v6
}

// EncapMode is Never, Always or CrossSubnet.
type EncapMode string

// Encapsulation modes.
const (
	EncapNever       EncapMode = "Never"
	EncapAlways      EncapMode = "Always"
	EncapCrossSubnet EncapMode = "CrossSubnet"
)

// Pool is an IP pool as the dataplane needs it.
type Pool struct {
	Name        string
	CIDR        netip.Prefix
	NATOutgoing bool
	Disabled    bool
	IPIP        EncapMode
	VXLAN       EncapMode
}

// RemoteBlock is a block affine to another host.
type RemoteBlock struct {
	CIDR netip.Prefix
	Host string
}

// Host is a Calico node.
type Host struct {
	Name string
	// IPv4/IPv6 are the node's BGP addresses (with subnet, as in the Node
	// resource: 192.168.1.10/24); invalid or empty when unset.
	IPv4 netip.Prefix
	IPv6 netip.Prefix
	// VXLAN tunnel endpoint addresses (invalid when the node has none)
	// and device MACs (the Node's, else derived from its name).
	VXLANTunnelAddr   netip.Addr
	VXLANTunnelMAC    string
	VXLANTunnelAddrV6 netip.Addr
	VXLANTunnelMACV6  string
	IPIPTunnelAddr    netip.Addr
}

// Dataplane converges the kernel to a State.
type Dataplane interface {
	// Apply programs s and returns when the kernel matches it or with the
	// first error; it is idempotent and safe to call again with the same
	// or a newer State. A State with InSync false must not change the
	// kernel. When ctx ends it returns ctx's error promptly, leaving no
	// ruleset half written; a later Apply completes the State. The objects
	// a State points to (workloads, policies, IP sets, ...) must not be
	// modified once passed: a changed one is a new object, and the
	// dataplane reuses what it built from an object it has seen.
	Apply(ctx context.Context, s *State) error
}
