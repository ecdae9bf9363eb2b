package kubeconv_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/kubeconv"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Builders for Kubernetes input.

const orch = "projectcalico.org/orchestrator == 'k8s'"

var (
	ingressType = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressType  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
)

// kv builds a label map from key, value pairs.
func kv(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

// matchLabels returns a selector with the given key, value pairs.
func matchLabels(pairs ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: kv(pairs...)}
}

func matchExpr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// kport is a NetworkPolicyPort: an int or string port and an optional
// protocol.
func kport(port any, proto ...corev1.Protocol) networkingv1.NetworkPolicyPort {
	var p networkingv1.NetworkPolicyPort
	switch v := port.(type) {
	case int:
		is := intstr.FromInt32(int32(v))
		p.Port = &is
	case string:
		is := intstr.FromString(v)
		p.Port = &is
	}
	if len(proto) > 0 {
		p.Protocol = &proto[0]
	}
	return p
}

// krange is a NetworkPolicyPort with an endPort.
func krange(port, end int32, proto ...corev1.Protocol) networkingv1.NetworkPolicyPort {
	p := kport(int(port), proto...)
	p.EndPort = &end
	return p
}

func kports(ps ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return ps }

func podPeer(s *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: s}
}

func ipBlock(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func peers(ps ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return ps }

// Builders for expected Calico output.

func proto(name string) *v3.Protocol {
	p := v3.ProtocolFromString(name)
	return &p
}

var (
	tcp  = proto(v3.ProtocolTCP)
	udp  = proto(v3.ProtocolUDP)
	sctp = proto(v3.ProtocolSCTP)
)

// cports parses Calico ports ("80", "80:90", "http").
func cports(ss ...string) []v3.Port {
	var out []v3.Port
	for _, s := range ss {
		p, err := v3.PortFromString(s)
		if err != nil {
			panic("bad test port " + s + ": " + err.Error())
		}
		out = append(out, p)
	}
	return out
}

// inRule is an ingress Allow rule from src to ports.
func inRule(src v3.EntityRule, p *v3.Protocol, ports []v3.Port) v3.Rule {
	return v3.Rule{Action: v3.Allow, Protocol: p, Source: src, Destination: v3.EntityRule{Ports: ports}}
}

// outRule is an egress Allow rule to dst and ports.
func outRule(dst v3.EntityRule, p *v3.Protocol, ports []v3.Port) v3.Rule {
	dst.Ports = ports
	return v3.Rule{Action: v3.Allow, Protocol: p, Destination: dst}
}

func sel(s string) v3.EntityRule { return v3.EntityRule{Selector: s} }

func rules(rs ...v3.Rule) []v3.Rule { return rs }

// Assertions.

// dropped names a rule reported in a ConversionError: "ingress 1",
// "egress 0".
type dropped string

func droppedRules(t *testing.T, err error) []dropped {
	t.Helper()
	if err == nil {
		return nil
	}
	var cerr *kubeconv.ConversionError
	if !errors.As(err, &cerr) {
		t.Fatalf("error is not a *ConversionError: %v", err)
	}
	var out []dropped
	for _, r := range cerr.Rules {
		dir := "ingress"
		if r.Egress {
			dir = "egress"
		}
		out = append(out, dropped(dir+" "+strconv.Itoa(r.Index)))
	}
	return out
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// equal fails the test unless got and want are deeply equal, showing both
// as JSON.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %s\n want %s", what, jsonString(got), jsonString(want))
	}
}

// validPolicy checks that pol passes Default and Validate.
func validPolicy(t *testing.T, pol *v3.NetworkPolicy) {
	t.Helper()
	if err := pol.Validate(); err != nil {
		t.Errorf("converted policy fails Validate: %v", err)
	}
	cp := *pol
	cp.Default()
	if err := cp.Validate(); err != nil {
		t.Errorf("converted policy fails Validate after Default: %v", err)
	}
}
