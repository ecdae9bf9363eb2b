package calc

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
)

// endpoint is a local workload or host endpoint, as the graph keeps it.
type endpoint struct {
	key      string              // of its item in the index
	workload *dpapi.Workload     // set for workload endpoints
	host     *dpapi.HostEndpoint // set for host endpoints
	profiles []string            // as listed
	// resolvedW and resolvedH are what resolve last made of it.
	resolvedW *dpapi.Workload
	resolvedH *dpapi.HostEndpoint
}

// policy is a policy as the graph keeps it: its selector and its rules
// already converted.
type policy struct {
	id                                 dpapi.PolicyID
	sortName                           string
	order                              *float64
	sel                                *entitySel
	ingress, egress                    bool
	preDNAT, untracked, applyOnForward bool
	out                                *dpapi.Policy
	sets                               map[string]setRef
}

// profile is a profile with its rules converted.
type profile struct {
	labels map[string]string
	out    *dpapi.Profile
	sets   map[string]setRef
}

// tier is a tier's order and default action.
type tier struct {
	order         *float64
	defaultAction string
}

func parseEndpointNets(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := parseNet(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// wepItem is w as an item; implicit gives its implicit labels (made by
// wepImplicit).
func wepItem(w *v3.WorkloadEndpoint, implicit func(ns, orchestrator, sa string) map[string]string) *item {
	it := &item{
		key:       wepItemKey(wepID(w.Namespace, w.Name)),
		namespace: w.Namespace,
		own:       w.Labels,
		nets:      parseEndpointNets(w.Spec.IPNetworks),
		implicit:  implicit(w.Namespace, w.Spec.Orchestrator, w.Spec.ServiceAccountName),
	}
	it.parents = append(append([]string(nil), w.Spec.Profiles...), namespaceParents(w.Namespace, w.Spec.ServiceAccountName)...)
	for _, p := range w.Spec.Ports {
		if p.Name != "" {
			it.ports = append(it.ports, namedPort{name: p.Name, proto: lowerProto(p.Protocol.String()), port: p.Port})
		}
	}
	return it
}

// wepImplicit is the labels Calico gives a workload endpoint of namespace
// ns, orchestrator and service account sa.
func wepImplicit(ns, orchestrator, sa string) map[string]string {
	m := map[string]string{v3.LabelNamespace: ns, nsLabelPrefix + labelName: ns}
	if orchestrator != "" {
		m[v3.LabelOrchestrator] = orchestrator
	}
	if sa != "" {
		m[labelServiceAccount] = sa
		m[saLabelPrefix+labelName] = sa
	}
	return m
}

func wepID(ns, name string) dpapi.WorkloadID { return dpapi.WorkloadID(ns + "/" + name) }

func hepItem(h *v3.HostEndpoint) *item {
	it := &item{key: hepItemKey(h.Name), own: h.Labels, parents: append([]string(nil), h.Spec.Profiles...)}
	for _, s := range h.Spec.ExpectedIPs {
		if p, err := parseNet(s); err == nil {
			it.nets = append(it.nets, p)
		}
	}
	for _, p := range h.Spec.Ports {
		it.ports = append(it.ports, namedPort{name: p.Name, proto: lowerProto(p.Protocol.String()), port: p.Port})
	}
	return it
}

func netsetItem(ns, name string, labels map[string]string, nets []string) *item {
	it := &item{key: netsetItemKey(ns, name), namespace: ns, own: labels, nets: parseEndpointNets(nets)}
	if ns != "" {
		it.implicit = map[string]string{v3.LabelNamespace: ns, nsLabelPrefix + labelName: ns}
		it.parents = namespaceParents(ns, "")
	}
	return it
}

// workloadOf builds the dataplane view of a local workload endpoint,
// without its policy lists.
func workloadOf(w *v3.WorkloadEndpoint) *dpapi.Workload {
	out := &dpapi.Workload{
		ID:     wepID(w.Namespace, w.Name),
		Iface:  w.Spec.InterfaceName,
		MAC:    w.Spec.MAC,
		Labels: w.Labels,
	}
	for _, p := range parseEndpointNets(w.Spec.IPNetworks) {
		if p.Addr().Is4() {
			out.IPv4 = append(out.IPv4, p)
		} else {
			out.IPv6 = append(out.IPv6, p)
		}
	}
	out.AllowSpoofedSourcePrefixes = parseEndpointNets(w.Spec.AllowSpoofedSourcePrefixes)
	for _, n := range w.Spec.IPNATs {
		in, err1 := netip.ParseAddr(n.InternalIP)
		ex, err2 := netip.ParseAddr(n.ExternalIP)
		if err1 == nil && err2 == nil {
			out.NATs = append(out.NATs, dpapi.NAT{Internal: in.Unmap(), External: ex.Unmap()})
		}
	}
	return out
}

func hostEndpointOf(h *v3.HostEndpoint) *dpapi.HostEndpoint {
	out := &dpapi.HostEndpoint{Name: h.Name, Iface: h.Spec.InterfaceName}
	for _, s := range h.Spec.ExpectedIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			out.Expected = append(out.Expected, a.Unmap())
		}
	}
	return out
}

// policyOf converts either policy kind.
func policyOf(r any) (*policy, []error) {
	var (
		meta              *v3.ObjectMeta
		tierName          string
		order             *float64
		ingress, egress   []v3.Rule
		sel, nsSel, saSel string
		types             []v3.PolicyType
		ns                string
		p                 = &policy{}
	)
	switch r := r.(type) {
	case *v3.NetworkPolicy:
		s := &r.Spec
		meta, tierName, order, ingress, egress = &r.ObjectMeta, s.Tier, s.Order, s.Ingress, s.Egress
		sel, saSel, types = s.Selector, s.ServiceAccountSelector, s.Types
		ns = meta.Namespace
		if ns == "" {
			ns = v3.DefaultNamespace
		}
	case *v3.GlobalNetworkPolicy:
		s := &r.Spec
		meta, tierName, order, ingress, egress = &r.ObjectMeta, s.Tier, s.Order, s.Ingress, s.Egress
		sel, nsSel, saSel, types = s.Selector, s.NamespaceSelector, s.ServiceAccountSelector, s.Types
		p.preDNAT, p.untracked, p.applyOnForward = s.PreDNAT, s.DoNotTrack, s.ApplyOnForward
	default:
		return nil, []error{fmt.Errorf("not a policy: %T", r)}
	}
	if tierName == "" {
		tierName = v3.DefaultTierName
	}
	p.id = dpapi.PolicyID{Tier: tierName, Namespace: ns, Name: meta.Name}
	p.sortName = meta.Name
	if ns != "" {
		p.sortName = ns + "/" + meta.Name
	}
	p.order = order
	var err error
	if p.sel, err = policyEntitySel(sel, nsSel, saSel, ns); err != nil {
		return nil, []error{err}
	}
	if len(types) == 0 { // as Calico's defaulting
		switch {
		case len(egress) == 0:
			types = []v3.PolicyType{v3.PolicyTypeIngress}
		case len(ingress) == 0:
			types = []v3.PolicyType{v3.PolicyTypeEgress}
		default:
			types = []v3.PolicyType{v3.PolicyTypeIngress, v3.PolicyTypeEgress}
		}
	}
	for _, t := range types {
		switch {
		case strings.EqualFold(string(t), string(v3.PolicyTypeIngress)):
			p.ingress = true
		case strings.EqualFold(string(t), string(v3.PolicyTypeEgress)):
			p.egress = true
		}
	}
	owner := ruleOwner(fmt.Sprintf("policy/%s/%s/%s", p.id.Tier, p.id.Namespace, p.id.Name))
	p.sets = map[string]setRef{}
	p.out = &dpapi.Policy{PreDNAT: p.preDNAT, Untracked: p.untracked, ApplyOnForward: p.applyOnForward}
	var errs, e []error
	if p.ingress {
		p.out.Inbound, e = convertRules(owner, "ingress", ingress, ns, p.sets)
		errs = append(errs, e...)
	}
	if p.egress {
		p.out.Outbound, e = convertRules(owner, "egress", egress, ns, p.sets)
		errs = append(errs, e...)
	}
	return p, errs
}

// profileOf converts a profile. One that fails validation, or with a
// rule that does not convert, is replaced whole by denyProfile (keeping
// its labels) and reported in the errors: dropping the bad rule alone
// could drop a deny and let through what the profile meant to stop.
func profileOf(name string, r *v3.Profile) (*profile, []error) {
	p := &profile{labels: r.Spec.LabelsToApply, sets: map[string]setRef{}, out: &dpapi.Profile{}}
	owner := ruleOwner("profile/" + name)
	var errs, e []error
	if err := r.Validate(); err != nil {
		errs = append(errs, err)
	}
	p.out.Inbound, e = convertRules(owner, "ingress", r.Spec.Ingress, "", p.sets)
	errs = append(errs, e...)
	p.out.Outbound, e = convertRules(owner, "egress", r.Spec.Egress, "", p.sets)
	errs = append(errs, e...)
	if len(errs) > 0 {
		d := denyProfile(name)
		d.labels = p.labels
		return d, errs
	}
	return p, nil
}

// denyProfile stands, in an endpoint's list, for a profile that does not
// exist or is invalid: it denies both directions there, so that a later
// profile cannot let in what the missing one might have denied (Calico
// fails closed the same way).
func denyProfile(name string) *profile {
	owner := ruleOwner("profile/" + name)
	deny := v3.Rule{Action: v3.Deny}
	return &profile{out: &dpapi.Profile{
		Inbound:  []dpapi.Rule{{ID: ruleID(owner, "ingress", 0, &deny), Action: dpapi.Deny}},
		Outbound: []dpapi.Rule{{ID: ruleID(owner, "egress", 0, &deny), Action: dpapi.Deny}},
	}}
}

func tierOf(t *v3.Tier) *tier {
	out := &tier{order: t.Spec.Order, defaultAction: string(v3.Deny)}
	if t.Spec.DefaultAction != nil && *t.Spec.DefaultAction == v3.Pass {
		out.defaultAction = string(v3.Pass)
	}
	return out
}

func poolOf(p *v3.IPPool) (*dpapi.Pool, error) {
	cidr, err := parseNet(p.Spec.CIDR)
	if err != nil {
		return nil, err
	}
	mode := func(s string) dpapi.EncapMode {
		switch dpapi.EncapMode(s) {
		case dpapi.EncapAlways, dpapi.EncapCrossSubnet:
			return dpapi.EncapMode(s)
		}
		return dpapi.EncapNever
	}
	return &dpapi.Pool{
		Name: p.Name, CIDR: cidr, NATOutgoing: p.Spec.NATOutgoing, Disabled: p.Spec.Disabled,
		IPIP: mode(string(p.Spec.IPIPMode)), VXLAN: mode(string(p.Spec.VXLANMode)),
	}, nil
}

// hostOf converts a Node. A VXLAN MAC the Node does not name is derived
// from the node name, as Calico's felix does, so hosts agree on it.
func hostOf(n *v3.Node) *dpapi.Host {
	h := &dpapi.Host{Name: n.Name, VXLANTunnelMAC: n.Spec.VXLANTunnelMACAddr, VXLANTunnelMACV6: n.Spec.VXLANTunnelMACAddrV6}
	if b := n.Spec.BGP; b != nil {
		h.IPv4, _ = parseHostPrefix(b.IPv4Address)
		h.IPv6, _ = parseHostPrefix(b.IPv6Address)
		h.IPIPTunnelAddr = tunnelAddr(b.IPv4IPIPTunnelAddr, false)
	}
	h.VXLANTunnelAddr = tunnelAddr(n.Spec.IPv4VXLANTunnelAddr, false)
	h.VXLANTunnelAddrV6 = tunnelAddr(n.Spec.IPv6VXLANTunnelAddr, true)
	if h.VXLANTunnelMAC == "" {
		h.VXLANTunnelMAC = nodeinfo.VXLANTunnelMAC(n.Name, false)
	}
	if h.VXLANTunnelMACV6 == "" {
		h.VXLANTunnelMACV6 = nodeinfo.VXLANTunnelMAC(n.Name, true)
	}
	return h
}

// tunnelAddr reads a Node's tunnel address field: "10.0.0.1", or with a
// prefix length as some writers store it ("10.0.0.1/32"); invalid when
// empty, malformed or of the other family.
func tunnelAddr(s string, v6 bool) netip.Addr {
	if p, err := netip.ParsePrefix(s); err == nil {
		s = p.Addr().String()
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Unmap().Is6() != v6 {
		return netip.Addr{}
	}
	return a.Unmap()
}

// serviceCIDRs are the service ranges a BGPConfiguration advertises.
func serviceCIDRs(c *v3.BGPConfiguration) []netip.Prefix {
	var out []netip.Prefix
	add := func(s string) {
		if p, err := parseNet(s); err == nil {
			out = append(out, p)
		}
	}
	for _, b := range c.Spec.ServiceClusterIPs {
		add(b.CIDR)
	}
	for _, b := range c.Spec.ServiceExternalIPs {
		add(b.CIDR)
	}
	for _, b := range c.Spec.ServiceLoadBalancerIPs {
		add(b.CIDR)
	}
	return out
}

// parseHostPrefix reads "192.168.1.10/24" keeping the address bits, or a
// bare address as a host prefix.
func parseHostPrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("empty")
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}
