package v3

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// StagedAction says what a staged policy would do to its enforced
// counterpart: Set (the default) or Delete it; Learn and Ignore are
// Calico Enterprise's.
type StagedAction string

// Staged actions.
const (
	StagedActionSet    StagedAction = "Set"
	StagedActionDelete StagedAction = "Delete"
	StagedActionLearn  StagedAction = "Learn"
	StagedActionIgnore StagedAction = "Ignore"
)

// StagedNetworkPolicy is a NetworkPolicy proposed but not enforced: it is
// stored and shown, and felix never programs it (Calico evaluates staged
// policies only for its flow logs).
type StagedNetworkPolicy struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       StagedNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedNetworkPolicySpec is a NetworkPolicySpec with a staged action.
type StagedNetworkPolicySpec struct {
	StagedAction           StagedAction            `json:"stagedAction,omitempty"`
	Tier                   string                  `json:"tier,omitempty"`
	Order                  *float64                `json:"order,omitempty"`
	Ingress                []Rule                  `json:"ingress,omitempty"`
	Egress                 []Rule                  `json:"egress,omitempty"`
	Selector               string                  `json:"selector,omitempty"`
	Types                  []PolicyType            `json:"types,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

// NewStagedNetworkPolicy returns an empty StagedNetworkPolicy with kind and apiVersion set.
func NewStagedNetworkPolicy() *StagedNetworkPolicy {
	return &StagedNetworkPolicy{TypeMeta: TypeMeta{Kind: KindStagedNetworkPolicy, APIVersion: APIVersion}}
}

// Default sets the namespace and tier to "default" when empty and the tier
// label, and, unless the action is Delete, Types from the rules present.
func (p *StagedNetworkPolicy) Default() {
	polTypeMeta(&p.TypeMeta, KindStagedNetworkPolicy)
	if p.Namespace == "" {
		p.Namespace = DefaultNamespace
	}
	stagedDefault(&p.ObjectMeta, p.Spec.StagedAction, &p.Spec.Tier, &p.Spec.Types, p.Spec.Ingress, p.Spec.Egress)
}

// Enforced is the NetworkPolicy the staged one would become.
func (p *StagedNetworkPolicy) Enforced() *NetworkPolicy {
	np := NewNetworkPolicy()
	np.ObjectMeta = p.ObjectMeta
	s := p.Spec
	np.Spec = NetworkPolicySpec{Tier: s.Tier, Order: s.Order, Ingress: s.Ingress, Egress: s.Egress, Selector: s.Selector,
		Types: s.Types, ServiceAccountSelector: s.ServiceAccountSelector, PerformanceHints: s.PerformanceHints}
	return np
}

// Validate checks the policy as Calico does: a Delete carries nothing but
// its tier; anything else is a valid NetworkPolicy.
func (p *StagedNetworkPolicy) Validate() error {
	v := newValidator()
	const s = KindStagedNetworkPolicy + ".Spec"
	if stagedAction(v, s, p.Spec.StagedAction) == StagedActionDelete {
		polName(v, p.Name, networkPolicyNameRe())
		v.labels("Metadata.Labels", p.Labels)
		empty := StagedNetworkPolicySpec{StagedAction: p.Spec.StagedAction, Tier: p.Spec.Tier}
		if !reflect.DeepEqual(empty, p.Spec) {
			v.add(s, "", "Spec fields, except Tier, should all be zero-value if stagedAction is Delete")
		}
		return v.err()
	}
	if err := p.Enforced().Validate(); err != nil {
		return err
	}
	return v.err()
}

// StagedGlobalNetworkPolicy is a GlobalNetworkPolicy proposed but not
// enforced (see StagedNetworkPolicy).
type StagedGlobalNetworkPolicy struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       StagedGlobalNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedGlobalNetworkPolicySpec is a GlobalNetworkPolicySpec with a staged action.
type StagedGlobalNetworkPolicySpec struct {
	StagedAction           StagedAction            `json:"stagedAction,omitempty"`
	Tier                   string                  `json:"tier,omitempty"`
	Order                  *float64                `json:"order,omitempty"`
	Ingress                []Rule                  `json:"ingress,omitempty"`
	Egress                 []Rule                  `json:"egress,omitempty"`
	Selector               string                  `json:"selector,omitempty"`
	Types                  []PolicyType            `json:"types,omitempty"`
	DoNotTrack             bool                    `json:"doNotTrack,omitempty"`
	PreDNAT                bool                    `json:"preDNAT,omitempty"`
	ApplyOnForward         bool                    `json:"applyOnForward,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	NamespaceSelector      string                  `json:"namespaceSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

// NewStagedGlobalNetworkPolicy returns an empty StagedGlobalNetworkPolicy
// with kind and apiVersion set.
func NewStagedGlobalNetworkPolicy() *StagedGlobalNetworkPolicy {
	return &StagedGlobalNetworkPolicy{TypeMeta: TypeMeta{Kind: KindStagedGlobalNetworkPolicy, APIVersion: APIVersion}}
}

// Default sets the tier to "default" when empty and the tier label, and,
// unless the action is Delete, Types from the rules present.
func (p *StagedGlobalNetworkPolicy) Default() {
	polTypeMeta(&p.TypeMeta, KindStagedGlobalNetworkPolicy)
	stagedDefault(&p.ObjectMeta, p.Spec.StagedAction, &p.Spec.Tier, &p.Spec.Types, p.Spec.Ingress, p.Spec.Egress)
}

// Enforced is the GlobalNetworkPolicy the staged one would become.
func (p *StagedGlobalNetworkPolicy) Enforced() *GlobalNetworkPolicy {
	gnp := NewGlobalNetworkPolicy()
	gnp.ObjectMeta = p.ObjectMeta
	s := p.Spec
	gnp.Spec = GlobalNetworkPolicySpec{Tier: s.Tier, Order: s.Order, Ingress: s.Ingress, Egress: s.Egress,
		Selector: s.Selector, Types: s.Types, DoNotTrack: s.DoNotTrack, PreDNAT: s.PreDNAT, ApplyOnForward: s.ApplyOnForward,
		ServiceAccountSelector: s.ServiceAccountSelector, NamespaceSelector: s.NamespaceSelector, PerformanceHints: s.PerformanceHints}
	return gnp
}

// Validate checks the policy as Calico does (see StagedNetworkPolicy.Validate).
func (p *StagedGlobalNetworkPolicy) Validate() error {
	v := newValidator()
	const s = KindStagedGlobalNetworkPolicy + ".Spec"
	if stagedAction(v, s, p.Spec.StagedAction) == StagedActionDelete {
		polName(v, p.Name, globalNetworkPolicyNameRe())
		v.labels("Metadata.Labels", p.Labels)
		empty := StagedGlobalNetworkPolicySpec{StagedAction: p.Spec.StagedAction, Tier: p.Spec.Tier}
		if !reflect.DeepEqual(empty, p.Spec) {
			v.add(s, "", "Spec fields, except Tier, should all be zero-value if stagedAction is Delete")
		}
		return v.err()
	}
	if err := p.Enforced().Validate(); err != nil {
		return err
	}
	return v.err()
}

// StagedKubernetesNetworkPolicy is a Kubernetes NetworkPolicy proposed but
// not enforced (see StagedNetworkPolicy).
type StagedKubernetesNetworkPolicy struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       StagedKubernetesNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedKubernetesNetworkPolicySpec is a Kubernetes NetworkPolicySpec
// (networking.k8s.io/v1) with a staged action.
type StagedKubernetesNetworkPolicySpec struct {
	StagedAction StagedAction           `json:"stagedAction,omitempty"`
	PodSelector  K8sLabelSelector       `json:"podSelector"`
	Ingress      []K8sNetworkPolicyRule `json:"ingress,omitempty"`
	Egress       []K8sNetworkPolicyRule `json:"egress,omitempty"`
	PolicyTypes  []string               `json:"policyTypes,omitempty"`
}

// K8sLabelSelector is Kubernetes' label selector.
type K8sLabelSelector struct {
	MatchLabels      map[string]string             `json:"matchLabels,omitempty"`
	MatchExpressions []K8sLabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// K8sLabelSelectorRequirement is one expression of a K8sLabelSelector.
type K8sLabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// K8sNetworkPolicyRule is an ingress rule (From) or an egress rule (To)
// of a Kubernetes NetworkPolicy.
type K8sNetworkPolicyRule struct {
	Ports []K8sNetworkPolicyPort `json:"ports,omitempty"`
	From  []K8sNetworkPolicyPeer `json:"from,omitempty"`
	To    []K8sNetworkPolicyPeer `json:"to,omitempty"`
}

// K8sNetworkPolicyPort is a protocol and a port (a number or a name) or
// port range.
type K8sNetworkPolicyPort struct {
	Protocol *string         `json:"protocol,omitempty"`
	Port     json.RawMessage `json:"port,omitempty"`
	EndPort  *int32          `json:"endPort,omitempty"`
}

// K8sNetworkPolicyPeer selects pods, namespaces or an IP block.
type K8sNetworkPolicyPeer struct {
	PodSelector       *K8sLabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *K8sLabelSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *K8sIPBlock       `json:"ipBlock,omitempty"`
}

// K8sIPBlock is a CIDR with exceptions.
type K8sIPBlock struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// NewStagedKubernetesNetworkPolicy returns an empty
// StagedKubernetesNetworkPolicy with kind and apiVersion set.
func NewStagedKubernetesNetworkPolicy() *StagedKubernetesNetworkPolicy {
	return &StagedKubernetesNetworkPolicy{TypeMeta: TypeMeta{Kind: KindStagedKubernetesNetworkPolicy, APIVersion: APIVersion}}
}

// Default sets the namespace to "default" when empty.
func (p *StagedKubernetesNetworkPolicy) Default() {
	polTypeMeta(&p.TypeMeta, KindStagedKubernetesNetworkPolicy)
	if p.Namespace == "" {
		p.Namespace = DefaultNamespace
	}
}

// Validate checks the name, the staged action and the Kubernetes policy:
// selector operators, protocols, ports, CIDRs and policy types.
func (p *StagedKubernetesNetworkPolicy) Validate() error {
	v := newValidator()
	const s = KindStagedKubernetesNetworkPolicy + ".Spec"
	switch {
	case p.Name == "":
		v.add("Metadata.Name", p.Name, "name must be specified")
	case len(p.Name) > 253 || !dns1123Subdomain().MatchString(p.Name):
		v.add("Metadata.Name", p.Name, "name must be a lower case DNS subdomain of at most 253 characters")
	}
	if p.Namespace != "" {
		v.namespace("Metadata.Namespace", p.Namespace)
	}
	v.labels("Metadata.Labels", p.Labels)
	if stagedAction(v, s, p.Spec.StagedAction) == StagedActionDelete {
		if !reflect.DeepEqual(StagedKubernetesNetworkPolicySpec{StagedAction: p.Spec.StagedAction}, p.Spec) {
			v.add(s, "", "Spec fields should all be zero-value if stagedAction is Delete")
		}
		return v.err()
	}
	k8sSelector(v, s+".PodSelector", &p.Spec.PodSelector)
	for dir, rules := range map[string][]K8sNetworkPolicyRule{"Ingress": p.Spec.Ingress, "Egress": p.Spec.Egress} {
		for i, r := range rules {
			f := fmt.Sprintf("%s.%s[%d]", s, dir, i)
			if dir == "Ingress" && len(r.To) > 0 || dir == "Egress" && len(r.From) > 0 {
				v.add(f, "", "ingress rules have from, egress rules have to")
			}
			for j, pt := range r.Ports {
				k8sPort(v, fmt.Sprintf("%s.Ports[%d]", f, j), pt)
			}
			for j, peer := range append(append([]K8sNetworkPolicyPeer(nil), r.From...), r.To...) {
				pf := fmt.Sprintf("%s.Peers[%d]", f, j)
				if peer.PodSelector != nil {
					k8sSelector(v, pf+".PodSelector", peer.PodSelector)
				}
				if peer.NamespaceSelector != nil {
					k8sSelector(v, pf+".NamespaceSelector", peer.NamespaceSelector)
				}
				if b := peer.IPBlock; b != nil {
					if peer.PodSelector != nil || peer.NamespaceSelector != nil {
						v.add(pf, "", "ipBlock may not be combined with selectors")
					}
					if _, err := ParseCIDR(b.CIDR); err != nil {
						v.add(pf+".IPBlock.CIDR", b.CIDR, "invalid CIDR")
					}
					for _, e := range b.Except {
						if _, err := ParseCIDR(e); err != nil {
							v.add(pf+".IPBlock.Except", e, "invalid CIDR")
						}
					}
				}
			}
		}
	}
	for _, t := range p.Spec.PolicyTypes {
		if t != "Ingress" && t != "Egress" {
			v.add(s+".PolicyTypes", t, "must be Ingress or Egress")
		}
	}
	return v.err()
}

func k8sSelector(v *validator, field string, sel *K8sLabelSelector) {
	v.labels(field+".MatchLabels", sel.MatchLabels)
	for _, e := range sel.MatchExpressions {
		switch e.Operator {
		case "In", "NotIn":
			if len(e.Values) == 0 {
				v.add(field+".MatchExpressions", e.Key, "In and NotIn need values")
			}
		case "Exists", "DoesNotExist":
			if len(e.Values) > 0 {
				v.add(field+".MatchExpressions", e.Key, "Exists and DoesNotExist take no values")
			}
		default:
			v.add(field+".MatchExpressions", e.Operator, "operator must be In, NotIn, Exists or DoesNotExist")
		}
	}
}

func k8sPort(v *validator, field string, p K8sNetworkPolicyPort) {
	if p.Protocol != nil {
		switch *p.Protocol {
		case "TCP", "UDP", "SCTP":
		default:
			v.add(field+".Protocol", *p.Protocol, "must be TCP, UDP or SCTP")
		}
	}
	if len(p.Port) == 0 {
		return
	}
	var n int
	var name string
	switch {
	case json.Unmarshal(p.Port, &n) == nil:
		if n < 1 || n > 65535 {
			v.add(field+".Port", n, "must be between 1 and 65535")
		}
		if p.EndPort != nil && (int(*p.EndPort) < n || *p.EndPort > 65535) {
			v.add(field+".EndPort", *p.EndPort, "must be between port and 65535")
		}
	case json.Unmarshal(p.Port, &name) == nil:
		if _, err := strconv.Atoi(name); err == nil || name == "" || len(name) > 15 || strings.ToLower(name) != name {
			v.add(field+".Port", name, "must be a number or a port name")
		}
	default:
		v.add(field+".Port", string(p.Port), "must be a number or a port name")
	}
}

// stagedAction checks a staged action and returns it, Set when empty.
func stagedAction(v *validator, spec string, a StagedAction) StagedAction {
	switch a {
	case "":
		return StagedActionSet
	case StagedActionSet, StagedActionDelete, StagedActionLearn, StagedActionIgnore:
		return a
	}
	v.add(spec+".StagedAction", string(a), "must be Set, Delete, Learn or Ignore")
	return a
}

// stagedDefault applies the NetworkPolicy defaults to a staged policy,
// except Types for a Delete (which must stay empty).
func stagedDefault(m *ObjectMeta, a StagedAction, tier *string, types *[]PolicyType, ingress, egress []Rule) {
	if a == StagedActionDelete {
		if *tier == "" {
			*tier = DefaultTierName
		}
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[LabelTier] = *tier
		return
	}
	polDefault(m, tier, types, ingress, egress)
}
