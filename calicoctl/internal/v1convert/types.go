// Package v1convert turns Calico v1 manifests (apiVersion: v1; kinds
// ipPool, policy, profile, hostEndpoint, workloadEndpoint, bgpPeer, node)
// into projectcalico.org/v3 resources, following the mapping rules of
// Calico's libcalico-go upgrade converters: names normalized (an IP pool's
// cidr 10.0.0.0/16 becomes 10-0-0-0-16), tags merged into selectors and
// labels, calico/k8s_ns renamed projectcalico.org/namespace, "next-tier"
// becoming Pass. Input is decoded strictly: an unknown field is an error
// that names it.
package v1convert

import (
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// typeMeta is every v1 resource's kind and version.
type typeMeta struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
}

type ipPool struct {
	typeMeta
	Metadata struct {
		CIDR string `json:"cidr"`
	} `json:"metadata"`
	Spec struct {
		IPIP *struct {
			Enabled bool   `json:"enabled,omitempty"`
			Mode    string `json:"mode,omitempty"`
		} `json:"ipip,omitempty"`
		NATOutgoing    bool              `json:"nat-outgoing,omitempty"`
		Disabled       bool              `json:"disabled,omitempty"`
		AssignmentMode v3.AssignmentMode `json:"assignmentMode,omitempty"`
	} `json:"spec"`
}

type icmpFields struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

type entityRule struct {
	Tag         string    `json:"tag,omitempty"`
	Net         string    `json:"net,omitempty"`
	Nets        []string  `json:"nets,omitempty"`
	Selector    string    `json:"selector,omitempty"`
	Ports       []v3.Port `json:"ports,omitempty"`
	NotTag      string    `json:"notTag,omitempty"`
	NotNet      string    `json:"notNet,omitempty"`
	NotNets     []string  `json:"notNets,omitempty"`
	NotSelector string    `json:"notSelector,omitempty"`
	NotPorts    []v3.Port `json:"notPorts,omitempty"`
}

type rule struct {
	Action      string       `json:"action"`
	IPVersion   *int         `json:"ipVersion,omitempty"`
	Protocol    *v3.Protocol `json:"protocol,omitempty"`
	ICMP        *icmpFields  `json:"icmp,omitempty"`
	NotProtocol *v3.Protocol `json:"notProtocol,omitempty"`
	NotICMP     *icmpFields  `json:"notICMP,omitempty"`
	Source      entityRule   `json:"source,omitempty"`
	Destination entityRule   `json:"destination,omitempty"`
}

type policy struct {
	typeMeta
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Order          *float64 `json:"order,omitempty"`
		IngressRules   []rule   `json:"ingress,omitempty"`
		EgressRules    []rule   `json:"egress,omitempty"`
		Selector       string   `json:"selector"`
		DoNotTrack     bool     `json:"doNotTrack,omitempty"`
		PreDNAT        bool     `json:"preDNAT,omitempty"`
		ApplyOnForward bool     `json:"applyOnForward,omitempty"`
		Types          []string `json:"types,omitempty"`
	} `json:"spec"`
}

type profile struct {
	typeMeta
	Metadata struct {
		Name   string            `json:"name"`
		Tags   []string          `json:"tags,omitempty"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		IngressRules []rule `json:"ingress,omitempty"`
		EgressRules  []rule `json:"egress,omitempty"`
	} `json:"spec"`
}

type endpointPort struct {
	Name     string      `json:"name"`
	Protocol v3.Protocol `json:"protocol"`
	Port     uint16      `json:"port"`
}

type hostEndpoint struct {
	typeMeta
	Metadata struct {
		Name   string            `json:"name"`
		Node   string            `json:"node"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		InterfaceName string         `json:"interfaceName,omitempty"`
		ExpectedIPs   []string       `json:"expectedIPs,omitempty"`
		Profiles      []string       `json:"profiles,omitempty"`
		Ports         []endpointPort `json:"ports,omitempty"`
	} `json:"spec"`
}

type ipNAT struct {
	InternalIP string `json:"internalIP"`
	ExternalIP string `json:"externalIP"`
}

type workloadEndpoint struct {
	typeMeta
	Metadata struct {
		Name             string            `json:"name"`
		Workload         string            `json:"workload"`
		Orchestrator     string            `json:"orchestrator"`
		Node             string            `json:"node"`
		ActiveInstanceID string            `json:"activeInstanceID,omitempty"`
		Labels           map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		IPNetworks    []string       `json:"ipNetworks,omitempty"`
		IPNATs        []ipNAT        `json:"ipNATs,omitempty"`
		IPv4Gateway   string         `json:"ipv4Gateway,omitempty"`
		IPv6Gateway   string         `json:"ipv6Gateway,omitempty"`
		Profiles      []string       `json:"profiles,omitempty"`
		InterfaceName string         `json:"interfaceName,omitempty"`
		MAC           string         `json:"mac,omitempty"`
		Ports         []endpointPort `json:"ports,omitempty"`
	} `json:"spec"`
}

type bgpPeer struct {
	typeMeta
	Metadata struct {
		Scope  string `json:"scope"`
		Node   string `json:"node,omitempty"`
		PeerIP string `json:"peerIP"`
	} `json:"metadata"`
	Spec struct {
		ASNumber v3.ASNumber `json:"asNumber"`
	} `json:"spec"`
}

type node struct {
	typeMeta
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		BGP *struct {
			ASNumber    *v3.ASNumber `json:"asNumber,omitempty"`
			IPv4Address string       `json:"ipv4Address,omitempty"`
			IPv6Address string       `json:"ipv6Address,omitempty"`
		} `json:"bgp,omitempty"`
		OrchRefs []struct {
			NodeName     string `json:"nodeName,omitempty"`
			Orchestrator string `json:"orchestrator"`
		} `json:"orchRefs,omitempty"`
	} `json:"spec"`
}
