package kubeconv_test

import (
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/kubeconv"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// policyCase is one NetworkPolicy conversion and its whole expected
// result. The policy is "test.policy" in "default" unless k8sName is set.
type policyCase struct {
	name     string
	k8sName  string
	spec     networkingv1.NetworkPolicySpec
	selector string
	ingress  []v3.Rule
	egress   []v3.Rule
	types    []v3.PolicyType
	dropped  []dropped // rules reported in the ConversionError
}

var (
	typesIngress = []v3.PolicyType{v3.PolicyTypeIngress}
	typesEgress  = []v3.PolicyType{v3.PolicyTypeEgress}
	typesBoth    = []v3.PolicyType{v3.PolicyTypeIngress, v3.PolicyTypeEgress}

	labelSel2   = metav1.LabelSelector{MatchLabels: kv("label", "value", "label2", "value2")}
	labelSel1   = metav1.LabelSelector{MatchLabels: kv("label", "value")}
	selLabel2   = orch + " && label == 'value' && label2 == 'value2'"
	selLabel1   = orch + " && label == 'value'"
	peerKK2     = podPeer(matchLabels("k", "v", "k2", "v2"))
	selKK2      = orch + " && k == 'v' && k2 == 'v2'"
	peerK       = podPeer(matchLabels("k", "v"))
	peerK2      = podPeer(matchLabels("k2", "v2"))
	selK        = orch + " && k == 'v'"
	selK2       = orch + " && k2 == 'v2'"
	nsSelDevFoo = matchLabels("namespaceRole", "dev", "namespaceFoo", "bar")
	inBlock     = v3.EntityRule{Nets: []string{"192.168.0.0/16"}, NotNets: []string{"192.168.3.0/24", "192.168.4.0/24"}}
	outBlock    = v3.EntityRule{Nets: []string{"192.168.0.0/16"}, NotNets: []string{"192.168.3.0/24", "192.168.4.0/24", "192.168.5.0/24"}}
)

// calicoPolicyCases reproduce, case by case, the NetworkPolicy conversion
// tests of Calico's libcalico-go/lib/backend/k8s/conversion/conversion_test.go
// ("Test NetworkPolicy conversion"), each named after the test. Where a
// Calico test checks only part of the result, the rest is what Calico's
// code produces.
var calicoPolicyCases = []policyCase{
	{
		name: "should parse a basic k8s NetworkPolicy to a NetworkPolicy",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel2,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(80), kport("foo")), From: peers(peerKK2)}},
			PolicyTypes: ingressType,
		},
		selector: selLabel2,
		ingress:  rules(inRule(sel(selKK2), tcp, cports("80", "foo"))),
		types:    typesIngress,
	},
	{
		name: "should parse a k8s NetworkPolicy with no ports",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel2,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers(peerKK2)}},
			PolicyTypes: ingressType,
		},
		selector: selLabel2,
		ingress:  rules(inRule(sel(selKK2), nil, nil)),
		types:    typesIngress,
	},
	{
		name: "should parse a k8s NetworkPolicy with blank ports",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel2,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(80), kport(nil)), From: peers(peerKK2)}},
			PolicyTypes: ingressType,
		},
		selector: selLabel2,
		ingress:  rules(inRule(sel(selKK2), tcp, nil)),
		types:    typesIngress,
	},
	{
		name: "should parse a k8s egress NetworkPolicy with blank ports",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel2,
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{Ports: kports(kport(nil), kport(80)), To: peers(peerKK2)},
				{Ports: kports(kport(53, "UDP"))},
			},
			PolicyTypes: egressType,
		},
		selector: selLabel2,
		egress:   rules(outRule(sel(selKK2), tcp, nil), outRule(v3.EntityRule{}, udp, cports("53"))),
		types:    typesEgress,
	},
	{
		name: "should drop rules with invalid ports in a k8s NetworkPolicy (ingress)",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel2,
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: kports(kport(80), kport("foo")), From: peers(peerKK2)},
				{Ports: kports(kport(80), kport("-50:-1")), From: peers(peerKK2)},
			},
			PolicyTypes: ingressType,
		},
		selector: selLabel2,
		ingress:  rules(inRule(sel(selKK2), tcp, cports("80", "foo"))),
		types:    typesIngress,
		dropped:  []dropped{"ingress 1"},
	},
	{
		name: "should drop rules with invalid ports in a k8s NetworkPolicy (egress)",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel2,
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{Ports: kports(kport(80), kport("foo")), To: peers(peerKK2)},
				{Ports: kports(kport(80), kport("-50:-1")), To: peers(peerKK2)},
				{Ports: kports(kport(80), kport("-22:-3")), To: peers(peerKK2)},
			},
			PolicyTypes: ingressType, // sic: egress rules without Egress stay Ingress-only
		},
		selector: selLabel2,
		egress:   rules(outRule(sel(selKK2), tcp, cports("80", "foo"))),
		types:    typesIngress,
		dropped:  []dropped{"egress 1", "egress 2"},
	},
	{
		name:     "should parse a NetworkPolicy with no rules",
		spec:     networkingv1.NetworkPolicySpec{PodSelector: labelSel1, PolicyTypes: ingressType},
		selector: selLabel1,
		types:    typesIngress,
	},
	{
		// Calico names it "testPolicy", a name the API server rejects
		// and our validation too (see TestNetworkPolicyBadName).
		name:     "should parse a default-deny egress NetworkPolicy",
		k8sName:  "testpolicy",
		spec:     networkingv1.NetworkPolicySpec{PolicyTypes: egressType},
		selector: orch,
		types:    typesEgress,
	},
	{
		name: "should parse a NetworkPolicy with multiple peers",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel1,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(nil)), From: peers(peerK, peerK2)}},
			PolicyTypes: ingressType,
		},
		selector: selLabel1,
		ingress:  rules(inRule(sel(selK), tcp, nil), inRule(sel(selK2), tcp, nil)),
		types:    typesIngress,
	},
	{
		name: "should parse a k8s NetworkPolicy with a DoesNotExist expression ",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel2,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: kports(kport(80), kport("foo")),
				From:  peers(podPeer(matchExpr("toast", metav1.LabelSelectorOpDoesNotExist))),
			}},
			PolicyTypes: ingressType,
		},
		selector: selLabel2,
		ingress:  rules(inRule(sel(orch+" && ! has(toast)"), tcp, cports("80", "foo"))),
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with multiple peers and ports",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel1,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: kports(kport(90, "UDP"), kport(80, "TCP")),
				From:  peers(peerK, peerK2),
			}},
			PolicyTypes: ingressType,
		},
		selector: selLabel1,
		ingress: rules(
			inRule(sel(selK), tcp, cports("80")), inRule(sel(selK2), tcp, cports("80")),
			inRule(sel(selK), udp, cports("90")), inRule(sel(selK2), udp, cports("90")),
		),
		types: typesIngress,
	},
	{
		name:     "should parse a NetworkPolicy with empty podSelector",
		spec:     networkingv1.NetworkPolicySpec{PolicyTypes: ingressType},
		selector: orch,
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with a namespaceSelector",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel1,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers(networkingv1.NetworkPolicyPeer{NamespaceSelector: nsSelDevFoo})}},
			PolicyTypes: ingressType,
		},
		selector: selLabel1,
		ingress:  rules(inRule(v3.EntityRule{Selector: orch, NamespaceSelector: "namespaceFoo == 'bar' && namespaceRole == 'dev'"}, nil, nil)),
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with a nil namespace selector",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel1,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers(podPeer(&metav1.LabelSelector{}))}},
			PolicyTypes: ingressType,
		},
		selector: selLabel1,
		ingress:  rules(inRule(sel(orch), nil, nil)),
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with an empty namespaceSelector",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel1,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers(networkingv1.NetworkPolicyPeer{NamespaceSelector: matchLabels()})}},
			PolicyTypes: ingressType,
		},
		selector: selLabel1,
		ingress:  rules(inRule(v3.EntityRule{Selector: orch, NamespaceSelector: "all()"}, nil, nil)),
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with pod and namespace selectors",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel1,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: peers(networkingv1.NetworkPolicyPeer{
				NamespaceSelector: nsSelDevFoo,
				PodSelector:       matchLabels("podA", "B", "podC", "D"),
			})}},
			PolicyTypes: ingressType,
		},
		selector: selLabel1,
		ingress: rules(inRule(v3.EntityRule{
			Selector:          orch + " && podA == 'B' && podC == 'D'",
			NamespaceSelector: "namespaceFoo == 'bar' && namespaceRole == 'dev'",
		}, nil, nil)),
		types: typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with podSelector.MatchExpressions",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: *matchExpr("k", metav1.LabelSelectorOpIn, "v1", "v2"),
			PolicyTypes: ingressType,
		},
		selector: orch + " && k in { 'v1', 'v2' }",
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with Ports only",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(80, "TCP"))}},
			PolicyTypes: ingressType,
		},
		selector: orch,
		ingress:  rules(inRule(v3.EntityRule{}, tcp, cports("80"))),
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with Port Range only",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(krange(32000, 32768, "TCP"))}},
			PolicyTypes: ingressType,
		},
		selector: orch,
		ingress:  rules(inRule(v3.EntityRule{}, tcp, cports("32000:32768"))),
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with Ports only (egress)",
		spec: networkingv1.NetworkPolicySpec{
			Egress:      []networkingv1.NetworkPolicyEgressRule{{Ports: kports(kport(80, "TCP"))}},
			PolicyTypes: egressType,
		},
		selector: orch,
		egress:   rules(outRule(v3.EntityRule{}, tcp, cports("80"))),
		types:    typesEgress,
	},
	{
		name: "should parse a NetworkPolicy with Port Range only (egress)",
		spec: networkingv1.NetworkPolicySpec{
			Egress:      []networkingv1.NetworkPolicyEgressRule{{Ports: kports(krange(32000, 32768, "TCP"))}},
			PolicyTypes: egressType,
		},
		selector: orch,
		egress:   rules(outRule(v3.EntityRule{}, tcp, cports("32000:32768"))),
		types:    typesEgress,
	},
	{
		name: "should parse a NetworkPolicy with an Ingress rule with an IPBlock Peer",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers(ipBlock("192.168.0.0/16", "192.168.3.0/24", "192.168.4.0/24"))}},
			PolicyTypes: ingressType,
		},
		selector: orch,
		ingress:  rules(inRule(inBlock, nil, nil)),
		types:    typesIngress,
	},
	{
		name: "should parse a NetworkPolicy with an Egress rule with an IPBlock Peer",
		spec: networkingv1.NetworkPolicySpec{
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: peers(ipBlock("192.168.0.0/16", outBlock.NotNets...))}},
			PolicyTypes: egressType,
		},
		selector: orch,
		egress:   rules(outRule(outBlock, nil, nil)),
		types:    typesEgress,
	},
	{
		name: "should parse a NetworkPolicy with an Egress rule with IPBlock and Ports",
		spec: networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				Ports: kports(kport(90, "UDP"), kport(80, "TCP")),
				To:    peers(ipBlock("192.168.0.0/16", outBlock.NotNets...)),
			}},
			PolicyTypes: egressType,
		},
		selector: orch,
		egress:   rules(outRule(outBlock, tcp, cports("80")), outRule(outBlock, udp, cports("90"))),
		types:    typesEgress,
	},
	{
		name: "should parse a NetworkPolicyPeer with an IPBlock Peer and no Except field",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers(ipBlock("192.168.0.0/16"))}},
			PolicyTypes: ingressType,
		},
		selector: orch,
		ingress:  rules(inRule(v3.EntityRule{Nets: []string{"192.168.0.0/16"}}, nil, nil)),
		types:    typesIngress,
	},
	{
		// Deviation: Calico turns the peer into one with no fields, so
		// that the rule allows traffic from anywhere; we drop the rule.
		name: "should have empty and Nil NetworkPolicyPeerfields when an IPBlock is invalid",
		spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers(ipBlock("192.168.0.0/55"))}},
			PolicyTypes: ingressType,
		},
		selector: orch,
		types:    typesIngress,
		dropped:  []dropped{"ingress 0"},
	},
	{
		name: "should parse a NetworkPolicyPeer with an CIDR and Except field",
		spec: networkingv1.NetworkPolicySpec{
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: peers(ipBlock("192.168.0.0/16", outBlock.NotNets...))}},
			PolicyTypes: egressType,
		},
		selector: orch,
		egress:   rules(outRule(outBlock, nil, nil)),
		types:    typesEgress,
	},
	{
		name: "should parse a NetworkPolicy with both an Egress and an Ingress rule",
		spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: peers(ipBlock("192.168.0.0/16", "192.168.3.0/24", "192.168.4.0/24"))}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: peers(ipBlock("10.10.0.0/16", "192.168.13.0/24", "192.168.14.0/24", "192.168.15.0/24")),
			}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress},
		},
		selector: orch,
		ingress:  rules(inRule(inBlock, nil, nil)),
		egress: rules(outRule(v3.EntityRule{
			Nets:    []string{"10.10.0.0/16"},
			NotNets: []string{"192.168.13.0/24", "192.168.14.0/24", "192.168.15.0/24"},
		}, nil, nil)),
		types: typesBoth,
	},
}

// calicoLegacyPolicyCases reproduce Calico's "Test NetworkPolicy
// conversion (k8s <= 1.7, no policyTypes)": no policyTypes means Ingress.
var calicoLegacyPolicyCases = []policyCase{
	{
		name: "no policyTypes: should parse a basic NetworkPolicy to a Policy",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel2,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(80)), From: peers(peerKK2)}},
		},
		selector: selLabel2,
		ingress:  rules(inRule(sel(selKK2), tcp, cports("80"))),
		types:    typesIngress,
	},
	{
		name:     "no policyTypes: should parse a NetworkPolicy with no rules",
		spec:     networkingv1.NetworkPolicySpec{PodSelector: labelSel1},
		selector: selLabel1,
		types:    typesIngress,
	},
	{
		name: "no policyTypes: should parse a NetworkPolicy with multiple peers",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel1,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(nil)), From: peers(peerK, peerK2)}},
		},
		selector: selLabel1,
		ingress:  rules(inRule(sel(selK), tcp, nil), inRule(sel(selK2), tcp, nil)),
		types:    typesIngress,
	},
	{
		name: "no policyTypes: should parse a NetworkPolicy with multiple peers and ports",
		spec: networkingv1.NetworkPolicySpec{
			PodSelector: labelSel1,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: kports(kport(90, "UDP"), kport(80, "TCP")),
				From:  peers(peerK, peerK2),
			}},
		},
		selector: selLabel1,
		ingress: rules(
			inRule(sel(selK), tcp, cports("80")), inRule(sel(selK2), tcp, cports("80")),
			inRule(sel(selK), udp, cports("90")), inRule(sel(selK2), udp, cports("90")),
		),
		types: typesIngress,
	},
	{
		name:     "no policyTypes: should parse a NetworkPolicy with empty podSelector",
		selector: orch,
		types:    typesIngress,
	},
	{
		name:     "no policyTypes: should parse a NetworkPolicy with podSelector.MatchExpressions",
		spec:     networkingv1.NetworkPolicySpec{PodSelector: *matchExpr("k", metav1.LabelSelectorOpIn, "v1", "v2")},
		selector: orch + " && k in { 'v1', 'v2' }",
		types:    typesIngress,
	},
	{
		name: "no policyTypes: should parse a NetworkPolicy with Ports only",
		spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: kports(kport(80, "TCP"))}},
		},
		selector: orch,
		ingress:  rules(inRule(v3.EntityRule{}, tcp, cports("80"))),
		types:    typesIngress,
	},
}

func TestCalicoNetworkPolicyCases(t *testing.T) {
	runPolicyCases(t, calicoPolicyCases)
}

func TestCalicoLegacyNetworkPolicyCases(t *testing.T) {
	runPolicyCases(t, calicoLegacyPolicyCases)
}

func (c policyCase) input() *networkingv1.NetworkPolicy {
	name := c.k8sName
	if name == "" {
		name = "test.policy"
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "30316465-6365-4463-ad63-3564622d3638"},
		Spec:       c.spec,
	}
}

func runPolicyCases(t *testing.T, cases []policyCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			np := c.input()
			pol, err := kubeconv.NetworkPolicy(np)
			if pol == nil {
				t.Fatalf("NetworkPolicy returned no policy: %v", err)
			}
			equal(t, "dropped rules", droppedRules(t, err), c.dropped)

			order := 1000.0
			want := v3.NewNetworkPolicy()
			want.ObjectMeta = v3.ObjectMeta{Name: "knp.default." + np.Name, Namespace: "default"}
			want.Spec = v3.NetworkPolicySpec{
				Tier:     "default",
				Order:    &order,
				Selector: c.selector,
				Ingress:  c.ingress,
				Egress:   c.egress,
				Types:    c.types,
			}
			equal(t, "metadata", pol.ObjectMeta, want.ObjectMeta)
			equal(t, "type", pol.TypeMeta, want.TypeMeta)
			if pol.Spec.Selector != c.selector {
				t.Errorf("selector:\n got  %s\n want %s", pol.Spec.Selector, c.selector)
			}
			equal(t, "ingress", pol.Spec.Ingress, c.ingress)
			equal(t, "egress", pol.Spec.Egress, c.egress)
			equal(t, "spec", pol.Spec, want.Spec)
			validPolicy(t, pol)
		})
	}
}
