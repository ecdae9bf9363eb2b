package v3

// Profile holds rules and labels that endpoints listing it inherit; its
// rules apply after all tiers of policy.
type Profile struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       ProfileSpec `json:"spec,omitempty"`
}

// ProfileSpec is the body of a Profile.
type ProfileSpec struct {
	Ingress       []Rule            `json:"ingress,omitempty"`
	Egress        []Rule            `json:"egress,omitempty"`
	LabelsToApply map[string]string `json:"labelsToApply,omitempty"`
}

// NewProfile returns an empty Profile with kind and apiVersion set.
func NewProfile() *Profile {
	return &Profile{TypeMeta: TypeMeta{Kind: KindProfile, APIVersion: APIVersion}}
}

// Default sets kind and apiVersion when empty; a Profile has no other
// defaults.
func (p *Profile) Default() { polTypeMeta(&p.TypeMeta, KindProfile) }

// Validate checks the name, the rules and labelsToApply.
func (p *Profile) Validate() error {
	v := newValidator()
	epMeta(v, KindProfile, &p.ObjectMeta, false)
	const s = KindProfile + ".Spec"
	ruleList(v, s+".Ingress", p.Spec.Ingress, ruleDirNone, false)
	ruleList(v, s+".Egress", p.Spec.Egress, ruleDirNone, false)
	v.labels(s+".LabelsToApply", p.Spec.LabelsToApply)
	return v.err()
}
