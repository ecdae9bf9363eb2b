package kubeconv_test

import (
	"errors"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/kubeconv"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCalicoSelectorConversion reproduces Calico's "selector conversion
// table", through a peer of an ingress rule: a pod selector becomes the
// rule's source selector, a namespace selector its namespace selector.
func TestCalicoSelectorConversion(t *testing.T) {
	const pod, ns = true, false
	for _, c := range []struct {
		name  string
		sel   *metav1.LabelSelector
		isPod bool
		want  string
	}{
		{"should handle an empty pod selector", &metav1.LabelSelector{}, pod, orch},
		{"should handle an empty namespace selector", &metav1.LabelSelector{}, ns, "all()"},
		{"should handle an OpDoesNotExist namespace selector", matchExpr("toast", metav1.LabelSelectorOpDoesNotExist), ns, "! has(toast)"},
		{"should handle an OpExists namespace selector", matchExpr("toast", metav1.LabelSelectorOpExists), ns, "has(toast)"},
		{"should handle an OpIn namespace selector", matchExpr("toast", metav1.LabelSelectorOpIn, "butter", "jam"), ns, "toast in { 'butter', 'jam' }"},
		{"should handle an OpNotIn namespace selector", matchExpr("toast", metav1.LabelSelectorOpNotIn, "marmite", "milk"), ns, "toast not in { 'marmite', 'milk' }"},
		{"should handle an OpDoesNotExist pod selector", matchExpr("toast", metav1.LabelSelectorOpDoesNotExist), pod, orch + " && ! has(toast)"},
		{"should handle nil pod selector", nil, pod, orch},
		{"should handle nil namespace selector", nil, ns, ""},
		// Ours: the other operators on a pod selector, and matchLabels
		// sorted before matchExpressions in their order.
		{"pod selector OpIn", matchExpr("toast", metav1.LabelSelectorOpIn, "butter"), pod, orch + " && toast in { 'butter' }"},
		{"pod selector OpNotIn", matchExpr("toast", metav1.LabelSelectorOpNotIn, "a", "b"), pod, orch + " && toast not in { 'a', 'b' }"},
		{"pod selector OpExists", matchExpr("example.com/toast", metav1.LabelSelectorOpExists), pod, orch + " && has(example.com/toast)"},
		{"labels then expressions", &metav1.LabelSelector{
			MatchLabels: kv("z", "1", "a", "2"),
			MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "y", Operator: metav1.LabelSelectorOpExists},
				{Key: "b", Operator: metav1.LabelSelectorOpDoesNotExist},
			},
		}, ns, "a == '2' && z == '1' && has(y) && ! has(b)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p networkingv1.NetworkPolicyPeer
			if c.isPod {
				p.PodSelector = c.sel
			} else {
				p.NamespaceSelector = c.sel
			}
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: peers(p)}}},
			}
			if c.isPod && c.sel != nil {
				np.Spec.PodSelector = *c.sel
			}
			pol, err := kubeconv.NetworkPolicy(np)
			if err != nil {
				t.Fatal(err)
			}
			got := pol.Spec.Ingress[0].Source.NamespaceSelector
			if c.isPod {
				got = pol.Spec.Ingress[0].Source.Selector
				if pol.Spec.Selector != c.want {
					t.Errorf("policy selector %q, want %q", pol.Spec.Selector, c.want)
				}
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
			validPolicy(t, pol)
		})
	}
}

// TestCalicoSimplifyPorts reproduces Calico's "Test port simplification".
func TestCalicoSimplifyPorts(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"0", "0"},
		{"1", "1"},
		{"65535", "65535"},
		{"0:65535", "0:65535"},
		{"1,2", "1:2"},
		{"2,1", "1:2"},
		{"1,2,4", "1:2,4"},
		{"1,2,3,4,80:81,81:90,9090", "1:4,80:90,9090"},
		{"81:90,4,2,80:81,3,1,9090", "1:4,80:90,9090"},
		{"81:90,4,2,foo,80:81,3,1,9090,http", "foo,http,1:4,80:90,9090"},
		{"foo", "foo"},
		// Ours: one number among names is left as it is; duplicates and
		// nested ranges merge.
		{"80,foo", "80,foo"},
		{"80,80", "80"},
		{"1:100,5:6,101", "1:101"},
	} {
		t.Run(c.in+" -> "+c.want, func(t *testing.T) {
			var in []v3.Port
			if c.in != "" {
				in = cports(strings.Split(c.in, ",")...)
			}
			var parts []string
			for _, p := range kubeconv.SimplifyPorts(in) {
				parts = append(parts, p.String())
			}
			if got := strings.Join(parts, ","); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// ourPolicyCases cover what Calico's tests leave out.
var ourPolicyCases = []policyCase{
	{
		name: "SCTP and UDP ports",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(9000, "SCTP"), kport("dns", "UDP"))}},
			PolicyTypes: ingressType,
		},
		selector: orch,
		ingress:  rules(inRule(v3.EntityRule{}, sctp, cports("9000")), inRule(v3.EntityRule{}, udp, cports("dns"))),
		types:    typesIngress,
	},
	{
		name: "mixed protocols in one rule: one rule per protocol, sorted",
		spec: networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				Ports: kports(kport(443), kport(53, "UDP"), kport(9000, "SCTP"), kport(80, "TCP"), kport(53, "TCP")),
				To:    peers(peerK),
			}},
			PolicyTypes: egressType,
		},
		selector: orch,
		egress: rules(
			outRule(sel(selK), sctp, cports("9000")),
			outRule(sel(selK), tcp, cports("53", "80", "443")),
			outRule(sel(selK), udp, cports("53")),
		),
		types: typesEgress,
	},
	{
		name: "a port entry without a port allows every port of its protocol only",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(80), kport(nil, "UDP"), kport(53, "UDP"))}},
			PolicyTypes: ingressType,
		},
		selector: orch,
		ingress:  rules(inRule(v3.EntityRule{}, tcp, cports("80")), inRule(v3.EntityRule{}, udp, nil)),
		types:    typesIngress,
	},
	{
		name: "empty rules {} allow everything",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
		selector: orch,
		ingress:  rules(v3.Rule{Action: v3.Allow}),
		egress:   rules(v3.Rule{Action: v3.Allow}),
		types:    typesBoth,
	},
	{
		name: "ports by number, name and range simplified",
		spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: kports(kport(8080), kport(82), kport("http"), krange(85, 90), kport(81), krange(80, 84), kport("metrics")),
			}},
			PolicyTypes: ingressType,
		},
		selector: orch,
		ingress:  rules(inRule(v3.EntityRule{}, tcp, cports("http", "metrics", "80:90", "8080"))),
		types:    typesIngress,
	},
	{
		name: "several peers times several protocols",
		spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: kports(kport(53, "UDP"), kport(53)),
				From:  peers(peerK, ipBlock("10.0.0.0/8"), networkingv1.NetworkPolicyPeer{NamespaceSelector: matchLabels("team", "a")}),
			}},
		},
		selector: orch,
		ingress: rules(
			inRule(sel(selK), tcp, cports("53")),
			inRule(v3.EntityRule{Nets: []string{"10.0.0.0/8"}}, tcp, cports("53")),
			inRule(v3.EntityRule{Selector: orch, NamespaceSelector: "team == 'a'"}, tcp, cports("53")),
			inRule(sel(selK), udp, cports("53")),
			inRule(v3.EntityRule{Nets: []string{"10.0.0.0/8"}}, udp, cports("53")),
			inRule(v3.EntityRule{Selector: orch, NamespaceSelector: "team == 'a'"}, udp, cports("53")),
		),
		types: typesIngress,
	},
	{
		name: "ipBlock CIDRs are masked; IPv6",
		spec: networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{To: peers(ipBlock("10.1.2.3/8", "10.1.2.3/16"))},
				{To: peers(ipBlock("fd00::1/64", "fd00::1:0/112"))},
			},
			PolicyTypes: egressType,
		},
		selector: orch,
		egress: rules(
			outRule(v3.EntityRule{Nets: []string{"10.0.0.0/8"}, NotNets: []string{"10.1.0.0/16"}}, nil, nil),
			outRule(v3.EntityRule{Nets: []string{"fd00::/64"}, NotNets: []string{"fd00::1:0/112"}}, nil, nil),
		),
		types: typesEgress,
	},
	{
		name: "Egress alone in policyTypes keeps ingress rules",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
			PolicyTypes: egressType,
		},
		selector: orch,
		ingress:  rules(v3.Rule{Action: v3.Allow}),
		types:    typesEgress,
	},
	{
		name: "rules that cannot be converted are dropped, the others kept",
		spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: kports(kport(80, "ICMP"))},                      // protocol Kubernetes rejects
				{Ports: kports(kport(0))},                               // port 0
				{Ports: kports(kport("HTTP"))},                          // not an IANA service name
				{Ports: kports(krange(90, 80))},                         // endPort below port
				{Ports: kports(krange(80, 70000))},                      // endPort out of range
				{Ports: kports(kport(70000))},                           // port out of range
				{From: peers(ipBlock("10.0.0.0/8", "fd00::/64"))},       // mixed families
				{From: peers(ipBlock("10.0.0.0/8", "10.0.0.0/33"))},     // bad except
				{From: peers(podPeer(matchLabels("k", "v' || all()")))}, // injection
				{From: peers(podPeer(matchExpr("k", "Contains", "v")))}, // unknown operator
				{From: peers(networkingv1.NetworkPolicyPeer{NamespaceSelector: matchLabels("bad key!", "v")})},
				{Ports: kports(kport(443))},
			},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{Ports: kports(kport("foo", "TCP")), To: peers(ipBlock("nonsense"))},
				{To: peers(ipBlock("192.168.0.0/16"))},
			},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
		selector: orch,
		ingress:  rules(inRule(v3.EntityRule{}, tcp, cports("443"))),
		egress:   rules(outRule(v3.EntityRule{Nets: []string{"192.168.0.0/16"}}, nil, nil)),
		types:    typesBoth,
		dropped: []dropped{
			"ingress 0", "ingress 1", "ingress 2", "ingress 3", "ingress 4", "ingress 5",
			"ingress 6", "ingress 7", "ingress 8", "ingress 9", "ingress 10", "egress 0",
		},
	},
}

func TestNetworkPolicyMore(t *testing.T) {
	runPolicyCases(t, ourPolicyCases)
}

func TestNetworkPolicyDroppedRuleError(t *testing.T) {
	np := calicoPolicyCases[4].input() // invalid ports, ingress
	_, err := kubeconv.NetworkPolicy(np)
	var cerr *kubeconv.ConversionError
	if !errors.As(err, &cerr) {
		t.Fatalf("want *ConversionError, got %v", err)
	}
	if cerr.Namespace != "default" || cerr.Name != "test.policy" {
		t.Errorf("error names %s/%s", cerr.Namespace, cerr.Name)
	}
	const want = `NetworkPolicy default/test.policy: dropped ingress rule 1: ports[1]: invalid port "-50:-1": invalid name for named port (-50:-1)`
	if err.Error() != want {
		t.Errorf("error:\n got  %s\n want %s", err, want)
	}
	var rerr kubeconv.RuleError
	if !errors.As(err, &rerr) || rerr.Index != 1 || rerr.Egress {
		t.Errorf("errors.As RuleError: %+v", rerr)
	}
}

// A policy whose name or pod selector cannot be converted is an error
// with no policy.
func TestNetworkPolicyBadPolicy(t *testing.T) {
	long := strings.Repeat("a", 250)
	for _, c := range []struct {
		name string
		np   *networkingv1.NetworkPolicy
		want string
	}{
		{"nil", nil, "nil policy"},
		{"upper case name (Calico's testPolicy)", &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "testPolicy", Namespace: "default"}}, "Metadata.Name"},
		{"empty name", &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default"}}, "Metadata.Name"},
		{"name too long with the prefix", &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: long, Namespace: "default"}}, "too long"},
		{"bad namespace", &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "Bad_NS"}}, "Metadata.Namespace"},
		{"bad pod selector value", &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: *matchLabels("app", "x' || all() || a == 'y")},
		}, "podSelector: matchLabels: invalid label value"},
		{"unknown operator in pod selector", &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: *matchExpr("app", "Gt", "1")},
		}, `unknown operator "Gt"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			pol, err := kubeconv.NetworkPolicy(c.np)
			if pol != nil || err == nil {
				t.Fatalf("got policy %v, error %v; want no policy and an error", pol, err)
			}
			var cerr *kubeconv.ConversionError
			if errors.As(err, &cerr) {
				t.Errorf("a policy error must not be a *ConversionError: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

// The input is not modified and the output shares no slices with it or
// between rules.
func TestNetworkPolicyNoAliasing(t *testing.T) {
	np := ourPolicyCases[5].input() // several peers and protocols
	before := jsonString(np)
	pol, err := kubeconv.NetworkPolicy(np)
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(np) != before {
		t.Error("input modified")
	}
	pol.Spec.Ingress[1].Source.Nets[0] = "changed"
	pol.Spec.Ingress[0].Destination.Ports[0] = v3.SinglePort(1)
	*pol.Spec.Ingress[0].Protocol = v3.ProtocolFromString("UDP")
	if pol.Spec.Ingress[4].Source.Nets[0] != "10.0.0.0/8" || pol.Spec.Ingress[2].Destination.Ports[0] != v3.SinglePort(53) ||
		pol.Spec.Ingress[1].Protocol.String() != "TCP" {
		t.Error("rules share slices or pointers")
	}
}

func TestPolicyName(t *testing.T) {
	if got := kubeconv.PolicyName("allow-dns"); got != "knp.default.allow-dns" {
		t.Errorf("PolicyName = %q", got)
	}
	for name, want := range map[string]bool{
		"knp.default.allow-dns": true,
		"knp.default.a.b":       true,
		"knp.default.":          false,
		"allow-dns":             false,
		"default.knp.default.x": false,
		"ossg.default.x":        false,
	} {
		if got := kubeconv.IsPolicyName(name); got != want {
			t.Errorf("IsPolicyName(%q) = %v, want %v", name, got, want)
		}
	}
}

// Protocols are matched without regard to case, as Calico's
// ProtocolFromString does.
func TestNetworkPolicyProtocolCase(t *testing.T) {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			Ports: kports(kport(53, corev1.Protocol("udp")), kport(80, corev1.Protocol("Tcp"))),
		}}},
	}
	pol, err := kubeconv.NetworkPolicy(np)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "ingress", pol.Spec.Ingress, rules(inRule(v3.EntityRule{}, tcp, cports("80")), inRule(v3.EntityRule{}, udp, cports("53"))))
}
