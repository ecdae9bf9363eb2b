package kubeconv_test

import (
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/kubeconv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func validProfile(t *testing.T, p *v3.Profile) {
	t.Helper()
	cp := *p
	cp.Default()
	if err := cp.Validate(); err != nil {
		t.Errorf("profile fails Validate: %v", err)
	}
}

var allowBoth = v3.ProfileSpec{Ingress: []v3.Rule{{Action: v3.Allow}}, Egress: []v3.Rule{{Action: v3.Allow}}}

// TestCalicoNamespaceProfile reproduces Calico's "Test Namespace
// conversion", except the UID and revision checks: etcd-mode
// kube-controllers keeps only the name in the metadata.
func TestCalicoNamespaceProfile(t *testing.T) {
	const uid = "30316465-6365-4463-ad63-3564622d3638"
	for _, c := range []struct {
		name   string
		ns     corev1.Namespace
		labels map[string]string
	}{
		{
			"should parse a Namespace to a Profile",
			corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: kv("foo", "bar", "roger", "rabbit"), UID: uid}},
			kv("pcns.projectcalico.org/name", "default", "pcns.foo", "bar", "pcns.roger", "rabbit"),
		},
		{
			"should parse a Namespace to a Profile with no labels",
			corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Annotations: kv(), UID: uid}},
			kv("pcns.projectcalico.org/name", "default"),
		},
		{
			"should ignore the network-policy Namespace annotation",
			corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", UID: uid, Annotations: kv(
				"net.beta.kubernetes.io/network-policy", `{"ingress": {"isolation": "DefaultDeny"}}`)}},
			kv("pcns.projectcalico.org/name", "default"),
		},
		{
			"should not fail for malformed annotation",
			corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", UID: uid, Annotations: kv(
				"net.beta.kubernetes.io/network-policy", "invalidJSON")}},
			kv("pcns.projectcalico.org/name", "default"),
		},
		{
			"should handle a valid but not DefaultDeny annotation",
			corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", UID: uid, Annotations: kv(
				"net.beta.kubernetes.io/network-policy", "{}")}},
			kv("pcns.projectcalico.org/name", "default"),
		},
		{
			"prefixed label keys",
			corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: kv("kubernetes.io/metadata.name", "team-a")}},
			kv("pcns.projectcalico.org/name", "team-a", "pcns.kubernetes.io/metadata.name", "team-a"),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := kubeconv.NamespaceProfile(&c.ns)
			want := v3.NewProfile()
			want.Name = "kns." + c.ns.Name
			want.Spec = allowBoth
			want.Spec.LabelsToApply = c.labels
			equal(t, "profile", p, want)
			validProfile(t, p)
		})
	}
}

// TestCalicoServiceAccountProfile reproduces Calico's "Test ServiceAccount
// conversion", except the UID and revision checks.
func TestCalicoServiceAccountProfile(t *testing.T) {
	const uid = "30316465-6365-4463-ad63-3564622d3638"
	for _, c := range []struct {
		name     string
		sa       corev1.ServiceAccount
		wantName string
		labels   map[string]string
	}{
		{
			"should parse a ServiceAccount in default namespace to a Profile",
			corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa-test", Labels: kv("foo", "bar", "roger", "rabbit"), UID: uid}},
			"ksa.default.sa-test",
			kv("pcsa.projectcalico.org/name", "sa-test", "pcsa.foo", "bar", "pcsa.roger", "rabbit"),
		},
		{
			"should parse a ServiceAccount in Namespace to a Profile",
			corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa-test", Namespace: "test", Annotations: kv(), UID: uid}},
			"ksa.test.sa-test",
			kv("pcsa.projectcalico.org/name", "sa-test"),
		},
		{
			"should parse a ServiceAccount with no labels to a Profile",
			corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa-test", UID: uid}},
			"ksa.default.sa-test",
			kv("pcsa.projectcalico.org/name", "sa-test"),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := kubeconv.ServiceAccountProfile(&c.sa)
			want := v3.NewProfile()
			want.Name = c.wantName
			want.Spec.LabelsToApply = c.labels
			equal(t, "profile", p, want)
			validProfile(t, p)
		})
	}
}

func TestProfileNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{kubeconv.NamespaceProfileName("kube-system"), "kns.kube-system"},
		{kubeconv.ServiceAccountProfileName("ns", "sa"), "ksa.ns.sa"},
		{kubeconv.ServiceAccountProfileName("ns", "sa.with.dots"), "ksa.ns.sa.with.dots"},
		{kubeconv.ServiceAccountProfileName("", "sa"), "ksa.default.sa"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// As in Calico, names and keys that are valid in Kubernetes can give
// labelsToApply that are not; the profile then fails validation.
func TestProfileLabelLimits(t *testing.T) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("s", 64), Namespace: "ns"}}
	if err := kubeconv.ServiceAccountProfile(sa).Validate(); err == nil {
		t.Error("a 64-character service account name should not be a valid label value")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: kv(strings.Repeat("k", 60), "v")}}
	if err := kubeconv.NamespaceProfile(ns).Validate(); err == nil {
		t.Error("a 65-character prefixed key should not be a valid label key")
	}
}
