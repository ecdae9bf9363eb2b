package v3

import (
	"fmt"
	"strconv"
	"strings"
)

// BGPPeer is a BGP peering for one node, a set of nodes or all nodes.
type BGPPeer struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`

	Spec BGPPeerSpec `json:"spec,omitempty"`
}

// BGPPeerSpec is the specification of a BGPPeer.
type BGPPeerSpec struct {
	// Node limits the peering to one node; empty with no NodeSelector means all nodes.
	Node         string `json:"node,omitempty"`
	NodeSelector string `json:"nodeSelector,omitempty"`
	// PeerIP is "IP", "IPv4:port" or "[IPv6]:port".
	PeerIP        string    `json:"peerIP,omitempty"`
	ASNumber      ASNumber  `json:"asNumber,omitempty"`
	LocalASNumber *ASNumber `json:"localASNumber,omitempty"`
	// PeerSelector peers with the selected Calico nodes instead of PeerIP.
	PeerSelector             string          `json:"peerSelector,omitempty"`
	KeepOriginalNextHop      bool            `json:"keepOriginalNextHop,omitempty"`
	NextHopMode              *NextHopMode    `json:"nextHopMode,omitempty"`
	Password                 *BGPPassword    `json:"password,omitempty"`
	SourceAddress            SourceAddress   `json:"sourceAddress,omitempty"`
	MaxRestartTime           *Duration       `json:"maxRestartTime,omitempty"`
	KeepaliveTime            *Duration       `json:"keepaliveTime,omitempty"`
	NumAllowedLocalASNumbers *int32          `json:"numAllowedLocalASNumbers,omitempty"`
	TTLSecurity              *uint8          `json:"ttlSecurity,omitempty"`
	Filters                  []string        `json:"filters,omitempty"`
	ReachableBy              string          `json:"reachableBy,omitempty"`
	LocalWorkloadSelector    string          `json:"localWorkloadSelector,omitempty"`
	ReversePeering           *ReversePeering `json:"reversePeering,omitempty"`
}

// SourceAddress says which source address peerings use.
type SourceAddress string

// Source address modes.
const (
	SourceAddressUseNodeIP SourceAddress = "UseNodeIP"
	SourceAddressNone      SourceAddress = "None"
)

// NextHopMode says how the next hop of routes sent to a peer is set.
type NextHopMode string

// Next hop modes.
const (
	NextHopModeAuto NextHopMode = "Auto"
	NextHopModeSelf NextHopMode = "Self"
	NextHopModeKeep NextHopMode = "Keep"
)

// ReversePeering says whether selected Calico nodes peer back automatically.
type ReversePeering string

// Reverse peering modes.
const (
	ReversePeeringAuto   ReversePeering = "Auto"
	ReversePeeringManual ReversePeering = "Manual"
)

// BGPPassword says where a BGP password comes from.
type BGPPassword struct {
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// NewBGPPeer returns an empty BGPPeer with its type metadata set.
func NewBGPPeer() *BGPPeer {
	return &BGPPeer{TypeMeta: TypeMeta{Kind: KindBGPPeer, APIVersion: APIVersion}}
}

// Default sets only missing type metadata: Calico stores BGPPeers as given.
func (p *BGPPeer) Default() { infraTypeMeta(&p.TypeMeta, KindBGPPeer) }

// Validate checks the peer's addresses, selectors and their combinations.
func (p *BGPPeer) Validate() error {
	v := newValidator()
	v.meta(KindBGPPeer, &p.ObjectMeta, false)
	const f = "BGPPeer.Spec."
	s := &p.Spec
	if s.Node != "" {
		v.name(f+"Node", s.Node)
		if s.NodeSelector != "" {
			v.add(f+"Node", s.Node, "Node field must be empty when NodeSelector is specified")
		}
	}
	for _, sel := range []struct{ field, s string }{
		{"NodeSelector", s.NodeSelector}, {"PeerSelector", s.PeerSelector}, {"LocalWorkloadSelector", s.LocalWorkloadSelector},
	} {
		if sel.s != "" {
			v.selector(f+sel.field, sel.s)
		}
	}
	if s.PeerIP != "" {
		v.ipPort(f+"PeerIP", s.PeerIP)
		if s.PeerSelector != "" {
			v.add(f+"PeerIP", s.PeerIP, "PeerIP field must be empty when PeerSelector is specified")
		}
	}
	if s.ASNumber != 0 && s.PeerSelector != "" {
		v.add(f+"ASNumber", s.ASNumber, "ASNumber field must be empty when PeerSelector is specified")
	}
	if s.LocalWorkloadSelector != "" {
		if s.PeerIP != "" {
			v.add(f+"PeerIP", s.PeerIP, "peerIP must be empty when localWorkloadSelector is set")
		}
		if s.PeerSelector != "" {
			v.add(f+"PeerSelector", s.PeerSelector, "peerSelector must be empty when localWorkloadSelector is set")
		}
		if s.ASNumber == 0 {
			v.add(f+"ASNumber", s.ASNumber, "asNumber is required when localWorkloadSelector is set")
		}
	}
	if s.SourceAddress != "" {
		v.oneOf(f+"SourceAddress", string(s.SourceAddress), string(SourceAddressUseNodeIP), string(SourceAddressNone))
	}
	if s.NextHopMode != nil {
		v.oneOf(f+"NextHopMode", string(*s.NextHopMode), string(NextHopModeAuto), string(NextHopModeSelf), string(NextHopModeKeep))
		if s.KeepOriginalNextHop {
			v.add(f+"NextHopMode", *s.NextHopMode, "keepOriginalNextHop and nextHopMode cannot both be set")
		}
	}
	if s.ReversePeering != nil {
		v.oneOf(f+"ReversePeering", string(*s.ReversePeering), string(ReversePeeringAuto), string(ReversePeeringManual))
	}
	if s.Password != nil {
		requireSecretKeyRef(v, f+"Password.SecretKeyRef", s.Password.SecretKeyRef)
	}
	requireNonNegativeDuration(v, f+"MaxRestartTime", s.MaxRestartTime)
	requireNonNegativeDuration(v, f+"KeepaliveTime", s.KeepaliveTime)
	if n := s.NumAllowedLocalASNumbers; n != nil && *n < 0 {
		v.add(f+"NumAllowedLocalASNumbers", *n, "must not be negative")
	}
	for i, name := range s.Filters {
		v.name(f+"Filters["+strconv.Itoa(i)+"]", name)
	}
	validateReachableBy(v, s)
	return v.err()
}

func validateReachableBy(v *validator, s *BGPPeerSpec) {
	const f = "BGPPeer.Spec.ReachableBy"
	if s.ReachableBy == "" {
		return
	}
	gw, ok := parseIPAddr(s.ReachableBy)
	if !ok {
		v.add(f, s.ReachableBy, "ReachableBy is invalid address")
		return
	}
	if s.PeerIP == "" {
		v.add(f, s.ReachableBy, "reachableBy requires peerIP")
		return
	}
	host := s.PeerIP
	if h, _, ok := splitPeerIPPort(s.PeerIP); ok {
		host = h
	}
	peer, ok := parseIPAddr(host)
	if !ok {
		return // reported against PeerIP
	}
	if peer.Is4() != gw.Is4() {
		v.add(f, s.ReachableBy, "ReachableBy and PeerIP address family mismatched")
	}
}

var (
	peerIPv4PortRe = lazyRegexp(`^(\d+)\.(\d+)\.(\d+)\.(\d+):(\d+)$`)
	peerIPv6PortRe = lazyRegexp(`^\[([0-9a-fA-F:.]+)\]:(\d+)$`)
)

// splitPeerIPPort splits "IPv4:port" or "[IPv6]:port"; ok is false for a bare IP.
func splitPeerIPPort(s string) (host, port string, ok bool) {
	if m := peerIPv6PortRe().FindStringSubmatch(s); m != nil {
		return m[1], m[2], true
	}
	if peerIPv4PortRe().MatchString(s) {
		i := strings.LastIndexByte(s, ':')
		return s[:i], s[i+1:], true
	}
	return "", "", false
}

// BGPConfiguration holds cluster-wide ("default") or per-node ("node.<name>")
// BGP settings.
type BGPConfiguration struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`

	Spec BGPConfigurationSpec `json:"spec,omitempty"`
}

// BGPConfigurationSpec is the specification of a BGPConfiguration.
type BGPConfigurationSpec struct {
	LogSeverityScreen string `json:"logSeverityScreen,omitempty"`
	// NodeToNodeMeshEnabled defaults to true when unset.
	NodeToNodeMeshEnabled *bool `json:"nodeToNodeMeshEnabled,omitempty"`
	// ASNumber defaults to 64512 when unset.
	ASNumber               *ASNumber                    `json:"asNumber,omitempty"`
	ServiceLoadBalancerIPs []ServiceLoadBalancerIPBlock `json:"serviceLoadBalancerIPs,omitempty"`
	ServiceExternalIPs     []ServiceExternalIPBlock     `json:"serviceExternalIPs,omitempty"`
	ServiceClusterIPs      []ServiceClusterIPBlock      `json:"serviceClusterIPs,omitempty"`
	Communities            []Community                  `json:"communities,omitempty"`
	PrefixAdvertisements   []PrefixAdvertisement        `json:"prefixAdvertisements,omitempty"`
	// ListenPort defaults to 179 when unset.
	ListenPort                     uint16                          `json:"listenPort,omitempty"`
	NodeMeshPassword               *BGPPassword                    `json:"nodeMeshPassword,omitempty"`
	NodeMeshMaxRestartTime         *Duration                       `json:"nodeMeshMaxRestartTime,omitempty"`
	BindMode                       *BindMode                       `json:"bindMode,omitempty"`
	IgnoredInterfaces              []string                        `json:"ignoredInterfaces,omitempty"`
	ServiceLoadBalancerAggregation *ServiceLoadBalancerAggregation `json:"serviceLoadBalancerAggregation,omitempty"`
	LocalWorkloadPeeringIPV4       string                          `json:"localWorkloadPeeringIPV4,omitempty"`
	LocalWorkloadPeeringIPV6       string                          `json:"localWorkloadPeeringIPV6,omitempty"`
	ProgramClusterRoutes           *string                         `json:"programClusterRoutes,omitempty"`
	IPv4NormalRoutePriority        *int                            `json:"ipv4NormalRoutePriority,omitempty"`
	IPv6NormalRoutePriority        *int                            `json:"ipv6NormalRoutePriority,omitempty"`
}

// ServiceLoadBalancerIPBlock is one advertised LoadBalancer CIDR.
type ServiceLoadBalancerIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// ServiceExternalIPBlock is one advertised external IP CIDR.
type ServiceExternalIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// ServiceClusterIPBlock is one advertised cluster IP CIDR.
type ServiceClusterIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// Community names a BGP community value ("aa:nn" or "aa:nn:mm").
type Community struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// PrefixAdvertisement attaches communities to a prefix.
type PrefixAdvertisement struct {
	CIDR string `json:"cidr,omitempty"`
	// Communities are names from Spec.Communities or literal values.
	Communities []string `json:"communities,omitempty"`
}

// BindMode says which addresses BIRD listens on.
type BindMode string

// Bind modes.
const (
	BindModeNone   BindMode = "None"
	BindModeNodeIP BindMode = "NodeIP"
)

// ServiceLoadBalancerAggregation says whether LoadBalancer IPs are advertised aggregated.
type ServiceLoadBalancerAggregation string

// Aggregation modes.
const (
	ServiceLoadBalancerAggregationEnabled  ServiceLoadBalancerAggregation = "Enabled"
	ServiceLoadBalancerAggregationDisabled ServiceLoadBalancerAggregation = "Disabled"
)

// Cluster-wide BGP defaults applied by consumers when fields are unset.
const (
	DefaultASNumber      ASNumber = 64512
	DefaultBGPListenPort uint16   = 179
)

var ignoredInterfaceRe = lazyRegexp(`^[a-zA-Z0-9_.*-]{1,15}$`)

// NewBGPConfiguration returns an empty BGPConfiguration with its type metadata set.
func NewBGPConfiguration() *BGPConfiguration {
	return &BGPConfiguration{TypeMeta: TypeMeta{Kind: KindBGPConfiguration, APIVersion: APIVersion}}
}

// Default fills missing type metadata and sets serviceLoadBalancerAggregation
// to Enabled, as Calico's CRD default does; everything else is defaulted by
// its readers.
func (c *BGPConfiguration) Default() {
	infraTypeMeta(&c.TypeMeta, KindBGPConfiguration)
	if c.Spec.ServiceLoadBalancerAggregation == nil {
		c.Spec.ServiceLoadBalancerAggregation = ptrTo(ServiceLoadBalancerAggregationEnabled)
	}
}

// Validate checks the name form, default-only fields and every value.
func (c *BGPConfiguration) Validate() error {
	v := newValidator()
	v.meta(KindBGPConfiguration, &c.ObjectMeta, false)
	validateConfigName(v, "BGPConfiguration", c.Name)
	const f = "BGPConfiguration.Spec."
	s := &c.Spec
	if c.Name != "default" {
		validateBGPDefaultOnly(v, s)
	}
	if s.LogSeverityScreen != "" {
		v.oneOf(f+"LogSeverityScreen", s.LogSeverityScreen, "Debug", "Info", "Warning", "Error", "Fatal")
	}
	for i, b := range s.ServiceLoadBalancerIPs {
		requireServiceCIDR(v, fmt.Sprintf("%sServiceLoadBalancerIPs[%d].CIDR", f, i), b.CIDR)
	}
	for i, b := range s.ServiceExternalIPs {
		requireServiceCIDR(v, fmt.Sprintf("%sServiceExternalIPs[%d].CIDR", f, i), b.CIDR)
	}
	for i, b := range s.ServiceClusterIPs {
		requireServiceCIDR(v, fmt.Sprintf("%sServiceClusterIPs[%d].CIDR", f, i), b.CIDR)
	}
	validateCommunities(v, s)
	if s.NodeMeshPassword != nil {
		requireSecretKeyRef(v, f+"NodeMeshPassword.SecretKeyRef", s.NodeMeshPassword.SecretKeyRef)
	}
	requireNonNegativeDuration(v, f+"NodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime)
	if s.BindMode != nil {
		v.oneOf(f+"BindMode", string(*s.BindMode), string(BindModeNone), string(BindModeNodeIP))
	}
	for i, name := range s.IgnoredInterfaces {
		if name == "*" || !ignoredInterfaceRe().MatchString(name) {
			v.add(fmt.Sprintf("%sIgnoredInterfaces[%d]", f, i), name, "invalid interface name")
		}
	}
	if a := s.ServiceLoadBalancerAggregation; a != nil {
		v.oneOf(f+"ServiceLoadBalancerAggregation", string(*a),
			string(ServiceLoadBalancerAggregationEnabled), string(ServiceLoadBalancerAggregationDisabled))
	}
	if s.LocalWorkloadPeeringIPV4 != "" {
		requireIPv4Addr(v, f+"LocalWorkloadPeeringIPV4", s.LocalWorkloadPeeringIPV4)
	}
	if s.LocalWorkloadPeeringIPV6 != "" {
		requireIPv6Addr(v, f+"LocalWorkloadPeeringIPV6", s.LocalWorkloadPeeringIPV6)
	}
	if s.ProgramClusterRoutes != nil {
		v.oneOf(f+"ProgramClusterRoutes", *s.ProgramClusterRoutes, "Enabled", "Disabled")
	}
	requireIntRange(v, f+"IPv4NormalRoutePriority", s.IPv4NormalRoutePriority, 1, 2147483646)
	requireIntRange(v, f+"IPv6NormalRoutePriority", s.IPv6NormalRoutePriority, 1, 2147483646)
	return v.err()
}

// validateBGPDefaultOnly reports fields that only the "default" resource may set.
func validateBGPDefaultOnly(v *validator, s *BGPConfigurationSpec) {
	const f = "BGPConfiguration.Spec."
	if s.NodeToNodeMeshEnabled != nil {
		v.add(f+"NodeToNodeMeshEnabled", *s.NodeToNodeMeshEnabled, "Cannot set nodeToNodeMeshEnabled on a non default BGP Configuration.")
	}
	if s.ASNumber != nil {
		v.add(f+"ASNumber", *s.ASNumber, "Cannot set ASNumber on a non default BGP Configuration.")
	}
	if len(s.ServiceLoadBalancerIPs) > 0 {
		v.add(f+"ServiceLoadBalancerIPs", s.ServiceLoadBalancerIPs, "Cannot set ServiceLoadBalancerIPs on a non default BGP Configuration.")
	}
	if len(s.ServiceExternalIPs) > 0 {
		v.add(f+"ServiceExternalIPs", s.ServiceExternalIPs, "Cannot set ServiceExternalIPs on a non default BGP Configuration.")
	}
	if len(s.ServiceClusterIPs) > 0 {
		v.add(f+"ServiceClusterIPs", s.ServiceClusterIPs, "Cannot set ServiceClusterIPs on a non default BGP Configuration.")
	}
	if s.NodeMeshPassword != nil {
		v.add(f+"NodeMeshPassword", "", "Cannot set NodeMeshPassword on a non default BGP Configuration.")
	}
	if s.NodeMeshMaxRestartTime != nil {
		v.add(f+"NodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime.Duration.String(), "Cannot set NodeMeshMaxRestartTime on a non default BGP Configuration.")
	}
}

func requireServiceCIDR(v *validator, field, s string) {
	if s == "" {
		return
	}
	if _, ok := parseStrictNet(s); !ok {
		v.add(field, s, "must be a valid, strictly masked CIDR")
	}
}

// validateCommunities applies Calico's community and prefix advertisement rules.
func validateCommunities(v *validator, s *BGPConfigurationSpec) {
	const f = "BGPConfiguration.Spec."
	defined := make(map[string]bool, len(s.Communities))
	for i, c := range s.Communities {
		field := fmt.Sprintf("%sCommunities[%d]", f, i)
		if c.Name == "" {
			v.add(field+".Name", c.Name, "community name must be specified")
		} else {
			v.name(field+".Name", c.Name)
			defined[c.Name] = true
		}
		reportCommunityValue(v, field+".Value", c.Value)
	}
	if len(s.Communities) > 0 && len(s.PrefixAdvertisements) == 0 {
		v.add(f+"Communities", len(s.Communities), "communities are defined but not used in Spec.PrefixAdvertisement[].")
	}
	for i, pa := range s.PrefixAdvertisements {
		field := fmt.Sprintf("%sPrefixAdvertisements[%d]", f, i)
		if _, err := ParseCIDR(pa.CIDR); err != nil {
			v.add(field+".CIDR", pa.CIDR, "invalid CIDR value.")
		}
		if len(pa.Communities) == 0 {
			v.add(field+".Communities", "[]", "communities must be specified")
		}
		for j, c := range pa.Communities {
			if !communityValueOK(c) && !defined[c] {
				v.add(fmt.Sprintf("%s.Communities[%d]", field, j), c, "community used is invalid or not defined.")
			}
		}
	}
}

// reportCommunityValue reports a community value with Calico's two messages:
// wrong format, or a part too large for its community type.
func reportCommunityValue(v *validator, field, val string) {
	switch {
	case communityValueOK(val):
	case standardCommRe().MatchString(val):
		v.add(field, val, "invalid community value, expected 16 bit value")
	case largeCommRe().MatchString(val):
		v.add(field, val, "invalid community value, expected 32 bit value")
	default:
		v.add(field, val, "invalid community value or format used.")
	}
}

// validateConfigName checks the node part of a "node.<nodename>" name.
// Calico applies only "default" and "node.<nodename>" but accepts any
// valid name, so manifests with other names still load.
func validateConfigName(v *validator, kind, name string) {
	node, ok := strings.CutPrefix(name, "node.")
	if ok && (node == "" || len(node) > 253 || !dns1123Subdomain().MatchString(node)) {
		v.add("Metadata.Name", name, kind+" name \"node.<nodename>\" needs a valid node name")
	}
}
