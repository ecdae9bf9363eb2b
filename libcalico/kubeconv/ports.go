package kubeconv

import (
	"cmp"
	"fmt"
	"slices"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// SimplifyPorts returns the fewest ports and ranges covering ports, as
// Calico's SimplifyPorts: named ports first, in their order, then the
// numeric ports merged into sorted, non-adjacent ranges. Ports holding at
// most one port number are returned unchanged.
func SimplifyPorts(ports []v3.Port) []v3.Port {
	if len(ports) <= 1 {
		return ports
	}
	var out, ranges []v3.Port
	count := 0
	for _, p := range ports {
		switch {
		case p.PortName != "":
			out = append(out, p)
		case p.MinPort <= p.MaxPort:
			count += int(p.MaxPort) - int(p.MinPort) + 1
			ranges = append(ranges, p)
		}
	}
	if count <= 1 {
		return ports
	}
	slices.SortFunc(ranges, func(a, b v3.Port) int {
		return cmp.Or(cmp.Compare(a.MinPort, b.MinPort), cmp.Compare(a.MaxPort, b.MaxPort))
	})
	cur := ranges[0]
	for _, r := range ranges[1:] {
		if int(r.MinPort) > int(cur.MaxPort)+1 {
			out = append(out, cur)
			cur = r
			continue
		}
		cur.MaxPort = max(cur.MaxPort, r.MaxPort)
	}
	return append(out, cur)
}

// ruleProtocol returns the Calico protocol of a NetworkPolicyPort: TCP
// when unset. Only the protocols Kubernetes allows are accepted; Calico
// would pass any other through to a rule that fails validation or,
// without a port, matches a protocol Kubernetes never meant.
func ruleProtocol(p *corev1.Protocol) (v3.Protocol, error) {
	if p == nil {
		return v3.ProtocolFromString(v3.ProtocolTCP), nil
	}
	proto := v3.ProtocolFromString(string(*p))
	switch proto.StrVal {
	case v3.ProtocolTCP, v3.ProtocolUDP, v3.ProtocolSCTP:
		return proto, nil
	}
	return v3.Protocol{}, fmt.Errorf("unsupported protocol %q: must be TCP, UDP or SCTP", string(*p))
}

// rulePort converts the port of a NetworkPolicyPort that has one: a
// number, a named port, or with endPort a range, as Calico parses them.
// A port Calico parses but its validation rejects (0, or a name that is
// not an IANA service name) is an error here.
func rulePort(p *networkingv1.NetworkPolicyPort) (v3.Port, error) {
	s := p.Port.String()
	if p.EndPort != nil {
		s = fmt.Sprintf("%s:%d", s, *p.EndPort)
	}
	port, err := v3.PortFromString(s)
	if err != nil {
		return v3.Port{}, fmt.Errorf("invalid port %q: %w", s, err)
	}
	switch {
	case port.PortName != "" && !validPortName(port.PortName):
		return v3.Port{}, fmt.Errorf("invalid port %q: a port name must be 1-15 lower case alphanumerics or '-', with a letter and no leading, trailing or double '-'", s)
	case port.PortName == "" && port.MinPort == 0:
		return v3.Port{}, fmt.Errorf("invalid port %q: port numbers must be 1-65535", s)
	}
	return port, nil
}
