package kubeconv

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	networkingv1 "k8s.io/api/networking/v1"
)

// PolicyOrder is the order of every policy converted from Kubernetes.
const PolicyOrder = 1000.0

// PolicyName returns the name of the Calico policy for the Kubernetes
// NetworkPolicy k8sName.
func PolicyName(k8sName string) string { return PolicyNamePrefix + k8sName }

// IsPolicyName reports whether name is that of a Calico policy converted
// from a Kubernetes one.
func IsPolicyName(name string) bool {
	return len(name) > len(PolicyNamePrefix) && strings.HasPrefix(name, PolicyNamePrefix)
}

// RuleError is one rule of a Kubernetes NetworkPolicy that could not be
// converted.
type RuleError struct {
	Egress bool // the rule is Spec.Egress[Index], else Spec.Ingress[Index]
	Index  int
	Err    error
}

func (e RuleError) Error() string {
	dir := "ingress"
	if e.Egress {
		dir = "egress"
	}
	return fmt.Sprintf("%s rule %d: %v", dir, e.Index, e.Err)
}

func (e RuleError) Unwrap() error { return e.Err }

// ConversionError lists the rules NetworkPolicy dropped from a policy, as
// Calico's ErrorPolicyConversion does. The policy returned with it holds
// every other rule and is usable.
type ConversionError struct {
	Namespace, Name string // of the Kubernetes NetworkPolicy
	Rules           []RuleError
}

func (e *ConversionError) Error() string {
	parts := make([]string, len(e.Rules))
	for i, r := range e.Rules {
		parts[i] = r.Error()
	}
	return fmt.Sprintf("NetworkPolicy %s/%s: dropped %s", e.Namespace, e.Name, strings.Join(parts, "; dropped "))
}

// Unwrap returns each rule's error.
func (e *ConversionError) Unwrap() []error {
	errs := make([]error, len(e.Rules))
	for i, r := range e.Rules {
		errs[i] = r
	}
	return errs
}

// NetworkPolicy converts np into the Calico NetworkPolicy
// knp.default.<np.Name> in np.Namespace, as Calico's etcd-mode
// kube-controllers does: tier "default", order 1000, the pod selector with
// the orchestrator term, one rule per protocol per peer, and Types from
// np.Spec.PolicyTypes (Ingress when none).
//
// A rule that cannot be converted is dropped and reported in a
// *ConversionError returned with the policy. Any other error (the name or
// the pod selector cannot be converted) comes with a nil policy.
func NetworkPolicy(np *networkingv1.NetworkPolicy) (*v3.NetworkPolicy, error) {
	if np == nil {
		return nil, fmt.Errorf("converting NetworkPolicy: nil policy")
	}
	sel, err := podSelector(&np.Spec.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("converting NetworkPolicy %s/%s: podSelector: %w", np.Namespace, np.Name, err)
	}
	order := PolicyOrder
	pol := v3.NewNetworkPolicy()
	pol.ObjectMeta = v3.ObjectMeta{Name: PolicyName(np.Name), Namespace: np.Namespace}
	pol.Spec = v3.NetworkPolicySpec{
		Tier:     v3.DefaultTierName,
		Order:    &order,
		Selector: sel,
		Types:    policyTypes(np.Spec.PolicyTypes),
	}
	// The rules are checked one by one below; this checks the rest.
	if err := pol.Validate(); err != nil {
		return nil, fmt.Errorf("converting NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
	}

	cerr := &ConversionError{Namespace: np.Namespace, Name: np.Name}
	for i, r := range np.Spec.Ingress {
		rules, err := convertRule(r.From, r.Ports, false)
		if err != nil {
			cerr.Rules = append(cerr.Rules, RuleError{Index: i, Err: err})
			continue
		}
		pol.Spec.Ingress = append(pol.Spec.Ingress, rules...)
	}
	for i, r := range np.Spec.Egress {
		rules, err := convertRule(r.To, r.Ports, true)
		if err != nil {
			cerr.Rules = append(cerr.Rules, RuleError{Egress: true, Index: i, Err: err})
			continue
		}
		pol.Spec.Egress = append(pol.Spec.Egress, rules...)
	}
	if len(cerr.Rules) > 0 {
		return pol, cerr
	}
	return pol, nil
}

// policyTypes returns the Calico types of the Kubernetes ones: Ingress
// then Egress, each if listed; Ingress alone when neither is (a policy
// from before policyTypes existed). Like Calico, egress rules without
// Egress in the types do not add it.
func policyTypes(types []networkingv1.PolicyType) []v3.PolicyType {
	var ingress, egress bool
	for _, t := range types {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	out := []v3.PolicyType{}
	if ingress || !egress {
		out = append(out, v3.PolicyTypeIngress)
	}
	if egress {
		out = append(out, v3.PolicyTypeEgress)
	}
	return out
}

// peer is the Calico form of one NetworkPolicyPeer.
type peer struct {
	selector, nsSelector string
	nets, notNets        []string
}

// protoPorts collects the ports of one protocol in a rule; all means a
// port entry without a port number, which allows every port.
type protoPorts struct {
	ports []v3.Port
	all   bool
}

// convertRule converts one Kubernetes rule (its peers and ports) into
// Calico rules, as Calico's k8sRuleToCalico: one rule per protocol (sorted
// by name) per peer, each with all the ports of its protocol simplified.
// No ports gives one rule per peer with no protocol; no peers gives rules
// with no source (ingress) or destination (egress) selector.
func convertRule(k8sPeers []networkingv1.NetworkPolicyPeer, k8sPorts []networkingv1.NetworkPolicyPort, egress bool) ([]v3.Rule, error) {
	byProto := map[string]*protoPorts{}
	protos := map[string]v3.Protocol{}
	for i := range k8sPorts {
		p := &k8sPorts[i]
		proto, err := ruleProtocol(p.Protocol)
		if err != nil {
			return nil, fmt.Errorf("ports[%d]: %w", i, err)
		}
		key := proto.String()
		pp := byProto[key]
		if pp == nil {
			pp = &protoPorts{}
			byProto[key] = pp
			protos[key] = proto
		}
		if p.Port == nil {
			pp.all, pp.ports = true, nil
			continue
		}
		port, err := rulePort(p)
		if err != nil {
			return nil, fmt.Errorf("ports[%d]: %w", i, err)
		}
		if !pp.all {
			pp.ports = append(pp.ports, port)
		}
	}

	peers := []peer{{}}
	if len(k8sPeers) > 0 {
		peers = make([]peer, len(k8sPeers))
		for i := range k8sPeers {
			var err error
			if peers[i], err = convertPeer(&k8sPeers[i]); err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", peerField(egress), i, err)
			}
		}
	}

	var rules []v3.Rule
	add := func(proto *v3.Protocol, ports []v3.Port) {
		for _, pr := range peers {
			r := v3.Rule{Action: v3.Allow}
			if proto != nil {
				p := *proto
				r.Protocol = &p
			}
			e := v3.EntityRule{
				Selector:          pr.selector,
				NamespaceSelector: pr.nsSelector,
				Nets:              slices.Clone(pr.nets),
				NotNets:           slices.Clone(pr.notNets),
			}
			if egress {
				e.Ports = slices.Clone(ports)
				r.Destination = e
			} else {
				r.Source = e
				r.Destination.Ports = slices.Clone(ports)
			}
			rules = append(rules, r)
		}
	}
	if len(byProto) == 0 {
		add(nil, nil)
	}
	keys := make([]string, 0, len(byProto))
	for k := range byProto {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		proto := protos[k]
		add(&proto, SimplifyPorts(byProto[k].ports))
	}
	if err := validateRules(rules, egress); err != nil {
		return nil, err
	}
	return rules, nil
}

func peerField(egress bool) string {
	if egress {
		return "to"
	}
	return "from"
}

// convertPeer converts one peer as Calico's k8sPeerToCalicoFields: an
// ipBlock gives nets and notNets (the CIDRs masked to their network) and
// nothing else; otherwise the pod selector (the orchestrator term alone
// when nil) and the namespace selector. Calico turns an ipBlock it cannot
// parse into a peer matching everything; here it is an error.
func convertPeer(p *networkingv1.NetworkPolicyPeer) (peer, error) {
	if b := p.IPBlock; b != nil {
		cidr, is4, err := parseCIDR(b.CIDR)
		if err != nil {
			return peer{}, fmt.Errorf("ipBlock.cidr: %w", err)
		}
		out := peer{nets: []string{cidr}}
		for i, s := range b.Except {
			ex, ex4, err := parseCIDR(s)
			if err != nil {
				return peer{}, fmt.Errorf("ipBlock.except[%d]: %w", i, err)
			}
			if ex4 != is4 {
				return peer{}, fmt.Errorf("ipBlock.except[%d]: %q is not of the IP family of cidr %q", i, s, b.CIDR)
			}
			out.notNets = append(out.notNets, ex)
		}
		return out, nil
	}
	sel, err := podSelector(p.PodSelector)
	if err != nil {
		return peer{}, fmt.Errorf("podSelector: %w", err)
	}
	nsSel, err := namespaceSelector(p.NamespaceSelector)
	if err != nil {
		return peer{}, fmt.Errorf("namespaceSelector: %w", err)
	}
	return peer{selector: sel, nsSelector: nsSel}, nil
}

// parseCIDR parses s as Calico does (Go's net.ParseCIDR) and returns it
// masked to its network, and whether it is IPv4.
func parseCIDR(s string) (string, bool, error) {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return "", false, fmt.Errorf("invalid CIDR %q", s)
	}
	out := n.String()
	pf, err := netip.ParsePrefix(out)
	if err != nil {
		return "", false, fmt.Errorf("invalid CIDR %q", s)
	}
	return out, pf.Addr().Is4(), nil
}

// validateRules checks converted rules with the v3 validation, so that a
// case the checks above miss drops the rule instead of making the policy
// invalid.
func validateRules(rules []v3.Rule, egress bool) error {
	p := v3.NetworkPolicy{ObjectMeta: v3.ObjectMeta{Name: "rule"}}
	if egress {
		p.Spec.Egress = rules
	} else {
		p.Spec.Ingress = rules
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("converted rule is invalid: %w", err)
	}
	return nil
}
