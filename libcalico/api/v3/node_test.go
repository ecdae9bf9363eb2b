package v3

import (
	"encoding/base64"
	"strings"
	"testing"
)

func infraNode(mod func(n *Node)) *Node {
	n := NewNode()
	n.Name = "node1"
	n.Spec.BGP = &NodeBGPSpec{IPv4Address: "192.168.1.10/24"}
	mod(n)
	return n
}

func TestNodeValidation(t *testing.T) {
	const f = "Node.Spec."
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name                 string
		mod                  func(n *Node)
		field, value, reason string
	}{
		{"empty bgp", func(n *Node) { n.Spec.BGP = &NodeBGPSpec{} }, f + "BGP", "{}", "Spec.BGP should not be empty"},
		{"v4 address family", func(n *Node) { n.Spec.BGP.IPv4Address = "fd00::10/64" }, f + "BGP.IPv4Address", "fd00::10/64", "IPv4"},
		{"v4 address garbage", func(n *Node) { n.Spec.BGP.IPv4Address = "192.168.1/24" }, f + "BGP.IPv4Address", "192.168.1/24", "IPv4"},
		{"v6 address", func(n *Node) { n.Spec.BGP.IPv6Address = "10.0.0.1/24" }, f + "BGP.IPv6Address", "10.0.0.1/24", "IPv6"},
		{"rr cluster id", func(n *Node) { n.Spec.BGP.RouteReflectorClusterID = "224.0.0.1/32" }, f + "BGP.RouteReflectorClusterID", "224.0.0.1/32",
			"must be a valid IPv4 address"},
		{"rr cluster id v6", func(n *Node) { n.Spec.BGP.RouteReflectorClusterID = "fd00::1" }, f + "BGP.RouteReflectorClusterID", "fd00::1", "IPv4"},
		{"ipip tunnel", func(n *Node) { n.Spec.BGP.IPv4IPIPTunnelAddr = "10.10.3.1/32" }, f + "BGP.IPv4IPIPTunnelAddr", "10.10.3.1/32", "IPv4"},
		{"vxlan tunnel", func(n *Node) { n.Spec.IPv4VXLANTunnelAddr = "fd00::1" }, f + "IPv4VXLANTunnelAddr", "fd00::1", "IPv4"},
		{"vxlan mac", func(n *Node) { n.Spec.VXLANTunnelMACAddr = "ee:ee" }, f + "VXLANTunnelMACAddr", "ee:ee", "MAC"},
		{"address type", func(n *Node) { n.Spec.Addresses = []NodeAddress{{Address: "192.168.1.10", Type: "Public"}} },
			f + "Addresses[0].Type", "Public", "must be one of CalicoNodeIP, InternalIP, ExternalIP"},
		{"address", func(n *Node) { n.Spec.Addresses = []NodeAddress{{Address: "node1"}} }, f + "Addresses[0].Address", "node1", "IP address or CIDR"},
		{"orch ref", func(n *Node) { n.Spec.OrchRefs = []OrchRef{{NodeName: "node1"}} }, f + "OrchRefs[0].Orchestrator", "", "orchestrator must be specified"},
		{"wireguard key", func(n *Node) { n.Status.WireguardPublicKey = "not-a-key" }, "Node.Status.WireguardPublicKey", "not-a-key", "WireGuard key"},
		{"wireguard addr", func(n *Node) { n.Spec.Wireguard = &NodeWireguardSpec{InterfaceIPv6Address: "10.0.0.1"} },
			f + "Wireguard.InterfaceIPv6Address", "10.0.0.1", "IPv6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			infraWantErr(t, infraNode(tt.mod).Validate(), tt.field, tt.value, tt.reason)
		})
	}
	as := ASNumber(64600)
	ok := infraNode(func(n *Node) {
		n.Spec.BGP = &NodeBGPSpec{ASNumber: &as, IPv4Address: "192.168.1.10", IPv6Address: "fd00::10/64",
			IPv4IPIPTunnelAddr: "10.10.3.1", RouteReflectorClusterID: "224.0.0.1"}
		n.Spec.IPv4VXLANTunnelAddr = "10.20.0.1"
		n.Spec.VXLANTunnelMACAddr = "66:d2:b5:d4:1c:2b"
		n.Spec.IPv6VXLANTunnelAddr = "fd00:20::1"
		n.Spec.OrchRefs = []OrchRef{{NodeName: "node1", Orchestrator: "k8s"}}
		n.Spec.Addresses = []NodeAddress{{Address: "192.168.1.10/24", Type: NodeAddressCalicoNodeIP}}
		n.Spec.Interfaces = []NodeInterface{{Name: "eth0", Addresses: []string{"192.168.1.10"}}}
		n.Status = NodeStatus{WireguardPublicKey: key, PodCIDRs: []string{"10.10.0.0/24"}}
	})
	if err := ok.Validate(); err != nil {
		t.Errorf("valid node: %v", err)
	}
	if err := infraNode(func(n *Node) { n.Spec.BGP = nil }).Validate(); err != nil {
		t.Errorf("node without BGP: %v", err)
	}
}

func TestIPReservationValidation(t *testing.T) {
	r := NewIPReservation()
	r.Name = "reserved"
	r.Spec.ReservedCIDRs = []string{"10.0.0.0/24", "10.0.1.7", "fd00::/120", "10.0.2.5/24"}
	r.Default()
	if err := r.Validate(); err != nil {
		t.Errorf("valid reservation: %v", err)
	}
	r.Spec.ReservedCIDRs = []string{"10.0.0.0/24", "10.0.0.300"}
	infraWantErr(t, r.Validate(), "IPReservation.Spec.ReservedCIDRs[1]", "10.0.0.300", "must be a valid CIDR or IP address")
	r.Spec.ReservedCIDRs = []string{"10.0.0.0/24", "10.0.0.0/24"}
	infraWantErr(t, r.Validate(), "IPReservation.Spec.ReservedCIDRs[1]", "10.0.0.0/24", "duplicate")
}

func TestClusterInformation(t *testing.T) {
	c := NewClusterInformation()
	c.Name = "default"
	ready := true
	c.Spec = ClusterInformationSpec{ClusterGUID: "b4320b47a9ec470d8a9bd8b6180880ed", DatastoreReady: &ready, CalicoVersion: "v3.34.0"}
	c.Default()
	if err := c.Validate(); err != nil {
		t.Errorf("valid: %v", err)
	}
	c.Name = strings.Repeat("a", 254)
	infraWantErr(t, c.Validate(), "Metadata.Name", c.Name, "name must consist of")
}
