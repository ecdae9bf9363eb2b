package controllers

import (
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/informers"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/kubeconv"

	"github.com/calico-etcd/calico/kube-controllers/mirror"
)

// NewPolicy mirrors every Kubernetes NetworkPolicy into the Calico
// NetworkPolicy knp.default.<name> in its namespace. A rule that cannot be
// converted is left out, with a warning, as Calico does.
func NewPolicy(d Deps, f informers.SharedInformerFactory, c *client.Client) (Controller, error) {
	kind := mirror.Kind[*v3.NetworkPolicy]{
		Name: "policy",
		Owns: func(k mirror.Key) bool { return kubeconv.IsPolicyName(k.Name) },
		Same: func(want, have *v3.NetworkPolicy) bool { return sameJSON(want.Spec, have.Spec) },
		Merge: func(want, have *v3.NetworkPolicy) *v3.NetworkPolicy {
			out := v3.Clone(have)
			out.Spec = want.Spec
			return out
		},
	}
	log := d.Log.WithField("controller", kind.Name)
	convert := func(np *networkingv1.NetworkPolicy) (*v3.NetworkPolicy, bool) {
		p, err := kubeconv.NetworkPolicy(np)
		if err != nil {
			log.WithError(err).WithField("policy", np.Namespace+"/"+np.Name).Warn("NetworkPolicy not fully converted")
		}
		return p, p != nil
	}
	keyOf := func(np *networkingv1.NetworkPolicy) mirror.Key {
		return mirror.Key{Namespace: np.Namespace, Name: kubeconv.PolicyName(np.Name)}
	}
	return newMirrored(d, v3.KindNetworkPolicy, kind, c.NetworkPolicies(),
		f.Networking().V1().NetworkPolicies().Informer(), convert, keyOf)
}
