package controllers

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/kubeconv"

	"github.com/calico-etcd/calico/kube-controllers/mirror"
)

// profileKind is a mirror.Kind of the profiles whose names start with
// prefix.
func profileKind(name, prefix string) mirror.Kind[*v3.Profile] {
	return mirror.Kind[*v3.Profile]{
		Name: name,
		Owns: func(k mirror.Key) bool { return strings.HasPrefix(k.Name, prefix) },
		Same: func(want, have *v3.Profile) bool { return sameJSON(want.Spec, have.Spec) },
		Merge: func(want, have *v3.Profile) *v3.Profile {
			out := v3.Clone(have)
			out.Spec = want.Spec
			return out
		},
	}
}

// NewNamespace mirrors every Namespace into Profile kns.<name>.
func NewNamespace(d Deps, f informers.SharedInformerFactory, c *client.Client) (Controller, error) {
	return newMirrored(d, v3.KindProfile, profileKind("namespace", kubeconv.NamespaceProfilePrefix), c.Profiles(),
		f.Core().V1().Namespaces().Informer(),
		func(ns *corev1.Namespace) (*v3.Profile, bool) { return kubeconv.NamespaceProfile(ns), true },
		func(ns *corev1.Namespace) mirror.Key { return mirror.Key{Name: kubeconv.NamespaceProfileName(ns.Name)} })
}

// NewServiceAccount mirrors every ServiceAccount into Profile
// ksa.<namespace>.<name>.
func NewServiceAccount(d Deps, f informers.SharedInformerFactory, c *client.Client) (Controller, error) {
	return newMirrored(d, v3.KindProfile, profileKind("serviceaccount", kubeconv.ServiceAccountProfilePrefix), c.Profiles(),
		f.Core().V1().ServiceAccounts().Informer(),
		func(sa *corev1.ServiceAccount) (*v3.Profile, bool) { return kubeconv.ServiceAccountProfile(sa), true },
		func(sa *corev1.ServiceAccount) mirror.Key {
			return mirror.Key{Name: kubeconv.ServiceAccountProfileName(sa.Namespace, sa.Name)}
		})
}
