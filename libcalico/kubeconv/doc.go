// Package kubeconv converts Kubernetes objects into the Calico resources
// Calico's etcd deployment mirrors them as: NetworkPolicy into
// NetworkPolicy knp.default.<name>, Namespace into Profile kns.<name>,
// ServiceAccount into Profile ksa.<namespace>.<name>, and a Pod into the
// labels, profiles and ports of its WorkloadEndpoint. It is pure: no
// client, no I/O, no logging.
//
// The conversions are those of Calico's libcalico-go
// (lib/backend/k8s/conversion) as its etcd-mode kube-controllers and CNI
// plugin use them, metadata reduced to name and namespace as
// kube-controllers writes it. They differ from Calico only on input the
// Kubernetes API server rejects, where Calico would write a resource that
// fails validation or that matches more than the Kubernetes object says:
// there a NetworkPolicy rule is dropped and reported (as Calico drops a
// rule with a bad port), and a policy whose own name or pod selector cannot
// be converted is an error. So every policy NetworkPolicy returns passes
// v3.NetworkPolicy's Validate.
package kubeconv

// Names and label prefixes, as Calico's.
const (
	// PolicyNamePrefix names the Calico policy of a Kubernetes one.
	PolicyNamePrefix = "knp.default."
	// NamespaceProfilePrefix names a namespace's profile.
	NamespaceProfilePrefix = "kns."
	// ServiceAccountProfilePrefix names a service account's profile.
	ServiceAccountProfilePrefix = "ksa."
	// NamespaceLabelPrefix prefixes namespace labels on endpoints.
	NamespaceLabelPrefix = "pcns."
	// ServiceAccountLabelPrefix prefixes service account labels.
	ServiceAccountLabelPrefix = "pcsa."
	// NameLabel carries a namespace's or service account's own name.
	NameLabel = "projectcalico.org/name"
	// LabelServiceAccount carries a pod's service account name on its
	// endpoint (only when shorter than 63 characters).
	LabelServiceAccount = "projectcalico.org/serviceaccount"
)

// Pod and namespace annotations Calico's CNI plugin reads.
const (
	// AnnotationIPv4Pools is a JSON list of IPv4 pools (names or CIDRs)
	// to assign from; on the pod it overrides the namespace's.
	AnnotationIPv4Pools = "cni.projectcalico.org/ipv4pools"
	// AnnotationIPv6Pools is the same for IPv6.
	AnnotationIPv6Pools = "cni.projectcalico.org/ipv6pools"
	// AnnotationIPFamilies is a JSON list of the IP families ("IPv4",
	// "IPv6") to assign; on the pod it overrides the namespace's.
	AnnotationIPFamilies = "cni.projectcalico.org/ipFamilies"
	// AnnotationIPAddrs is a JSON list of at most one IPv4 and one IPv6
	// address to assign through Calico IPAM.
	AnnotationIPAddrs = "cni.projectcalico.org/ipAddrs"
	// AnnotationIPAddrsNoIPAM is the same, bypassing IPAM.
	AnnotationIPAddrsNoIPAM = "cni.projectcalico.org/ipAddrsNoIpam"
	// AnnotationFloatingIPs is a JSON list of external IPs to NAT to the
	// pod's address of the same family; see FloatingIPs.
	AnnotationFloatingIPs = "cni.projectcalico.org/floatingIPs"
	// AnnotationAllowedSourcePrefixes is a JSON list of CIDRs the pod may
	// send from besides its own addresses; see AllowedSourcePrefixes.
	AnnotationAllowedSourcePrefixes = "cni.projectcalico.org/allowedSourcePrefixes"
	// AnnotationHWAddr is the MAC address to give the pod's interface.
	AnnotationHWAddr = "cni.projectcalico.org/hwAddr"
)
