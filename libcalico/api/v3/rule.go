package v3

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Action is what a rule does with a matching packet.
type Action string

// Rule actions.
const (
	Allow Action = "Allow"
	Deny  Action = "Deny"
	Log   Action = "Log"
	Pass  Action = "Pass"
)

// PolicyType is a direction a policy applies to.
type PolicyType string

// Policy types.
const (
	PolicyTypeIngress PolicyType = "Ingress"
	PolicyTypeEgress  PolicyType = "Egress"
)

// PolicyPerformanceHint is a hint to felix's policy engine.
type PolicyPerformanceHint string

// PerfHintAssumeNeededOnEveryNode makes felix program the policy on every
// node whether or not a local endpoint needs it.
const PerfHintAssumeNeededOnEveryNode PolicyPerformanceHint = "AssumeNeededOnEveryNode"

// Rule is one match-and-action entry of a policy or profile. Every
// criterion must match; each has a negated "Not" form.
type Rule struct {
	Action      Action      `json:"action"`
	IPVersion   *int        `json:"ipVersion,omitempty"`
	Protocol    *Protocol   `json:"protocol,omitempty"`
	ICMP        *ICMPFields `json:"icmp,omitempty"`
	NotProtocol *Protocol   `json:"notProtocol,omitempty"`
	NotICMP     *ICMPFields `json:"notICMP,omitempty"`
	// Source and Destination are left out of JSON when empty.
	Source      EntityRule    `json:"source,omitzero"`
	Destination EntityRule    `json:"destination,omitzero"`
	HTTP        *HTTPMatch    `json:"http,omitempty"`
	Metadata    *RuleMetadata `json:"metadata,omitempty"`
}

// EntityRule matches the source or the destination of a packet.
type EntityRule struct {
	Nets              []string             `json:"nets,omitempty"`
	Selector          string               `json:"selector,omitempty"`
	NamespaceSelector string               `json:"namespaceSelector,omitempty"`
	Services          *ServiceMatch        `json:"services,omitempty"`
	Ports             []Port               `json:"ports,omitempty"`
	NotNets           []string             `json:"notNets,omitempty"`
	NotSelector       string               `json:"notSelector,omitempty"`
	NotPorts          []Port               `json:"notPorts,omitempty"`
	ServiceAccounts   *ServiceAccountMatch `json:"serviceAccounts,omitempty"`
}

// ICMPFields matches an ICMP type and, optionally, code.
type ICMPFields struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

// HTTPMatch matches HTTP requests by method and path.
type HTTPMatch struct {
	Methods []string   `json:"methods,omitempty"`
	Paths   []HTTPPath `json:"paths,omitempty"`
}

// HTTPPath matches a path exactly or by prefix; only one may be set.
type HTTPPath struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// ServiceMatch selects a Kubernetes Service.
type ServiceMatch struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// ServiceAccountMatch selects pods by service account name or labels.
type ServiceAccountMatch struct {
	Names    []string `json:"names,omitempty"`
	Selector string   `json:"selector,omitempty"`
}

// RuleMetadata carries annotations on a rule.
type RuleMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Calico's validation messages.
const (
	ruleMsgPortsProtocol = "rules that specify ports must set protocol to TCP or UDP or SCTP"
	ruleMsgICMPProtocol  = "rules that specify ICMP fields must set protocol to ICMP"
	ruleMsgHTTPProtocol  = "rules that specify HTTP fields must set protocol to TCP or empty"
	ruleMsgGlobalEntity  = "global() can only be used in an EntityRule namespaceSelector"
	ruleMsgGlobalOnly    = "global() cannot be combined with other selectors"
	ruleAnnotationsLimit = 256 * 1024
)

// ruleDir says which list of a policy a rule sits in; it changes which
// Services and HTTP clauses are allowed.
type ruleDir int

const (
	ruleDirNone ruleDir = iota // profiles: no direction checks
	ruleDirIngress
	ruleDirEgress
)

// ruleList validates rules at path (such as "GlobalNetworkPolicy.Spec.Ingress").
// global is true for GlobalNetworkPolicy, whose service matches need a
// namespace.
func ruleList(v *validator, path string, rules []Rule, dir ruleDir, global bool) {
	for i := range rules {
		p := path + "[" + strconv.Itoa(i) + "]"
		r := &rules[i]
		ruleCheck(v, p, r)
		switch dir {
		case ruleDirIngress:
			if r.Destination.Services != nil {
				v.add(p+".Destination.Services", *r.Destination.Services, "not allowed in ingress rule destination")
			}
			if global && r.Source.Services != nil && r.Source.Services.Namespace == "" {
				v.add(p+".Source.Services.Namespace", "", "must specify a namespace")
			}
		case ruleDirEgress:
			if r.Source.Services != nil {
				v.add(p+".Source.Services", *r.Source.Services, "not allowed in egress rule source")
			}
			if r.HTTP != nil {
				msg := "not allowed in egress rule"
				if global {
					msg += "s"
				}
				v.add(p+".HTTP", *r.HTTP, msg)
			}
			if global && r.Destination.Services != nil && r.Destination.Services.Namespace == "" {
				v.add(p+".Destination.Services.Namespace", "", "must specify a namespace")
			}
		}
	}
}

// ruleCheck validates one rule at path p.
func ruleCheck(v *validator, p string, r *Rule) {
	v.oneOf(p+".Action", string(r.Action), string(Allow), string(Deny), string(Log), string(Pass))
	if r.IPVersion != nil && *r.IPVersion != 4 && *r.IPVersion != 6 {
		v.add(p+".IPVersion", *r.IPVersion, "ip version must be 4 or 6")
	}
	if r.Protocol != nil {
		if reason := protocolReason(*r.Protocol); reason != "" {
			v.add(p+".Protocol", r.Protocol.String(), reason)
		}
	}
	if r.NotProtocol != nil {
		if reason := protocolReason(*r.NotProtocol); reason != "" {
			v.add(p+".NotProtocol", r.NotProtocol.String(), reason)
		}
	}
	ruleICMP(v, p+".ICMP", r.ICMP)
	ruleICMP(v, p+".NotICMP", r.NotICMP)

	// Ports need a protocol that has them.
	if r.Protocol == nil || !r.Protocol.SupportsPorts() {
		for _, f := range []struct {
			name  string
			ports []Port
		}{
			{".Source.Ports", r.Source.Ports},
			{".Source.NotPorts", r.Source.NotPorts},
			{".Destination.Ports", r.Destination.Ports},
			{".Destination.NotPorts", r.Destination.NotPorts},
		} {
			if len(f.ports) > 0 {
				v.add(p+f.name, rulePortStrings(f.ports), ruleMsgPortsProtocol)
			}
		}
	}

	if r.HTTP != nil {
		if r.Protocol != nil && !r.Protocol.is(ProtocolTCP, 6) {
			v.add(p+".Protocol", r.Protocol.String(), ruleMsgHTTPProtocol)
		}
		if r.Action != Allow {
			v.add(p+".HTTP", *r.HTTP, "only valid for Allow rules")
		}
		ruleHTTP(v, p+".HTTP", r.HTTP)
	}

	isICMP := func(pr *Protocol) bool { return pr != nil && pr.is(ProtocolICMP, 1) }
	isICMPv6 := func(pr *Protocol) bool { return pr != nil && pr.is(ProtocolICMPv6, 58) }
	if r.ICMP != nil && !isICMP(r.Protocol) && !isICMPv6(r.Protocol) {
		v.add(p+".ICMP", ruleICMPString(r.ICMP), ruleMsgICMPProtocol)
	}
	if r.IPVersion != nil {
		if (isICMP(r.Protocol) || isICMP(r.NotProtocol)) && *r.IPVersion != 4 {
			v.add(p+".IPVersion", *r.IPVersion, "must set ipversion to '4' with protocol icmp")
		}
		if (isICMPv6(r.Protocol) || isICMPv6(r.NotProtocol)) && *r.IPVersion != 6 {
			v.add(p+".IPVersion", *r.IPVersion, "must set ipversion to '6' with protocol icmpv6")
		}
	}

	// Every net must parse, and all must share one IP version, matching
	// IPVersion when set.
	var seen4, seen6 bool
	for _, f := range []struct {
		name string
		nets []string
	}{
		{".Source.Nets", r.Source.Nets},
		{".Source.NotNets", r.Source.NotNets},
		{".Destination.Nets", r.Destination.Nets},
		{".Destination.NotNets", r.Destination.NotNets},
	} {
		var v4, v6 bool
		for i, n := range f.nets {
			pf, ok := ruleNet(v, p+f.name+"["+strconv.Itoa(i)+"]", n)
			if !ok {
				continue
			}
			v4 = v4 || pf.Addr().Is4()
			v6 = v6 || !pf.Addr().Is4()
		}
		if r.IPVersion != nil && ((v4 && *r.IPVersion != 4) || (v6 && *r.IPVersion != 6)) {
			v.add(p+f.name, f.nets, "rule IP version doesn't match CIDR version")
		}
		if (v4 && seen6) || (v6 && seen4) || (v4 && v6) {
			v.add(p+f.name, f.nets, "rule contains both IPv4 and IPv6 CIDRs")
		}
		seen4, seen6 = seen4 || v4, seen6 || v6
	}

	if r.Destination.Services != nil && len(r.Destination.Ports) != 0 {
		v.add(p+".Destination.Ports", rulePortStrings(r.Destination.Ports), "cannot specify ports with a service selector")
	}
	if r.Destination.Services != nil && len(r.Destination.NotPorts) != 0 {
		v.add(p+".Destination.NotPorts", rulePortStrings(r.Destination.NotPorts), "cannot specify notports with a service selector")
	}

	ruleEntity(v, p+".Source", &r.Source)
	ruleEntity(v, p+".Destination", &r.Destination)
	if r.Metadata != nil {
		ruleAnnotations(v, p+".Metadata.Annotations", r.Metadata.Annotations)
	}
}

// ruleNet parses a rule net: a CIDR (with a prefix length) masked to its
// network address, as Calico requires.
func ruleNet(v *validator, field, s string) (netip.Prefix, bool) {
	pf, err := netip.ParsePrefix(s)
	if err != nil || pf.Addr().Zone() != "" {
		v.add(field, s, "invalid CIDR")
		return netip.Prefix{}, false
	}
	if pf.Masked() != pf {
		v.add(field, s, "invalid CIDR: host bits set (use "+pf.Masked().String()+")")
		return netip.Prefix{}, false
	}
	return pf, true
}

func ruleICMP(v *validator, p string, f *ICMPFields) {
	if f == nil {
		return
	}
	if f.Type != nil && (*f.Type < 0 || *f.Type > 254) {
		v.add(p+".Type", *f.Type, "ICMP type must be between 0 and 254")
	}
	if f.Code != nil && (*f.Code < 0 || *f.Code > 255) {
		v.add(p+".Code", *f.Code, "ICMP code must be between 0 and 255")
	}
	if f.Code != nil && f.Type == nil {
		v.add(p+".Code", *f.Code, "ICMP code specified without an ICMP type")
	}
}

func ruleICMPString(f *ICMPFields) string {
	var parts []string
	if f.Type != nil {
		parts = append(parts, "type:"+strconv.Itoa(*f.Type))
	}
	if f.Code != nil {
		parts = append(parts, "code:"+strconv.Itoa(*f.Code))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func rulePortStrings(ports []Port) []string {
	out := make([]string, len(ports))
	for i, p := range ports {
		out[i] = p.String()
	}
	return out
}

// ruleEntity validates the parts of an entity rule that stand alone.
func ruleEntity(v *validator, p string, e *EntityRule) {
	if e.Selector != "" {
		v.selector(p+".Selector", e.Selector)
		if strings.Contains(e.Selector, "global()") {
			v.add(p+".Selector", e.Selector, ruleMsgGlobalEntity)
		}
	}
	if e.NotSelector != "" {
		v.selector(p+".NotSelector", e.NotSelector)
	}
	if e.NamespaceSelector != "" {
		v.selector(p+".NamespaceSelector", e.NamespaceSelector)
		if strings.Contains(e.NamespaceSelector, "global(") && strings.TrimSpace(e.NamespaceSelector) != "global()" {
			v.add(p+".NamespaceSelector", e.NamespaceSelector, ruleMsgGlobalOnly)
		}
	}
	for i, port := range e.Ports {
		rulePort(v, p+".Ports["+strconv.Itoa(i)+"]", port)
	}
	for i, port := range e.NotPorts {
		rulePort(v, p+".NotPorts["+strconv.Itoa(i)+"]", port)
	}
	if e.ServiceAccounts != nil && e.ServiceAccounts.Selector != "" {
		v.selector(p+".ServiceAccounts.Selector", e.ServiceAccounts.Selector)
	}
	if s := e.Services; s != nil {
		if s.Name == "" {
			v.add(p+".Services", *s, "must specify a service name")
		} else {
			v.name(p+".Services.Name", s.Name)
		}
		if s.Namespace != "" {
			v.name(p+".Services.Namespace", s.Namespace)
		}
		if e.NamespaceSelector != "" {
			v.add(p+".Services", *s, "cannot specify NamespaceSelector and Services on the same rule")
		}
		if e.Selector != "" || e.NotSelector != "" {
			v.add(p+".Services", *s, "cannot specify Selector/NotSelector and Services on the same rule")
		}
		if e.ServiceAccounts != nil {
			v.add(p+".Services", *s, "cannot specify ServiceAccounts and Services on the same rule")
		}
		if len(e.Nets) != 0 || len(e.NotNets) != 0 {
			v.add(p+".Services", *s, "cannot specify Nets/NotNets and Services on the same rule")
		}
	}
}

// rulePort checks one port of a rule as Calico's validatePort does.
func rulePort(v *validator, field string, p Port) {
	if p.MinPort > p.MaxPort {
		v.add(field, p.String(), "port range invalid")
	}
	switch {
	case p.PortName != "":
		if p.MinPort != 0 || p.MaxPort != 0 {
			v.add(field, p.PortName, "named port invalid, if name is specified, min and max should be 0")
		}
		if !validPortName(p.PortName) {
			v.add(field, p.PortName, "invalid port name: must be 1-15 lower case alphanumerics or '-', with a letter, no leading, trailing or double '-'")
		}
	case p.MinPort < 1:
		v.add(field, p.MinPort, "port range invalid, port number must be between 1 and 65535")
	case p.MaxPort < 1:
		v.add(field, p.MaxPort, "port range invalid, port number must be between 1 and 65535")
	}
}

var portNameCharsRe = lazyRegexp(`^[a-z0-9-]{1,15}$`)

// validPortName is Kubernetes' IsValidPortName (an IANA service name).
func validPortName(s string) bool {
	if !portNameCharsRe().MatchString(s) || strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
		return false
	}
	return strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz")
}

func ruleHTTP(v *validator, p string, h *HTTPMatch) {
	seen := map[string]bool{}
	for _, m := range h.Methods {
		if seen[m] {
			v.add(p+".Methods", h.Methods, fmt.Sprintf("Invalid methods (duplicates): %v", h.Methods))
			break
		}
		seen[m] = true
	}
	for i, path := range h.Paths {
		f := p + ".Paths[" + strconv.Itoa(i) + "]"
		val := path.Exact
		if val == "" {
			val = path.Prefix
		}
		switch {
		case path.Exact != "" && path.Prefix != "":
			v.add(f, path, "Invalid path match. Both 'exact' and 'prefix' are set")
		case val == "":
			v.add(f, path, "Invalid path match. Either 'exact' or 'prefix' must be set")
		case !strings.HasPrefix(val, "/") || strings.ContainsAny(val, "? #"):
			v.add(f, val, "Invalid path "+val+". (must start with `/` and not contain `?` or `#`")
		}
	}
}

// ruleAnnotations checks annotation keys and their total size, as Calico
// does for metadata and rule annotations.
func ruleAnnotations(v *validator, field string, a map[string]string) {
	total := 0
	for k, val := range a {
		if !validLabelKey(strings.ToLower(k)) {
			v.add(field, k, "invalid annotation key")
		}
		total += len(k) + len(val)
	}
	if total > ruleAnnotationsLimit {
		v.add(field, fmt.Sprintf("<%d bytes>", total), fmt.Sprintf("total size of annotations is too large by %d bytes", total-ruleAnnotationsLimit))
	}
}
