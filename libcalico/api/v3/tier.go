package v3

import (
	"fmt"
	"math"
	"strconv"
)

// Built-in tier names and orders. Calico creates default, kube-admin and
// kube-baseline itself; the *adminnetworkpolicy tiers come from older
// releases.
const (
	DefaultTierName                    = "default"
	KubeAdminTierName                  = "kube-admin"
	KubeBaselineTierName               = "kube-baseline"
	AdminNetworkPolicyTierName         = "adminnetworkpolicy"
	BaselineAdminNetworkPolicyTierName = "baselineadminnetworkpolicy"

	KubeAdminTierOrder    = float64(1_000)
	DefaultTierOrder      = float64(1_000_000)
	KubeBaselineTierOrder = float64(10_000_000)
)

// Tier is an ordered group of policies; tiers are applied in order and a
// Pass action moves on to the next tier.
type Tier struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       TierSpec `json:"spec,omitempty"`
	// Status is always written, as "{}" when empty, as Calico writes it.
	Status TierStatus `json:"status,omitempty"`
}

// TierSpec is the body of a Tier.
type TierSpec struct {
	Order         *float64 `json:"order,omitempty"`
	DefaultAction *Action  `json:"defaultAction,omitempty"`
}

// TierStatus reports the tier's conditions.
type TierStatus struct {
	Conditions []TierCondition `json:"conditions,omitempty"`
}

// TierCondition has the fields of Kubernetes' metav1.Condition.
type TierCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
	LastTransitionTime Time   `json:"lastTransitionTime"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
}

// NewTier returns an empty Tier with kind and apiVersion set.
func NewTier() *Tier {
	return &Tier{TypeMeta: TypeMeta{Kind: KindTier, APIVersion: APIVersion}}
}

// Default sets order 1000000 and defaultAction Deny when unset, as
// Calico's client does for every tier.
func (t *Tier) Default() {
	polTypeMeta(&t.TypeMeta, KindTier)
	if t.Spec.Order == nil {
		o := DefaultTierOrder
		t.Spec.Order = &o
	}
	if t.Spec.DefaultAction == nil {
		a := Deny
		t.Spec.DefaultAction = &a
	}
}

var tierNameRe = lazyRegexp(`^` + polLabelFmt + `$`)

// tierPinned is the order and default action Calico requires of a
// built-in tier ("" means any action).
var tierPinned = map[string]struct {
	order  float64
	action Action
}{
	DefaultTierName:                    {DefaultTierOrder, Deny},
	KubeAdminTierName:                  {KubeAdminTierOrder, Pass},
	KubeBaselineTierName:               {KubeBaselineTierOrder, Pass},
	AdminNetworkPolicyTierName:         {KubeAdminTierOrder, ""},
	BaselineAdminNetworkPolicyTierName: {KubeBaselineTierOrder, ""},
}

// Validate checks the tier as Calico does: a DNS label name of at most 63
// characters, defaultAction Deny or Pass, and the pinned order and action
// of the built-in tiers.
func (t *Tier) Validate() error {
	v := newValidator()
	switch {
	case t.Name == "":
		v.add("Metadata.Name", t.Name, "name must be specified")
	case len(t.Name) > 63:
		v.add("Metadata.Name", t.Name, fmt.Sprintf("name is too long by %d bytes", len(t.Name)-63))
	case !tierNameRe().MatchString(t.Name):
		v.add("Metadata.Name", t.Name, "name must consist of lower case alphanumeric characters or '-' (regex: "+polLabelFmt+")")
	}
	if t.Namespace != "" {
		v.add("Metadata.Namespace", t.Namespace, KindTier+" is not namespaced")
	}
	v.labels("Metadata.Labels", t.Labels)
	ruleAnnotations(v, "Metadata.Annotations", t.Annotations)

	const s = KindTier + ".Spec"
	if o := t.Spec.Order; o != nil && (math.IsNaN(*o) || math.IsInf(*o, 0)) {
		v.add(s+".Order", *o, "order must be a finite number")
	}
	if a := t.Spec.DefaultAction; a != nil {
		v.oneOf(s+".DefaultAction", string(*a), string(Deny), string(Pass))
	}
	if pin, ok := tierPinned[t.Name]; ok {
		if t.Spec.Order == nil || *t.Spec.Order != pin.order {
			var got any = "<nil>"
			if t.Spec.Order != nil {
				got = *t.Spec.Order
			}
			v.add(s+".Order", got, t.Name+" tier order must be "+strconv.FormatFloat(pin.order, 'f', -1, 64))
		}
		if pin.action != "" && (t.Spec.DefaultAction == nil || *t.Spec.DefaultAction != pin.action) {
			var got any = "<nil>"
			if t.Spec.DefaultAction != nil {
				got = *t.Spec.DefaultAction
			}
			v.add(s+".DefaultAction", got, "The '"+t.Name+"' tier must have default action '"+string(pin.action)+"'")
		}
	}
	return v.err()
}
