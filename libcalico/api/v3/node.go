package v3

import (
	"encoding/base64"
	"strconv"
)

// Node is Calico's view of a host: its BGP addresses, tunnel addresses and
// orchestrator references. Written by the node itself, read by every daemon.
type Node struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeSpec   `json:"spec,omitempty"`
	Status NodeStatus `json:"status,omitempty"`
}

// NodeSpec is the specification of a Node.
type NodeSpec struct {
	BGP                  *NodeBGPSpec       `json:"bgp,omitempty"`
	IPv4VXLANTunnelAddr  string             `json:"ipv4VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr   string             `json:"vxlanTunnelMACAddr,omitempty"`
	IPv6VXLANTunnelAddr  string             `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddrV6 string             `json:"vxlanTunnelMACAddrV6,omitempty"`
	OrchRefs             []OrchRef          `json:"orchRefs,omitempty"`
	Wireguard            *NodeWireguardSpec `json:"wireguard,omitempty"`
	Addresses            []NodeAddress      `json:"addresses,omitempty"`
	Interfaces           []NodeInterface    `json:"interfaces,omitempty"`
}

// NodeBGPSpec is the node's BGP configuration.
type NodeBGPSpec struct {
	// ASNumber overrides the cluster default AS for this node.
	ASNumber *ASNumber `json:"asNumber,omitempty"`
	// IPv4Address is the node's address with its prefix length ("192.168.1.10/24").
	IPv4Address        string `json:"ipv4Address,omitempty"`
	IPv6Address        string `json:"ipv6Address,omitempty"`
	IPv4IPIPTunnelAddr string `json:"ipv4IPIPTunnelAddr,omitempty"`
	// RouteReflectorClusterID, an IPv4 address, makes the node a route reflector.
	RouteReflectorClusterID string `json:"routeReflectorClusterID,omitempty"`
}

// NodeWireguardSpec holds the node's WireGuard interface addresses.
type NodeWireguardSpec struct {
	InterfaceIPv4Address string `json:"interfaceIPv4Address,omitempty"`
	InterfaceIPv6Address string `json:"interfaceIPv6Address,omitempty"`
}

// NodeAddress is one address a client can reach the node at.
type NodeAddress struct {
	Address string `json:"address"`
	Type    string `json:"type,omitempty"`
}

// Node address types.
const (
	NodeAddressCalicoNodeIP = "CalicoNodeIP"
	NodeAddressInternalIP   = "InternalIP"
	NodeAddressExternalIP   = "ExternalIP"
)

// NodeInterface is one interface on the node.
type NodeInterface struct {
	Name      string   `json:"name,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// NodeStatus is written by the node.
type NodeStatus struct {
	WireguardPublicKey   string   `json:"wireguardPublicKey,omitempty"`
	WireguardPublicKeyV6 string   `json:"wireguardPublicKeyV6,omitempty"`
	PodCIDRs             []string `json:"podCIDRs,omitempty"`
}

// OrchRef ties the node to its name in an orchestrator.
type OrchRef struct {
	NodeName     string `json:"nodeName,omitempty"`
	Orchestrator string `json:"orchestrator"`
}

// NewNode returns an empty Node with its type metadata set.
func NewNode() *Node {
	return &Node{TypeMeta: TypeMeta{Kind: KindNode, APIVersion: APIVersion}}
}

// Default sets only missing type metadata: Calico defaults no Node field.
func (n *Node) Default() { infraTypeMeta(&n.TypeMeta, KindNode) }

// Validate checks addresses, tunnel fields and keys.
func (n *Node) Validate() error {
	v := newValidator()
	v.meta(KindNode, &n.ObjectMeta, false)
	const f = "Node.Spec."
	s := &n.Spec
	if b := s.BGP; b != nil {
		if *b == (NodeBGPSpec{}) {
			v.add(f+"BGP", "{}", "Spec.BGP should not be empty")
		}
		if b.IPv4Address != "" {
			if p, err := ParseCIDR(b.IPv4Address); err != nil || !p.Addr().Is4() {
				v.add(f+"BGP.IPv4Address", b.IPv4Address, "must be an IPv4 address with optional prefix length")
			}
		}
		if b.IPv6Address != "" {
			if p, err := ParseCIDR(b.IPv6Address); err != nil || !p.Addr().Is6() {
				v.add(f+"BGP.IPv6Address", b.IPv6Address, "must be an IPv6 address with optional prefix length")
			}
		}
		if b.IPv4IPIPTunnelAddr != "" {
			requireIPv4Addr(v, f+"BGP.IPv4IPIPTunnelAddr", b.IPv4IPIPTunnelAddr)
		}
		if b.RouteReflectorClusterID != "" {
			requireIPv4Addr(v, f+"BGP.RouteReflectorClusterID", b.RouteReflectorClusterID)
		}
	}
	if s.IPv4VXLANTunnelAddr != "" {
		requireIPv4Addr(v, f+"IPv4VXLANTunnelAddr", s.IPv4VXLANTunnelAddr)
	}
	if s.IPv6VXLANTunnelAddr != "" {
		requireIPv6Addr(v, f+"IPv6VXLANTunnelAddr", s.IPv6VXLANTunnelAddr)
	}
	if s.VXLANTunnelMACAddr != "" {
		requireMAC(v, f+"VXLANTunnelMACAddr", s.VXLANTunnelMACAddr)
	}
	if s.VXLANTunnelMACAddrV6 != "" {
		requireMAC(v, f+"VXLANTunnelMACAddrV6", s.VXLANTunnelMACAddrV6)
	}
	if w := s.Wireguard; w != nil {
		if w.InterfaceIPv4Address != "" {
			requireIPv4Addr(v, f+"Wireguard.InterfaceIPv4Address", w.InterfaceIPv4Address)
		}
		if w.InterfaceIPv6Address != "" {
			requireIPv6Addr(v, f+"Wireguard.InterfaceIPv6Address", w.InterfaceIPv6Address)
		}
	}
	for i, o := range s.OrchRefs {
		if o.Orchestrator == "" {
			v.add(f+"OrchRefs["+strconv.Itoa(i)+"].Orchestrator", o.Orchestrator, "orchestrator must be specified")
		}
	}
	for i, a := range s.Addresses {
		field := f + "Addresses[" + strconv.Itoa(i) + "]"
		if _, err := ParseCIDR(a.Address); err != nil {
			v.add(field+".Address", a.Address, "must be a valid IP address or CIDR")
		}
		if a.Type != "" {
			v.oneOf(field+".Type", a.Type, NodeAddressCalicoNodeIP, NodeAddressInternalIP, NodeAddressExternalIP)
		}
	}
	for i, in := range s.Interfaces {
		if in.Name != "" {
			v.name(f+"Interfaces["+strconv.Itoa(i)+"].Name", in.Name)
		}
	}
	requireWireguardKey(v, "Node.Status.WireguardPublicKey", n.Status.WireguardPublicKey)
	requireWireguardKey(v, "Node.Status.WireguardPublicKeyV6", n.Status.WireguardPublicKeyV6)
	return v.err()
}

// requireWireguardKey accepts "" or a base64 32-byte key.
func requireWireguardKey(v *validator, field, k string) {
	if k == "" {
		return
	}
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) != 32 {
		v.add(field, k, "must be a base64-encoded 32-byte WireGuard key")
	}
}
