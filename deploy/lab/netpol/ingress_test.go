package netpol

import "testing"

// The cases of upstream's "Netpol NetworkPolicy between server and
// client" that select who may connect in: pod and namespace selectors,
// ports, stacked and updated policies. Each test's comment quotes the
// upstream It.

// "should support a 'default-deny-ingress' policy"
func TestDefaultDenyIngress(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "deny-ingress", `
		podSelector: {}
		policyTypes: [Ingress]
		ingress: []`)
	r := c.reach()
	r.ExpectPeer(Peer{}, Peer{Namespace: "x"}, false)
	c.validate(tcp80, r)
}

// "should support a 'default-deny-all' policy"
func TestDefaultDenyAll(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "deny-all", `
		podSelector: {}
		policyTypes: [Ingress, Egress]
		ingress: []
		egress: []`)
	r := c.reach()
	r.ExpectPeer(Peer{}, Peer{Namespace: "x"}, false)
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{}, false)
	c.validate(tcp80, r)
}

// "should enforce policy to allow traffic from pods within server
// namespace based on PodSelector"
func TestAllowFromPodsInServerNamespaceByPodSelector(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "x-a-allows-x-b", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{podSelector: {matchLabels: {pod: b}}}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	r.Expect("x/b", "x/a", true)
	c.validate(tcp80, r)
}

// "should enforce policy to allow ingress traffic for a target"
func TestAllowIngressForTarget(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "deny-all", `
		podSelector: {}
		policyTypes: [Ingress]
		ingress: []`)
	c.create("x", "allow-all-to-a", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{podSelector: {}, namespaceSelector: {}}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", true)
	r.ExpectAllIngress("x/b", false)
	r.ExpectAllIngress("x/c", false)
	c.validate(tcp80, r)
}

// "should enforce policy to allow ingress traffic from pods in all
// namespaces"
func TestAllowIngressFromAllNamespaces(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-from-another-ns", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchLabels: {}}}]`)
	c.validate(tcp80, c.reach())
}

// "should enforce policy to allow traffic only from a different
// namespace, based on NamespaceSelector"
func TestAllowOnlyFromOtherNamespaceByNamespaceSelector(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-client-a-via-ns-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{Namespace: "x", Pod: "a"}, false)
	r.ExpectPeer(Peer{Namespace: "z"}, Peer{Namespace: "x", Pod: "a"}, false)
	c.validate(tcp80, r)
}

// "should enforce policy based on PodSelector with MatchExpressions"
func TestPodSelectorMatchExpressions(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "x-a-allows-x-b", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{podSelector: {matchExpressions: [{key: pod, operator: In, values: [b]}]}}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	r.Expect("x/b", "x/a", true)
	c.validate(tcp80, r)
}

// "should enforce policy based on NamespaceSelector with MatchExpressions"
func TestNamespaceSelectorMatchExpressions(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-ns-y-match-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: ["y"]}]}}]`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{Namespace: "x", Pod: "a"}, false)
	r.ExpectPeer(Peer{Namespace: "z"}, Peer{Namespace: "x", Pod: "a"}, false)
	c.validate(tcp80, r)
}

// "should enforce policy based on PodSelector or NamespaceSelector": two
// peers in one rule, either admits.
func TestPodSelectorOrNamespaceSelector(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-ns-y-match-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from:
		  - namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: ["x"]}]}
		  - podSelector: {matchLabels: {pod: b}}`)
	r := c.reach()
	r.Expect("x/a", "x/a", false)
	r.Expect("x/c", "x/a", false)
	c.validate(tcp80, r)
}

// "should enforce policy based on PodSelector and NamespaceSelector": one
// peer with both selectors, both must match.
func TestPodSelectorAndNamespaceSelector(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-ns-y-podselector-and-nsselector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from:
		  - namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: ["x"]}]}
		    podSelector: {matchLabels: {pod: b}}`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	r.Expect("y/b", "x/a", true)
	r.Expect("z/b", "x/a", true)
	c.validate(tcp80, r)
}

// "should enforce policy based on Multiple PodSelectors and
// NamespaceSelectors"
func TestMultiplePodSelectorsAndNamespaceSelectors(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-ns-y-z-pod-b-c", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from:
		  - namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: ["x"]}]}
		    podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{Namespace: "x", Pod: "a"}, false)
	r.Expect("y/a", "x/a", false)
	r.Expect("z/a", "x/a", false)
	c.validate(tcp80, r)
}

// "should enforce policy based on any PodSelectors"
func TestAnyPodSelectors(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-ns-x-pod-b-c", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{podSelector: {matchLabels: {pod: b}}}, {podSelector: {matchLabels: {pod: c}}}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	r.Expect("x/b", "x/a", true)
	r.Expect("x/c", "x/a", true)
	c.validate(tcp80, r)
}

// "should enforce policy to allow traffic only from a pod in a different
// namespace based on PodSelector and NamespaceSelector"
func TestAllowOnlyFromPodInOtherNamespace(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-ns-y-pod-a-via-namespace-pod-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from:
		  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
		    podSelector: {matchLabels: {pod: a}}`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	r.Expect("y/a", "x/a", true)
	c.validate(tcp80, r)
}

// allowYOn81 admits namespace y to x/a on TCP port 81 only, as upstream's
// "allow-client-a-via-ns-selector" of the ports cases.
const allowYOn81 = `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]
		  ports: [{port: 81, protocol: TCP}]`

// "should enforce policy based on Ports"
func TestPorts(t *testing.T) {
	c := begin(t, tcp81)
	c.create("x", "allow-client-a-via-ns-selector", allowYOn81)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{Namespace: "x", Pod: "a"}, false)
	r.ExpectPeer(Peer{Namespace: "y"}, Peer{Namespace: "x", Pod: "a"}, true)
	r.ExpectPeer(Peer{Namespace: "z"}, Peer{Namespace: "x", Pod: "a"}, false)
	c.validate(tcp81, r)
}

// "should enforce multiple, stacked policies with overlapping
// podSelectors"
func TestStackedPoliciesOverlappingPodSelectors(t *testing.T) {
	c := begin(t, tcp80, tcp81)
	c.create("x", "allow-client-a-via-ns-selector", allowYOn81)
	allow := c.reach()
	allow.ExpectPeer(Peer{Namespace: "x"}, Peer{Namespace: "x", Pod: "a"}, false)
	allow.ExpectPeer(Peer{Namespace: "y"}, Peer{Namespace: "x", Pod: "a"}, true)
	allow.ExpectPeer(Peer{Namespace: "z"}, Peer{Namespace: "x", Pod: "a"}, false)
	c.validate(tcp81, allow)
	deny := c.reach()
	deny.ExpectAllIngress("x/a", false)
	c.validate(tcp80, deny)

	c.create("x", "allow-client-a-via-ns-selector-80", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]
		  ports: [{port: 80, protocol: TCP}]`)
	c.validate(tcp80, allow)
}

// "should support allow-all policy"
func TestAllowAll(t *testing.T) {
	c := begin(t, tcp80, tcp81)
	c.create("x", "allow-all", `
		podSelector: {matchLabels: {}}
		policyTypes: [Ingress]
		ingress: [{}]`)
	c.validate(tcp80, c.reach())
	c.validate(tcp81, c.reach())
}

// "should allow ingress access on one named port"
func TestIngressOnOneNamedPort(t *testing.T) {
	c := begin(t, tcp80, tcp81)
	c.create("x", "allow-all", `
		podSelector: {matchLabels: {}}
		policyTypes: [Ingress]
		ingress:
		- ports: [{port: serve-81-tcp}]`)
	c.validate(tcp81, c.reach())
	r := c.reach()
	r.ExpectPeer(Peer{}, Peer{Namespace: "x"}, false)
	c.validate(tcp80, r)
}

// "should allow ingress access from namespace on one named port"
func TestIngressFromNamespaceOnOneNamedPort(t *testing.T) {
	c := begin(t, tcp80, tcp81)
	c.create("x", "allow-client-a-via-ns-selector-80", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]
		  ports: [{port: serve-80-tcp, protocol: TCP}]`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{Namespace: "x", Pod: "a"}, false)
	r.ExpectPeer(Peer{Namespace: "z"}, Peer{Namespace: "x", Pod: "a"}, false)
	c.validate(tcp80, r)
	blocked := c.reach()
	blocked.ExpectAllIngress("x/a", false)
	c.validate(tcp81, blocked)
}

// "should enforce updated policy": allow all, then replaced by deny all.
func TestUpdatedPolicy(t *testing.T) {
	c := begin(t, tcp81)
	c.create("x", "allow-all-mutate-to-deny-all", `
		podSelector: {matchLabels: {}}
		policyTypes: [Ingress]
		ingress: [{}]`)
	c.validate(tcp81, c.reach())
	c.update("x", "allow-all-mutate-to-deny-all", `
		podSelector: {matchLabels: {}}
		policyTypes: [Ingress]
		ingress: []`)
	r := c.reach()
	r.ExpectPeer(Peer{}, Peer{Namespace: "x"}, false)
	c.validate(tcp81, r)
}

// "should allow ingress access from updated namespace"
func TestIngressFromUpdatedNamespace(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-client-a-via-ns-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchLabels: {ns2: updated}}}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	c.validate(tcp80, r)

	c.labelNamespace("y", map[string]string{"ns2": "updated"})
	r = c.reach()
	r.ExpectAllIngress("x/a", false)
	r.ExpectPeer(Peer{Namespace: "y"}, Peer{}, true)
	c.validate(tcp80, r)
}

// "should allow ingress access from updated pod"
func TestIngressFromUpdatedPod(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-client-a-via-pod-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{podSelector: {matchLabels: {pod: b, pod2: updated}}}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	c.validate(tcp80, r)

	c.labelPod("x/b", map[string]string{"pod": "b", "pod2": "updated"})
	r = c.reach()
	r.ExpectAllIngress("x/a", false)
	r.Expect("x/b", "x/a", true)
	c.validate(tcp80, r)
}

// "should deny ingress from pods on other namespaces"
func TestDenyIngressFromOtherNamespaces(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "deny-empty-policy", `
		podSelector: {}
		policyTypes: [Ingress]
		ingress:
		- from: [{podSelector: {matchLabels: {}}}]`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "y"}, Peer{Namespace: "x"}, false)
	r.ExpectPeer(Peer{Namespace: "z"}, Peer{Namespace: "x"}, false)
	c.validate(tcp80, r)
}

// "should deny ingress access to updated pod"
func TestDenyIngressToUpdatedPod(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "deny-ingress-via-label-selector", `
		podSelector: {matchLabels: {target: isolated}}
		policyTypes: [Ingress]
		ingress: []`)
	c.validate(tcp80, c.reach())

	c.labelPod("x/a", map[string]string{"target": "isolated"})
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	c.validate(tcp80, r)
}

// "should enforce ingress policy allowing any port traffic to a server on
// a specific protocol"
func TestIngressAnyPortOnProtocol(t *testing.T) {
	c := begin(t, tcp80, udp80)
	c.create("x", "allow-ingress-by-proto", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- ports: [{protocol: TCP}]`)
	c.validate(tcp80, c.reach())
	r := c.reach()
	r.ExpectPeer(Peer{}, Peer{Namespace: "x", Pod: "a"}, false)
	c.validate(udp80, r)
}

// "should enforce multiple ingress policies with ingress allow-all policy
// taking precedence"
func TestIngressAllowAllTakesPrecedence(t *testing.T) {
	c := begin(t, tcp81)
	c.create("x", "allow-ingress-port-80", `
		podSelector: {matchLabels: {}}
		policyTypes: [Ingress]
		ingress:
		- ports: [{port: 80}]`)
	r := c.reach()
	r.ExpectPeer(Peer{}, Peer{Namespace: "x"}, false)
	c.validate(tcp81, r)

	c.create("x", "allow-ingress", `
		podSelector: {matchLabels: {}}
		policyTypes: [Ingress]
		ingress: [{}]`)
	c.validate(tcp81, c.reach())
}

// "should stop enforcing policies after they are deleted"
func TestPoliciesDeleted(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "deny-all", `
		podSelector: {}
		policyTypes: [Ingress, Egress]
		ingress: []
		egress: []`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{}, false)
	r.ExpectPeer(Peer{}, Peer{Namespace: "x"}, false)
	c.validate(tcp80, r)

	c.deleteAllPolicies()
	c.validate(tcp80, c.reach())
}

// "should enforce policy to allow traffic based on NamespaceSelector with
// MatchLabels using default ns label"
func TestNamespaceSelectorDefaultLabel(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-client-a-via-ns-selector-for-immutable-ns-label", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{Namespace: "x", Pod: "a"}, false)
	r.ExpectPeer(Peer{Namespace: "z"}, Peer{Namespace: "x", Pod: "a"}, false)
	c.validate(tcp80, r)
}

// "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even
// if the plugin doesn't support SCTP"
func TestSCTPPolicyIsNotTCP(t *testing.T) {
	c := begin(t, tcp81)
	c.create("x", "deny-ingress", `
		podSelector: {}
		policyTypes: [Ingress]
		ingress: []`)
	c.create("x", "allow-only-sctp-ingress-on-port-81", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- ports: [{port: 81, protocol: SCTP}]`)
	r := c.reach()
	r.ExpectPeer(Peer{}, Peer{Namespace: "x"}, false)
	c.validate(tcp81, r)
}

// "should properly isolate pods that are selected by a policy allowing
// SCTP, even if the plugin doesn't support SCTP"
func TestSCTPPolicyIsolates(t *testing.T) {
	c := begin(t, tcp81)
	c.create("x", "allow-only-sctp-ingress-on-port-80", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- ports: [{port: 80, protocol: SCTP}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	c.validate(tcp81, r)
}

// "should not allow access by TCP when a policy specifies only UDP"
func TestUDPOnlyPolicyBlocksTCP(t *testing.T) {
	c := begin(t, tcp81)
	c.create("x", "allow-only-udp-ingress-on-port-81", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- ports: [{port: 81, protocol: UDP}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	c.validate(tcp81, r)
}
