package v3

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Orchestrator names that decide how a WorkloadEndpoint is named.
const (
	OrchestratorKubernetes = "k8s"
	OrchestratorCNI        = "cni"
	OrchestratorDocker     = "libnetwork"
	OrchestratorOpenStack  = "openstack"
)

// WorkloadEndpoint is a workload's interface (a pod's veth) on a node.
type WorkloadEndpoint struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       WorkloadEndpointSpec `json:"spec,omitempty"`
}

// WorkloadEndpointSpec is the body of a WorkloadEndpoint.
type WorkloadEndpointSpec struct {
	Orchestrator               string                 `json:"orchestrator,omitempty"`
	Workload                   string                 `json:"workload,omitempty"`
	Node                       string                 `json:"node,omitempty"`
	ContainerID                string                 `json:"containerID,omitempty"`
	Pod                        string                 `json:"pod,omitempty"`
	Endpoint                   string                 `json:"endpoint,omitempty"`
	ServiceAccountName         string                 `json:"serviceAccountName,omitempty"`
	IPNetworks                 []string               `json:"ipNetworks,omitempty"`
	IPNATs                     []IPNAT                `json:"ipNATs,omitempty"`
	IPv4Gateway                string                 `json:"ipv4Gateway,omitempty"`
	IPv6Gateway                string                 `json:"ipv6Gateway,omitempty"`
	Profiles                   []string               `json:"profiles,omitempty"`
	InterfaceName              string                 `json:"interfaceName,omitempty"`
	MAC                        string                 `json:"mac,omitempty"`
	Ports                      []WorkloadEndpointPort `json:"ports,omitempty"`
	AllowSpoofedSourcePrefixes []string               `json:"allowSpoofedSourcePrefixes,omitempty"`
	QoSControls                *QoSControls           `json:"qosControls,omitempty"`
}

// WorkloadEndpointPort is a named or host-mapped port of a workload.
type WorkloadEndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
	HostPort uint16   `json:"hostPort"`
	HostIP   string   `json:"hostIP"`
}

// IPNAT is a 1:1 NAT from an external IP to one of the endpoint's IPs.
type IPNAT struct {
	InternalIP string `json:"internalIP"`
	ExternalIP string `json:"externalIP"`
}

// QoSControls limits a workload's bandwidth, packet rate and connections,
// and sets the DSCP of its egress traffic. Zero means unlimited.
type QoSControls struct {
	IngressBandwidth      int64 `json:"ingressBandwidth,omitempty"`
	IngressBurst          int64 `json:"ingressBurst,omitempty"`
	IngressPeakrate       int64 `json:"ingressPeakrate,omitempty"`
	IngressMinburst       int64 `json:"ingressMinburst,omitempty"`
	EgressBandwidth       int64 `json:"egressBandwidth,omitempty"`
	EgressBurst           int64 `json:"egressBurst,omitempty"`
	EgressPeakrate        int64 `json:"egressPeakrate,omitempty"`
	EgressMinburst        int64 `json:"egressMinburst,omitempty"`
	IngressPacketRate     int64 `json:"ingressPacketRate,omitempty"`
	IngressPacketBurst    int64 `json:"ingressPacketBurst,omitempty"`
	EgressPacketRate      int64 `json:"egressPacketRate,omitempty"`
	EgressPacketBurst     int64 `json:"egressPacketBurst,omitempty"`
	IngressMaxConnections int64 `json:"ingressMaxConnections,omitempty"`
	EgressMaxConnections  int64 `json:"egressMaxConnections,omitempty"`
	DSCP                  *DSCP `json:"dscp,omitempty"`
}

// NewWorkloadEndpoint returns an empty WorkloadEndpoint with kind and
// apiVersion set.
func NewWorkloadEndpoint() *WorkloadEndpoint {
	return &WorkloadEndpoint{TypeMeta: TypeMeta{Kind: KindWorkloadEndpoint, APIVersion: APIVersion}}
}

// WorkloadEndpointName joins the identifiers of a workload endpoint into its
// name, doubling each '-' inside a part: ("node-1", "k8s", "my-pod", "eth0")
// gives "node--1-k8s-my--pod-eth0". workload is the pod name for "k8s", the
// container ID for "cni", "libnetwork" for "libnetwork", and the workload
// name for any other orchestrator; ExpectedName picks it from a spec.
func WorkloadEndpointName(node, orchestrator, workload, endpoint string) string {
	parts := []string{node, orchestrator, workload, endpoint}
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "-", "--")
	}
	return strings.Join(parts, "-")
}

// epSegment is one identifier of a workload endpoint name.
type epSegment struct{ field, value string }

// segments returns the identifiers that make up the name, chosen by
// orchestrator as Calico does.
func (s *WorkloadEndpointSpec) segments() []epSegment {
	third := epSegment{"Workload", s.Workload}
	switch s.Orchestrator {
	case OrchestratorKubernetes:
		third = epSegment{"Pod", s.Pod}
	case OrchestratorCNI:
		third = epSegment{"ContainerID", s.ContainerID}
	case OrchestratorDocker:
		third = epSegment{"Orchestrator", s.Orchestrator}
	}
	return []epSegment{{"Node", s.Node}, {"Orchestrator", s.Orchestrator}, third, {"Endpoint", s.Endpoint}}
}

// ExpectedName returns the name Calico requires for this endpoint, or an
// error naming the spec field that is missing or starts or ends with '-'.
func (w *WorkloadEndpoint) ExpectedName() (string, error) {
	v := newValidator()
	name := epExpectedName(v, &w.Spec)
	if err := v.err(); err != nil {
		return "", err
	}
	return name, nil
}

func epExpectedName(v *validator, s *WorkloadEndpointSpec) string {
	segs := s.segments()
	for _, g := range segs {
		field := KindWorkloadEndpoint + ".Spec." + g.field
		switch {
		case g.value == "":
			v.add(field, g.value, "field should be assigned")
		case g.value[0] == '-':
			v.add(field, g.value, "field must not begin with a '-'")
		case g.value[len(g.value)-1] == '-':
			v.add(field, g.value, "field must not end with a '-'")
		}
	}
	return WorkloadEndpointName(segs[0].value, segs[1].value, segs[2].value, segs[3].value)
}

// Default sets the namespace to "default" when empty, the name from the
// spec when empty, and the namespace and orchestrator labels Calico stores.
func (w *WorkloadEndpoint) Default() {
	polTypeMeta(&w.TypeMeta, KindWorkloadEndpoint)
	if w.Namespace == "" {
		w.Namespace = DefaultNamespace
	}
	if w.Name == "" {
		if name, err := w.ExpectedName(); err == nil {
			w.Name = name
		}
	}
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	w.Labels[LabelNamespace] = w.Namespace
	w.Labels[LabelOrchestrator] = w.Spec.Orchestrator
}

var containerIDRe = lazyRegexp(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)

// Validate checks the endpoint as Calico does, including that its name is
// the one its spec identifiers give.
func (w *WorkloadEndpoint) Validate() error {
	v := newValidator()
	epMeta(v, KindWorkloadEndpoint, &w.ObjectMeta, true)
	const s = KindWorkloadEndpoint + ".Spec"
	sp := &w.Spec

	if expected := epExpectedName(v, sp); w.Name != "" && w.Name != expected {
		v.add("Metadata.Name", w.Name, "the WorkloadEndpoint name does not match the primary identifiers assigned in the Spec: expected name "+expected)
	}
	for _, f := range []epSegment{
		{"Orchestrator", sp.Orchestrator}, {"Workload", sp.Workload}, {"Node", sp.Node},
		{"Pod", sp.Pod}, {"Endpoint", sp.Endpoint}, {"ServiceAccountName", sp.ServiceAccountName},
	} {
		if f.value != "" {
			v.name(s+"."+f.field, f.value)
		}
	}
	if sp.ContainerID != "" && !containerIDRe().MatchString(sp.ContainerID) {
		v.add(s+".ContainerID", sp.ContainerID, "invalid container ID")
	}

	var nets []netip.Prefix
	for i, n := range sp.IPNetworks {
		f := s + ".IPNetworks[" + strconv.Itoa(i) + "]"
		pf, ok := v.cidr(f, n)
		if !ok {
			continue
		}
		if pf.Bits() != pf.Addr().BitLen() {
			v.add(f, n, "IP network contains multiple addresses")
			continue
		}
		nets = append(nets, pf)
	}
	for i, nat := range sp.IPNATs {
		f := s + ".IPNATs[" + strconv.Itoa(i) + "]"
		in, okIn := v.ip(f+".InternalIP", nat.InternalIP)
		ex, okEx := v.ip(f+".ExternalIP", nat.ExternalIP)
		if okIn && okEx && in.Is4() != ex.Is4() {
			v.add(f+".ExternalIP", nat.ExternalIP, "mismatched IP versions")
		}
		if okIn && !epContains(nets, in) {
			v.add(f+".InternalIP", nat.InternalIP, "NAT is not in the endpoint networks")
		}
	}
	if sp.IPv4Gateway != "" {
		if a, ok := v.ip(s+".IPv4Gateway", sp.IPv4Gateway); ok && !a.Unmap().Is4() {
			v.add(s+".IPv4Gateway", sp.IPv4Gateway, "invalid IPv4 gateway address specified")
		}
	}
	if sp.IPv6Gateway != "" {
		if a, ok := v.ip(s+".IPv6Gateway", sp.IPv6Gateway); ok && (a.Is4() || a.Is4In6()) {
			v.add(s+".IPv6Gateway", sp.IPv6Gateway, "invalid IPv6 gateway address specified")
		}
	}
	epProfiles(v, s, sp.Profiles)
	switch {
	case sp.InterfaceName == "":
		v.add(s+".InterfaceName", sp.InterfaceName, "interface name must be specified")
	case sp.InterfaceName != "*":
		v.interfaceName(s+".InterfaceName", sp.InterfaceName)
	}
	if sp.MAC != "" {
		if _, err := net.ParseMAC(sp.MAC); err != nil {
			v.add(s+".MAC", sp.MAC, "invalid MAC address")
		}
	}
	for i, p := range sp.Ports {
		f := s + ".Ports[" + strconv.Itoa(i) + "]"
		if p.Name != "" && !validPortName(p.Name) {
			v.add(f+".Name", p.Name, "invalid port name")
		}
		if p.Name == "" && p.HostPort == 0 {
			v.add(f+".Name", p.Name, "WorkloadEndpointPort name must not be empty if no HostPort is specified")
		}
		epPortProtocol(v, f, p.Protocol, "WorkloadEndpointPort")
		if p.Port == 0 {
			v.add(f+".Port", p.Port, "port must be between 1 and 65535")
		}
		if p.HostIP != "" {
			epNet(v, f+".HostIP", p.HostIP)
		}
	}
	for i, n := range sp.AllowSpoofedSourcePrefixes {
		v.cidr(s+".AllowSpoofedSourcePrefixes["+strconv.Itoa(i)+"]", n)
	}
	if q := sp.QoSControls; q != nil && q.DSCP != nil {
		if err := q.DSCP.Validate(); err != nil {
			v.add(s+".QoSControls.DSCP", q.DSCP.String(), err.Error())
		}
	}
	return v.err()
}

func epContains(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// HostEndpoint is one of a node's own interfaces, or all of them ("*").
type HostEndpoint struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       HostEndpointSpec `json:"spec,omitempty"`
}

// HostEndpointSpec is the body of a HostEndpoint.
type HostEndpointSpec struct {
	Node          string         `json:"node,omitempty"`
	InterfaceName string         `json:"interfaceName,omitempty"`
	ExpectedIPs   []string       `json:"expectedIPs,omitempty"`
	Profiles      []string       `json:"profiles,omitempty"`
	Ports         []EndpointPort `json:"ports,omitempty"`
}

// EndpointPort is a named port of a host endpoint.
type EndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
}

// NewHostEndpoint returns an empty HostEndpoint with kind and apiVersion set.
func NewHostEndpoint() *HostEndpoint {
	return &HostEndpoint{TypeMeta: TypeMeta{Kind: KindHostEndpoint, APIVersion: APIVersion}}
}

// Default sets kind and apiVersion when empty; there are no other defaults.
func (h *HostEndpoint) Default() { polTypeMeta(&h.TypeMeta, KindHostEndpoint) }

// Validate checks the endpoint as Calico does: a node, and an interface
// name ("*" for all) or expected IPs.
func (h *HostEndpoint) Validate() error {
	v := newValidator()
	epMeta(v, KindHostEndpoint, &h.ObjectMeta, false)
	const s = KindHostEndpoint + ".Spec"
	sp := &h.Spec
	if sp.Node == "" {
		v.add(s+".Node", sp.Node, "no node has been specified")
	} else {
		v.name(s+".Node", sp.Node)
	}
	switch {
	case sp.InterfaceName == "" && len(sp.ExpectedIPs) == 0:
		v.add(s+".InterfaceName", sp.InterfaceName, "no interface or expected IPs have been specified")
	case sp.InterfaceName != "" && sp.InterfaceName != "*":
		v.interfaceName(s+".InterfaceName", sp.InterfaceName)
	}
	for i, ip := range sp.ExpectedIPs {
		v.ip(s+".ExpectedIPs["+strconv.Itoa(i)+"]", ip)
	}
	epProfiles(v, s, sp.Profiles)
	for i, p := range sp.Ports {
		f := s + ".Ports[" + strconv.Itoa(i) + "]"
		if !validPortName(p.Name) {
			v.add(f+".Name", p.Name, "invalid port name")
		}
		epPortProtocol(v, f, p.Protocol, "EndpointPort")
		if p.Port == 0 {
			v.add(f+".Port", p.Port, "port must be between 1 and 65535")
		}
	}
	return v.err()
}

// epMeta checks metadata as validator.meta does, plus annotation keys.
func epMeta(v *validator, kind string, m *ObjectMeta, namespaced bool) {
	v.meta(kind, m, namespaced)
	ruleAnnotations(v, "Metadata.Annotations", m.Annotations)
}

// epNet checks an IP, or a CIDR masked to its network address.
func epNet(v *validator, field, s string) {
	if !strings.Contains(s, "/") {
		v.ip(field, s)
		return
	}
	if pf, err := netip.ParsePrefix(s); err != nil || pf.Masked() != pf || pf.Addr().Zone() != "" {
		v.add(field, s, "invalid CIDR")
	}
}

func epProfiles(v *validator, s string, profiles []string) {
	for i, p := range profiles {
		v.name(s+".Profiles["+strconv.Itoa(i)+"]", p)
	}
}

// epPortProtocol checks an endpoint port's protocol is valid and has ports.
func epPortProtocol(v *validator, f string, p Protocol, kind string) {
	if reason := protocolReason(p); reason != "" {
		v.add(f+".Protocol", p.String(), reason)
	} else if !p.SupportsPorts() {
		v.add(f+".Protocol", p.String(), kind+" protocol does not support ports.")
	}
}
