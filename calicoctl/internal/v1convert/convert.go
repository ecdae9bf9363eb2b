package v1convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"sigs.k8s.io/yaml"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// Convert reads v1 manifests (YAML or JSON; documents separated by
// "---", a top-level list, or a "<kind>List" with items) and returns
// their v3 equivalents in order.
func Convert(data []byte) ([]v3.Resource, error) {
	var out []v3.Resource
	for i, doc := range splitDocuments(data) {
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		j = bytes.TrimSpace(j)
		if len(j) == 0 || bytes.Equal(j, []byte("null")) {
			continue
		}
		items, err := listItems(j)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		for k, item := range items {
			r, err := convertOne(item)
			if err != nil {
				if len(items) > 1 {
					return nil, fmt.Errorf("document %d item %d: %w", i+1, k+1, err)
				}
				return nil, fmt.Errorf("document %d: %w", i+1, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// splitDocuments splits YAML on "---" lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if t := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(t, []byte("---")) {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}

// listItems unwraps a top-level array or a "...List" object.
func listItems(j []byte) ([]json.RawMessage, error) {
	if j[0] == '[' {
		var items []json.RawMessage
		return items, json.Unmarshal(j, &items)
	}
	var tm struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, errors.New("a manifest must be a mapping with kind and apiVersion")
	}
	if strings.HasSuffix(tm.Kind, "List") {
		return tm.Items, nil
	}
	return []json.RawMessage{j}, nil
}

// strict decodes item into v, rejecting unknown fields.
func strict(kind, name string, item []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(item))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		return fmt.Errorf("%s %q: %s", kind, name, msg)
	}
	return nil
}

func convertOne(item []byte) (v3.Resource, error) {
	var tm typeMeta
	if err := json.Unmarshal(item, &tm); err != nil {
		return nil, fmt.Errorf("reading kind and apiVersion: %w", err)
	}
	switch tm.APIVersion {
	case "v1":
	case "":
		return nil, fmt.Errorf("apiVersion is required (convert reads apiVersion v1 manifests)")
	default:
		return nil, fmt.Errorf("unsupported apiVersion %q: convert reads apiVersion v1 manifests", tm.APIVersion)
	}
	var name struct {
		Metadata struct {
			Name string `json:"name"`
			CIDR string `json:"cidr"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(item, &name)
	id := name.Metadata.Name + name.Metadata.CIDR
	switch strings.ToLower(tm.Kind) {
	case "ippool":
		var p ipPool
		if err := strict(tm.Kind, id, item, &p); err != nil {
			return nil, err
		}
		return convertIPPool(&p)
	case "policy":
		var p policy
		if err := strict(tm.Kind, id, item, &p); err != nil {
			return nil, err
		}
		return convertPolicy(&p)
	case "profile":
		var p profile
		if err := strict(tm.Kind, id, item, &p); err != nil {
			return nil, err
		}
		return convertProfile(&p)
	case "hostendpoint":
		var h hostEndpoint
		if err := strict(tm.Kind, id, item, &h); err != nil {
			return nil, err
		}
		return convertHostEndpoint(&h)
	case "workloadendpoint":
		var w workloadEndpoint
		if err := strict(tm.Kind, id, item, &w); err != nil {
			return nil, err
		}
		return convertWorkloadEndpoint(&w)
	case "bgppeer":
		var b bgpPeer
		if err := strict(tm.Kind, id, item, &b); err != nil {
			return nil, err
		}
		return convertBGPPeer(&b)
	case "node":
		var n node
		if err := strict(tm.Kind, id, item, &n); err != nil {
			return nil, err
		}
		return convertNode(&n)
	case "":
		return nil, errors.New("kind is required")
	}
	return nil, fmt.Errorf("conversion for the resource type '%s' is not supported", tm.Kind)
}

// fieldErr names a bad v1 field and value.
func fieldErr(field, value, reason string) error {
	return fmt.Errorf("error with field %s = '%s' (%s)", field, value, reason)
}

func convertIPPool(p *ipPool) (v3.Resource, error) {
	pf, err := netip.ParsePrefix(p.Metadata.CIDR)
	if err != nil {
		return nil, fieldErr("metadata.cidr", p.Metadata.CIDR, "must be a CIDR")
	}
	pf = pf.Masked()
	ipip := v3.IPIPModeNever
	if c := p.Spec.IPIP; c != nil {
		switch strings.ToLower(c.Mode) {
		case "", "always":
			if c.Enabled {
				ipip = v3.IPIPModeAlways
			}
		case "cross-subnet":
			if c.Enabled {
				ipip = v3.IPIPModeCrossSubnet
			}
		default:
			return nil, fieldErr("spec.ipip.mode", c.Mode, "must be always or cross-subnet")
		}
	}
	out := v3.NewIPPool()
	out.Name = cidrToName(pf)
	out.Spec = v3.IPPoolSpec{
		CIDR:         pf.String(),
		IPIPMode:     ipip,
		VXLANMode:    v3.VXLANModeNever,
		NATOutgoing:  p.Spec.NATOutgoing,
		Disabled:     p.Spec.Disabled,
		NodeSelector: "all()",
		AllowedUses:  []v3.IPPoolAllowedUse{v3.IPPoolAllowedUseWorkload, v3.IPPoolAllowedUseTunnel},
		BlockSize:    v3.DefaultBlockSizeV6,
	}
	if pf.Addr().Is4() {
		out.Spec.BlockSize = v3.DefaultBlockSizeV4
	}
	if p.Spec.AssignmentMode != "" {
		m := p.Spec.AssignmentMode
		out.Spec.AssignmentMode = &m
	}
	return out, nil
}

func convertPolicy(p *policy) (v3.Resource, error) {
	const tier = v3.DefaultTierName
	out := v3.NewGlobalNetworkPolicy()
	out.Name = tier + "." + convertNameNoDots(p.Metadata.Name)
	out.Annotations = p.Metadata.Annotations
	out.Labels = map[string]string{v3.LabelTier: tier}
	s := &out.Spec
	s.Tier = tier
	s.Order = p.Spec.Order
	var err error
	if s.Ingress, err = convertRules("spec.ingress", p.Spec.IngressRules); err != nil {
		return nil, err
	}
	if s.Egress, err = convertRules("spec.egress", p.Spec.EgressRules); err != nil {
		return nil, err
	}
	s.Selector = convertSelector(p.Spec.Selector)
	s.DoNotTrack = p.Spec.DoNotTrack
	s.PreDNAT = p.Spec.PreDNAT
	s.ApplyOnForward = p.Spec.ApplyOnForward || p.Spec.DoNotTrack || p.Spec.PreDNAT
	switch {
	case len(p.Spec.Types) > 0:
		for i, t := range p.Spec.Types {
			switch strings.ToLower(t) {
			case "ingress":
				s.Types = append(s.Types, v3.PolicyTypeIngress)
			case "egress":
				s.Types = append(s.Types, v3.PolicyTypeEgress)
			default:
				return nil, fieldErr(fmt.Sprintf("spec.types[%d]", i), t, "must be ingress or egress")
			}
		}
	case len(p.Spec.EgressRules) == 0:
		s.Types = []v3.PolicyType{v3.PolicyTypeIngress}
	case len(p.Spec.IngressRules) == 0:
		s.Types = []v3.PolicyType{v3.PolicyTypeEgress}
	default:
		s.Types = []v3.PolicyType{v3.PolicyTypeIngress, v3.PolicyTypeEgress}
	}
	return out, nil
}

func convertProfile(p *profile) (v3.Resource, error) {
	out := v3.NewProfile()
	out.Name = convertProfileName(p.Metadata.Name)
	labels := map[string]string{}
	for k, v := range p.Metadata.Labels {
		labels[k] = v
	}
	for _, t := range p.Metadata.Tags {
		if v, ok := labels[t]; ok {
			return nil, fmt.Errorf("tag: '%s' and label '%s == %s' have the same value for profile %s: change the label key before proceeding", t, t, v, out.Name)
		}
		labels[t] = ""
	}
	if len(labels) > 0 {
		out.Spec.LabelsToApply = labels
	}
	var err error
	if out.Spec.Ingress, err = convertRules("spec.ingress", p.Spec.IngressRules); err != nil {
		return nil, err
	}
	if out.Spec.Egress, err = convertRules("spec.egress", p.Spec.EgressRules); err != nil {
		return nil, err
	}
	return out, nil
}

func convertHostEndpoint(h *hostEndpoint) (v3.Resource, error) {
	nodeName := normalizeName(h.Metadata.Node)
	out := v3.NewHostEndpoint()
	out.Name = convertName(nodeName + "." + h.Metadata.Name)
	out.Labels = h.Metadata.Labels
	out.Spec.Node = nodeName
	out.Spec.InterfaceName = h.Spec.InterfaceName
	var v4, v6 []string
	for i, s := range h.Spec.ExpectedIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("spec.expectedIPs[%d]", i), s, "must be an IP address")
		}
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	out.Spec.ExpectedIPs = append(v4, v6...)
	out.Spec.Profiles = convertProfiles(h.Spec.Profiles)
	for _, p := range h.Spec.Ports {
		out.Spec.Ports = append(out.Spec.Ports, v3.EndpointPort{Name: p.Name, Protocol: protocol(p.Protocol), Port: p.Port})
	}
	return out, nil
}

func convertProfiles(in []string) []string {
	var out []string
	for _, p := range in {
		out = append(out, convertProfileName(p))
	}
	return out
}

func convertWorkloadEndpoint(w *workloadEndpoint) (v3.Resource, error) {
	m := &w.Metadata
	out := v3.NewWorkloadEndpoint()
	out.Namespace = v3.DefaultNamespace
	s := &out.Spec
	switch m.Orchestrator {
	case v3.OrchestratorKubernetes:
		ns, pod, ok := strings.Cut(m.Workload, ".")
		if !ok {
			return nil, fmt.Errorf("malformed k8s workload ID '%s': workload was not added through the Calico CNI plugin and cannot be converted", m.Workload)
		}
		out.Namespace, s.Pod, s.ContainerID = ns, pod, m.ActiveInstanceID
	case v3.OrchestratorCNI:
		s.ContainerID = m.Workload
	case v3.OrchestratorDocker:
		s.Workload = "libnetwork"
	default:
		s.Workload = convertName(m.Workload)
	}
	out.Labels = map[string]string{}
	for k, v := range m.Labels {
		out.Labels[k] = v
	}
	if v, ok := out.Labels["calico/k8s_ns"]; ok {
		out.Labels[v3.LabelNamespace] = v
		delete(out.Labels, "calico/k8s_ns")
	}
	s.Orchestrator = convertName(m.Orchestrator)
	s.Node = normalizeName(m.Node)
	s.Endpoint = convertName(m.Name)
	var v4, v6 []string
	for i, n := range w.Spec.IPNetworks {
		pf, err := parseNet(n)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("spec.ipNetworks[%d]", i), n, "must be a CIDR")
		}
		if pf.Addr().Is4() {
			v4 = append(v4, pf.String())
		} else {
			v6 = append(v6, pf.String())
		}
	}
	s.IPNetworks = append(v4, v6...)
	var nat4, nat6 []v3.IPNAT
	for _, n := range w.Spec.IPNATs {
		if a, err := netip.ParseAddr(n.InternalIP); err == nil && a.Is6() {
			nat6 = append(nat6, v3.IPNAT(n))
		} else {
			nat4 = append(nat4, v3.IPNAT(n))
		}
	}
	s.IPNATs = append(nat4, nat6...)
	s.IPv4Gateway, s.IPv6Gateway = w.Spec.IPv4Gateway, w.Spec.IPv6Gateway
	s.Profiles = convertProfiles(w.Spec.Profiles)
	s.InterfaceName = w.Spec.InterfaceName
	s.MAC = w.Spec.MAC
	for _, p := range w.Spec.Ports {
		s.Ports = append(s.Ports, v3.WorkloadEndpointPort{Name: p.Name, Protocol: protocol(p.Protocol), Port: p.Port})
	}
	name, err := out.ExpectedName()
	if err != nil {
		return nil, err
	}
	out.Name = name
	return out, nil
}

func convertBGPPeer(b *bgpPeer) (v3.Resource, error) {
	ip, err := netip.ParseAddr(b.Metadata.PeerIP)
	if err != nil {
		return nil, fieldErr("metadata.peerIP", b.Metadata.PeerIP, "must be an IP address")
	}
	out := v3.NewBGPPeer()
	out.Spec.PeerIP = ip.String()
	out.Spec.ASNumber = b.Spec.ASNumber
	switch b.Metadata.Scope {
	case "global":
		if b.Metadata.Node != "" {
			return nil, fieldErr("metadata.node", b.Metadata.Node, "a global peer has no node")
		}
		out.Name = ipToName(ip)
	case "node":
		if b.Metadata.Node == "" {
			return nil, fieldErr("metadata.node", "", "a node peer needs a node")
		}
		n := normalizeName(b.Metadata.Node)
		out.Spec.Node = n
		out.Name = n + "." + ipToName(ip)
	default:
		return nil, fieldErr("metadata.scope", b.Metadata.Scope, "must be global or node")
	}
	return out, nil
}

func convertNode(n *node) (v3.Resource, error) {
	out := v3.NewNode()
	out.Name = normalizeName(n.Metadata.Name)
	if b := n.Spec.BGP; b != nil {
		if b.IPv4Address == "" && b.IPv6Address == "" {
			return nil, fieldErr("spec.bgp", "", "needs ipv4Address or ipv6Address")
		}
		out.Spec.BGP = &v3.NodeBGPSpec{ASNumber: b.ASNumber}
		for _, a := range []struct {
			field, in string
			dst       *string
		}{{"spec.bgp.ipv4Address", b.IPv4Address, &out.Spec.BGP.IPv4Address}, {"spec.bgp.ipv6Address", b.IPv6Address, &out.Spec.BGP.IPv6Address}} {
			if a.in == "" {
				continue
			}
			pf, err := parseAddrNet(a.in)
			if err != nil {
				return nil, fieldErr(a.field, a.in, "must be an address with an optional prefix length")
			}
			*a.dst = pf.String()
		}
	}
	for _, r := range n.Spec.OrchRefs {
		out.Spec.OrchRefs = append(out.Spec.OrchRefs, v3.OrchRef{NodeName: r.NodeName, Orchestrator: r.Orchestrator})
	}
	return out, nil
}

// parseNet parses a CIDR, or a bare IP as a host network, and masks it.
func parseNet(s string) (netip.Prefix, error) {
	pf, err := parseAddrNet(s)
	return pf.Masked(), err
}

// parseAddrNet parses "ip/len" keeping the host bits, or a bare IP.
func parseAddrNet(s string) (netip.Prefix, error) {
	if pf, err := netip.ParsePrefix(s); err == nil {
		return pf, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// protocol canonicalizes a v1 protocol name ("tcp" → "TCP").
func protocol(p v3.Protocol) v3.Protocol {
	if p.Type == v3.NumOrStringString {
		return v3.ProtocolFromString(p.StrVal)
	}
	return p
}
