package kubeconv

import (
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	corev1 "k8s.io/api/core/v1"
)

// NamespaceProfileName returns the name of namespace ns's profile.
func NamespaceProfileName(ns string) string { return NamespaceProfilePrefix + ns }

// ServiceAccountProfileName returns the name of the profile of service
// account sa in namespace ns ("default" when empty, as Calico).
func ServiceAccountProfileName(ns, sa string) string {
	if ns == "" {
		ns = v3.DefaultNamespace
	}
	return ServiceAccountProfilePrefix + ns + "." + sa
}

// NamespaceProfile converts ns into its Profile kns.<name>, as Calico's
// etcd-mode kube-controllers does: metadata holding only the name, one
// Allow rule each way, and labelsToApply pcns.<key>=<value> for each of
// ns's labels plus pcns.projectcalico.org/name=<name>.
//
// As in Calico, a label whose prefixed key is no longer a valid label key
// (an unprefixed key of more than 58 characters) makes the profile fail
// validation.
func NamespaceProfile(ns *corev1.Namespace) *v3.Profile {
	p := v3.NewProfile()
	p.Name = NamespaceProfileName(ns.Name)
	p.Spec = v3.ProfileSpec{
		Ingress:       []v3.Rule{{Action: v3.Allow}},
		Egress:        []v3.Rule{{Action: v3.Allow}},
		LabelsToApply: prefixedLabels(NamespaceLabelPrefix, ns.Labels, ns.Name),
	}
	return p
}

// ServiceAccountProfile converts sa into its Profile ksa.<namespace>.<name>,
// as Calico's etcd-mode kube-controllers does: metadata holding only the
// name, no rules, and labelsToApply pcsa.<key>=<value> for each of sa's
// labels plus pcsa.projectcalico.org/name=<name>.
//
// As in Calico, a service account name longer than 63 characters (a
// valid name, but not a valid label value), or a label whose prefixed key
// is no longer a valid label key, makes the profile fail validation.
func ServiceAccountProfile(sa *corev1.ServiceAccount) *v3.Profile {
	p := v3.NewProfile()
	p.Name = ServiceAccountProfileName(sa.Namespace, sa.Name)
	p.Spec.LabelsToApply = prefixedLabels(ServiceAccountLabelPrefix, sa.Labels, sa.Name)
	return p
}

func prefixedLabels(prefix string, labels map[string]string, name string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		out[prefix+k] = v
	}
	out[prefix+NameLabel] = name
	return out
}
