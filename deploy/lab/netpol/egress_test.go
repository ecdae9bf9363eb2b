package netpol

import (
	"fmt"
	"net/netip"
	"testing"
)

// The egress and ipBlock cases of upstream's "Netpol NetworkPolicy
// between server and client", and its UDP and SCTP contexts. Each test's
// comment quotes the upstream It.

// "should allow egress access on one named port"
func TestEgressOnOneNamedPort(t *testing.T) {
	c := begin(t, tcp80, tcp81)
	c.create("x", "allow-egress", `
		podSelector: {matchLabels: {}}
		policyTypes: [Egress]
		egress:
		- ports: [{port: serve-80-tcp}]`)
	c.validate(tcp80, c.reach())
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{}, false)
	c.validate(tcp81, r)
}

// "should deny egress from pods based on PodSelector"
func TestDenyEgressByPodSelector(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "deny-egress-pod-a", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress: []`)
	r := c.reach()
	r.ExpectAllEgress("x/a", false)
	c.validate(tcp80, r)
}

// "should deny egress from all pods in a namespace"
func TestDenyEgressFromNamespace(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "deny-egress-ns-x", `
		podSelector: {}
		policyTypes: [Egress]
		egress: []`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{}, false)
	c.validate(tcp80, r)
}

// "should work with Ingress, Egress specified together"
func TestIngressAndEgressTogether(t *testing.T) {
	c := begin(t, tcp80, tcp81)
	c.create("x", "allow-client-a-via-pod-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress, Ingress]
		ingress:
		- from: [{podSelector: {matchLabels: {pod: b}}}]
		egress:
		- ports: [{port: 80}]`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	r.Expect("x/b", "x/a", true)
	c.validate(tcp80, r)

	r = c.reach()
	r.ExpectAllIngress("x/a", false)
	r.ExpectAllEgress("x/a", false)
	r.Expect("x/b", "x/a", true)
	c.validate(tcp81, r)
}

// "should support denying of egress traffic on the client side (even if
// the server explicitly allows this traffic)"
func TestEgressDeniedOnClientSide(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-to-ns-y-pod-a", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress:
		- to:
		  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
		    podSelector: {matchLabels: {pod: a}}`)
	fromXA := `
		policyTypes: [Ingress]
		ingress:
		- from:
		  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "x"}}
		    podSelector: {matchLabels: {pod: a}}`
	c.create("y", "allow-from-xa-on-ya-match-selector", "\t\tpodSelector: {matchLabels: {pod: a}}"+fromXA)
	c.create("y", "allow-from-xa-on-yb-match-selector", "\t\tpodSelector: {matchLabels: {pod: b}}"+fromXA)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x", Pod: "a"}, Peer{}, false)
	r.ExpectPeer(Peer{}, Peer{Namespace: "y", Pod: "a"}, false)
	r.ExpectPeer(Peer{Namespace: "x", Pod: "a"}, Peer{Namespace: "y", Pod: "a"}, true)
	r.ExpectPeer(Peer{}, Peer{Namespace: "y", Pod: "b"}, false)
	c.validate(tcp80, r)
}

// "should enforce egress policy allowing traffic to a server in a
// different namespace based on PodSelector and NamespaceSelector"
func TestEgressToServerInOtherNamespace(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-to-ns-y-pod-a", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress:
		- to:
		  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
		    podSelector: {matchLabels: {pod: a}}`)
	r := c.reach()
	r.ExpectAllEgress("x/a", false)
	r.Expect("x/a", "y/a", true)
	c.validate(tcp80, r)
}

// "should enforce multiple egress policies with egress allow-all policy
// taking precedence"
func TestEgressAllowAllTakesPrecedence(t *testing.T) {
	c := begin(t, tcp81)
	c.create("x", "allow-egress-port-80", `
		podSelector: {matchLabels: {}}
		policyTypes: [Egress]
		egress:
		- ports: [{port: 80}]`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{}, false)
	c.validate(tcp81, r)

	c.create("x", "allow-egress", `
		podSelector: {matchLabels: {}}
		policyTypes: [Egress]
		egress: [{}]`)
	c.validate(tcp81, c.reach())
}

// "should allow egress access to server in CIDR block"
func TestEgressToCIDR(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-client-a-via-cidr-egress-rule", fmt.Sprintf(`
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress:
		- to: [{ipBlock: {cidr: %s/32}}]`, c.ip("y/b")))
	r := c.reach()
	r.ExpectAllEgress("x/a", false)
	r.Expect("x/a", "y/b", true)
	c.validate(tcp80, r)
}

// largeCIDR is the /4 holding ip, as upstream's makeLargeCIDRForIP.
func largeCIDR(t *testing.T, ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Prefix(4)
	if err != nil {
		t.Fatal(err)
	}
	return p.String()
}

// allowAroundXB lets x/a out to the /4 around x/b except x/b itself.
func allowAroundXB(c *tcase) string {
	return fmt.Sprintf(`
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress:
		- to: [{ipBlock: {cidr: %s, except: [%s/32]}}]`, largeCIDR(c.t, c.ip("x/b")), c.ip("x/b"))
}

// "should enforce except clause while egress access to server in CIDR
// block"
func TestEgressCIDRExcept(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-client-a-via-cidr-egress-rule", allowAroundXB(c))
	r := c.reach()
	r.Expect("x/a", "x/b", false)
	c.validate(tcp80, r)
}

// "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except
// is allowed"
func TestCIDRAndExceptOverlap(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-client-a-via-cidr-egress-rule", allowAroundXB(c))
	r := c.reach()
	r.Expect("x/a", "x/b", false)
	c.validate(tcp80, r)

	c.update("x", "allow-client-a-via-cidr-egress-rule", fmt.Sprintf(`
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress:
		- to: [{ipBlock: {cidr: %s/32}}]`, c.ip("x/b")))
	r = c.reach()
	r.ExpectAllEgress("x/a", false)
	r.Expect("x/a", "x/b", true)
	c.validate(tcp80, r)
}

// "should enforce policies to check ingress and egress policies can be
// controlled independently based on PodSelector"
func TestIngressEgressIndependent(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-egress-for-target", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress: [{}]`)
	c.validate(tcp80, c.reach())

	c.create("x", "deny-ingress-via-label-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress: []`)
	r := c.reach()
	r.ExpectAllIngress("x/a", false)
	c.validate(tcp80, r)
}

// "should enforce policy based on NamespaceSelector with MatchExpressions
// using default ns label"
func TestNamespaceSelectorExpressionsDefaultLabel(t *testing.T) {
	c := begin(t, tcp80)
	c.create("x", "allow-ns-y-match-selector-for-immutable-ns-label", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress:
		- to: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: ["y"]}]}}]`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x", Pod: "a"}, Peer{Namespace: "y"}, false)
	c.validate(tcp80, r)
}

// Upstream's "Netpol [LinuxOnly] NetworkPolicy between server and client
// using UDP".

// "should support a 'default-deny-ingress' policy" (UDP)
func TestUDPDefaultDenyIngress(t *testing.T) {
	c := begin(t, udp80)
	c.create("x", "deny-all", `
		podSelector: {}
		policyTypes: [Ingress]
		ingress: []`)
	r := c.reach()
	r.ExpectPeer(Peer{}, Peer{Namespace: "x"}, false)
	c.validate(udp80, r)
}

// "should enforce policy based on Ports" (UDP)
func TestUDPPorts(t *testing.T) {
	c := begin(t, udp81)
	c.create("x", "allow-ingress-on-port-81-ns-x", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]
		  ports: [{port: 81, protocol: UDP}]`)
	r := c.reach()
	r.ExpectPeer(Peer{Namespace: "x"}, Peer{Namespace: "x", Pod: "a"}, false)
	r.ExpectPeer(Peer{Namespace: "z"}, Peer{Namespace: "x", Pod: "a"}, false)
	c.validate(udp81, r)
}

// "should enforce policy to allow traffic only from a pod in a different
// namespace based on PodSelector and NamespaceSelector" (UDP)
func TestUDPAllowOnlyFromPodInOtherNamespace(t *testing.T) {
	c := begin(t, udp80)
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
	c.validate(udp80, r)
}

// Upstream's "Netpol [Feature:SCTPConnectivity] [LinuxOnly]
// NetworkPolicy between server and client using SCTP" probes with SCTP:
// "should support a 'default-deny-ingress' policy", "should enforce
// policy based on Ports" and "should enforce policy to allow traffic only
// from a pod in a different namespace based on PodSelector and
// NamespaceSelector". This machine's kernel has no SCTP sockets
// (CONFIG_IP_SCTP is not set) and labnet serves only TCP and UDP.
func TestSCTP(t *testing.T) {
	for _, name := range []string{"DefaultDenyIngress", "Ports", "AllowOnlyFromPodInOtherNamespace"} {
		t.Run(name, func(t *testing.T) {
			t.Skip("SKIPPED: SCTP probes need kernel SCTP (CONFIG_IP_SCTP) and an SCTP server in labnet")
		})
	}
}
