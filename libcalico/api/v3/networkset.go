package v3

import "strconv"

// NetworkSet is a namespaced, labelled set of networks that policy
// selectors can match.
type NetworkSet struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       NetworkSetSpec `json:"spec,omitempty"`
}

// NetworkSetSpec is the body of a NetworkSet.
type NetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

// NewNetworkSet returns an empty NetworkSet with kind and apiVersion set.
func NewNetworkSet() *NetworkSet {
	return &NetworkSet{TypeMeta: TypeMeta{Kind: KindNetworkSet, APIVersion: APIVersion}}
}

// Default sets the namespace to "default" when empty.
func (n *NetworkSet) Default() {
	polTypeMeta(&n.TypeMeta, KindNetworkSet)
	if n.Namespace == "" {
		n.Namespace = DefaultNamespace
	}
}

// Validate checks the metadata and that every net is an IP or a CIDR.
func (n *NetworkSet) Validate() error {
	v := newValidator()
	epMeta(v, KindNetworkSet, &n.ObjectMeta, true)
	netsetCheck(v, KindNetworkSet, n.Labels, n.Spec.Nets)
	return v.err()
}

// GlobalNetworkSet is a cluster-wide, labelled set of networks that policy
// selectors can match.
type GlobalNetworkSet struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       GlobalNetworkSetSpec `json:"spec,omitempty"`
}

// GlobalNetworkSetSpec is the body of a GlobalNetworkSet.
type GlobalNetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

// NewGlobalNetworkSet returns an empty GlobalNetworkSet with kind and
// apiVersion set.
func NewGlobalNetworkSet() *GlobalNetworkSet {
	return &GlobalNetworkSet{TypeMeta: TypeMeta{Kind: KindGlobalNetworkSet, APIVersion: APIVersion}}
}

// Default sets kind and apiVersion when empty; there are no other defaults.
func (n *GlobalNetworkSet) Default() { polTypeMeta(&n.TypeMeta, KindGlobalNetworkSet) }

// Validate checks the metadata and that every net is an IP or a CIDR.
func (n *GlobalNetworkSet) Validate() error {
	v := newValidator()
	epMeta(v, KindGlobalNetworkSet, &n.ObjectMeta, false)
	netsetCheck(v, KindGlobalNetworkSet, n.Labels, n.Spec.Nets)
	return v.err()
}

// netsetCheck validates what both network set kinds share. Nets need not
// be masked to their network address, as in Calico.
func netsetCheck(v *validator, kind string, labels map[string]string, nets []string) {
	if _, ok := labels[LabelNamespace]; ok {
		v.add("Metadata.Labels", LabelNamespace, LabelNamespace+" is not a valid label name")
	}
	for i, n := range nets {
		v.cidr(kind+".Spec.Nets["+strconv.Itoa(i)+"]", n)
	}
}
