package v3

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Labels Calico maintains on resources.
const (
	LabelTier         = "projectcalico.org/tier"
	LabelNamespace    = "projectcalico.org/namespace"
	LabelOrchestrator = "projectcalico.org/orchestrator"
)

// DefaultNamespace is used for namespaced resources written without one.
const DefaultNamespace = "default"

// NetworkPolicy is a namespaced, ordered set of rules applied to the
// endpoints its selector picks in its namespace.
type NetworkPolicy struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       NetworkPolicySpec `json:"spec,omitempty"`
}

// NetworkPolicySpec is the body of a NetworkPolicy.
type NetworkPolicySpec struct {
	Tier                   string                  `json:"tier,omitempty"`
	Order                  *float64                `json:"order,omitempty"`
	Ingress                []Rule                  `json:"ingress,omitempty"`
	Egress                 []Rule                  `json:"egress,omitempty"`
	Selector               string                  `json:"selector,omitempty"`
	Types                  []PolicyType            `json:"types,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

// NewNetworkPolicy returns an empty NetworkPolicy with kind and apiVersion set.
func NewNetworkPolicy() *NetworkPolicy {
	return &NetworkPolicy{TypeMeta: TypeMeta{Kind: KindNetworkPolicy, APIVersion: APIVersion}}
}

// Default sets the namespace and tier to "default" when empty, the tier
// label, and Types from the rules present.
func (p *NetworkPolicy) Default() {
	polTypeMeta(&p.TypeMeta, KindNetworkPolicy)
	if p.Namespace == "" {
		p.Namespace = DefaultNamespace
	}
	polDefault(&p.ObjectMeta, &p.Spec.Tier, &p.Spec.Types, p.Spec.Ingress, p.Spec.Egress)
}

// Validate checks the policy as Calico does.
func (p *NetworkPolicy) Validate() error {
	v := newValidator()
	polName(v, p.Name, networkPolicyNameRe())
	if p.Namespace != "" {
		v.namespace("Metadata.Namespace", p.Namespace)
	}
	v.labels("Metadata.Labels", p.Labels)
	ruleAnnotations(v, "Metadata.Annotations", p.Annotations)

	const s = KindNetworkPolicy + ".Spec"
	polCommon(v, s, p.Spec.Tier, p.Spec.Order, p.Spec.Selector, p.Spec.ServiceAccountSelector, p.Spec.Types, p.Spec.PerformanceHints)
	ruleList(v, s+".Ingress", p.Spec.Ingress, ruleDirIngress, false)
	ruleList(v, s+".Egress", p.Spec.Egress, ruleDirEgress, false)
	return v.err()
}

// GlobalNetworkPolicy is a cluster-wide, ordered set of rules applied to
// the workload and host endpoints its selector picks.
type GlobalNetworkPolicy struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       GlobalNetworkPolicySpec `json:"spec,omitempty"`
}

// GlobalNetworkPolicySpec is the body of a GlobalNetworkPolicy.
type GlobalNetworkPolicySpec struct {
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

// NewGlobalNetworkPolicy returns an empty GlobalNetworkPolicy with kind and
// apiVersion set.
func NewGlobalNetworkPolicy() *GlobalNetworkPolicy {
	return &GlobalNetworkPolicy{TypeMeta: TypeMeta{Kind: KindGlobalNetworkPolicy, APIVersion: APIVersion}}
}

// Default sets the tier to "default" when empty, the tier label, and Types
// from the rules present.
func (p *GlobalNetworkPolicy) Default() {
	polTypeMeta(&p.TypeMeta, KindGlobalNetworkPolicy)
	polDefault(&p.ObjectMeta, &p.Spec.Tier, &p.Spec.Types, p.Spec.Ingress, p.Spec.Egress)
}

// Validate checks the policy as Calico does.
func (p *GlobalNetworkPolicy) Validate() error {
	v := newValidator()
	polName(v, p.Name, globalNetworkPolicyNameRe())
	if p.Namespace != "" {
		v.add("Metadata.Namespace", p.Namespace, KindGlobalNetworkPolicy+" is not namespaced")
	}
	v.labels("Metadata.Labels", p.Labels)
	ruleAnnotations(v, "Metadata.Annotations", p.Annotations)

	const s = KindGlobalNetworkPolicy + ".Spec"
	sp := &p.Spec
	polCommon(v, s, sp.Tier, sp.Order, sp.Selector, sp.ServiceAccountSelector, sp.Types, sp.PerformanceHints)
	if sp.NamespaceSelector != "" {
		v.selector(s+".NamespaceSelector", sp.NamespaceSelector)
		if strings.Contains(sp.NamespaceSelector, "global()") {
			v.add(s+".NamespaceSelector", sp.NamespaceSelector, ruleMsgGlobalEntity)
		}
	}
	if sp.DoNotTrack && sp.PreDNAT {
		v.add(s+".PreDNAT", sp.PreDNAT, "PreDNAT and DoNotTrack cannot both be true, for a given PolicySpec")
	}
	if sp.PreDNAT && len(sp.Egress) > 0 {
		v.add(s+".Egress", fmt.Sprintf("<%d rules>", len(sp.Egress)), "PreDNAT PolicySpec cannot have any Egress rules")
	}
	if sp.PreDNAT {
		for _, t := range sp.Types {
			if t == PolicyTypeEgress {
				v.add(s+".Types", sp.Types, "PreDNAT PolicySpec cannot have 'egress' Type")
			}
		}
	}
	if !sp.ApplyOnForward && (sp.DoNotTrack || sp.PreDNAT) {
		v.add(s+".ApplyOnForward", sp.ApplyOnForward, "ApplyOnForward must be true if either PreDNAT or DoNotTrack is true, for a given PolicySpec")
	}
	ruleList(v, s+".Ingress", sp.Ingress, ruleDirIngress, true)
	ruleList(v, s+".Egress", sp.Egress, ruleDirEgress, true)
	return v.err()
}

const polLabelFmt = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`

var (
	// NetworkPolicy names are a DNS label, two labels joined by a dot, or
	// a Kubernetes-derived name under "knp.default." or "ossg.default.".
	networkPolicyNameRe = lazyRegexp(`^((` + polLabelFmt + `)(\.` + polLabelFmt + `)?|((?:knp|ossg)\.default\.(` +
		polLabelFmt + `(\.` + polLabelFmt + `)*)))$`)
	// GlobalNetworkPolicy names are a DNS label with at most one dot.
	globalNetworkPolicyNameRe = lazyRegexp(`^(` + polLabelFmt + `\.)?` + polLabelFmt + `$`)
)

// polName checks a policy name as Calico does: at most 253 characters and
// one of the name forms re allows.
func polName(v *validator, name string, re *regexp.Regexp) {
	switch {
	case name == "":
		v.add("Metadata.Name", name, "name must be specified")
	case len(name) > 253:
		v.add("Metadata.Name", name, fmt.Sprintf("name is too long by %d bytes", len(name)-253))
	case !re.MatchString(name):
		v.add("Metadata.Name", name, "name must consist of lower case alphanumeric characters or '-' (regex: "+polLabelFmt+")")
	}
}

func polTypeMeta(t *TypeMeta, kind string) {
	if t.Kind == "" {
		t.Kind = kind
	}
	if t.APIVersion == "" {
		t.APIVersion = APIVersion
	}
}

// polDefault applies the defaults NetworkPolicy and GlobalNetworkPolicy
// share: tier "default", the tier label, and Types as Calico computes it
// (Ingress when there are no egress rules, Egress when there are only
// egress rules, else both).
func polDefault(m *ObjectMeta, tier *string, types *[]PolicyType, ingress, egress []Rule) {
	if *tier == "" {
		*tier = DefaultTierName
	}
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[LabelTier] = *tier
	if len(*types) == 0 {
		switch {
		case len(egress) == 0:
			*types = []PolicyType{PolicyTypeIngress}
		case len(ingress) == 0:
			*types = []PolicyType{PolicyTypeEgress}
		default:
			*types = []PolicyType{PolicyTypeIngress, PolicyTypeEgress}
		}
	}
}

// polCommon validates the spec fields both policy kinds share. Like
// Calico, it does not reject rules in a direction missing from Types;
// felix ignores them.
func polCommon(v *validator, s, tier string, order *float64, sel, saSel string, types []PolicyType, hints []PolicyPerformanceHint) {
	if tier != "" {
		v.name(s+".Tier", tier)
	}
	if order != nil && (math.IsNaN(*order) || math.IsInf(*order, 0)) {
		v.add(s+".Order", *order, "order must be a finite number")
	}
	if sel != "" {
		v.selector(s+".Selector", sel)
		if strings.Contains(sel, "global()") {
			v.add(s+".Selector", sel, ruleMsgGlobalEntity)
		}
	}
	if saSel != "" {
		v.selector(s+".ServiceAccountSelector", saSel)
		if strings.Contains(saSel, "global()") {
			v.add(s+".ServiceAccountSelector", saSel, ruleMsgGlobalEntity)
		}
	}
	seen := map[PolicyType]bool{}
	for i, t := range types {
		v.oneOf(s+".Types["+strconv.Itoa(i)+"]", string(t), string(PolicyTypeIngress), string(PolicyTypeEgress))
		if seen[t] {
			v.add(s+".Types", types, "'"+string(t)+"' type specified more than once")
		}
		seen[t] = true
	}
	seenHint := map[PolicyPerformanceHint]bool{}
	for i, h := range hints {
		v.oneOf(s+".PerformanceHints["+strconv.Itoa(i)+"]", string(h), string(PerfHintAssumeNeededOnEveryNode))
		if seenHint[h] {
			v.add(s+".PerformanceHints", hints, "'"+string(h)+"' hint specified more than once")
		}
		seenHint[h] = true
	}
}
