package kubeconv

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strings"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	corev1 "k8s.io/api/core/v1"
)

// Endpoint is what a pod contributes to its WorkloadEndpoint.
type Endpoint struct {
	// Labels are the pod's labels plus projectcalico.org/namespace,
	// projectcalico.org/orchestrator=k8s and, when the pod names a service
	// account of fewer than 63 characters, projectcalico.org/serviceaccount.
	Labels map[string]string
	// Profiles are kns.<ns>, then ksa.<ns>.<sa> when the pod names a
	// service account.
	Profiles []string
	// Ports are the named or host-mapped ports of the pod's containers,
	// then of its init containers.
	Ports          []v3.WorkloadEndpointPort
	ServiceAccount string
	GenerateName   string
}

// PodEndpoint returns what pod contributes to its WorkloadEndpoint, as
// Calico's pod conversion. A port number out of range, which Calico would
// truncate to 16 bits (and the API server rejects), is an error. Port
// names and host IPs are passed through as Calico does: one the API
// server would reject fails WorkloadEndpoint validation.
func PodEndpoint(pod *corev1.Pod) (Endpoint, error) {
	if pod == nil {
		return Endpoint{}, fmt.Errorf("converting pod: nil pod")
	}
	ports, err := endpointPorts(nil, pod.Spec.Containers)
	if err == nil {
		ports, err = endpointPorts(ports, pod.Spec.InitContainers)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("converting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	profiles := []string{NamespaceProfileName(pod.Namespace)}
	if sa := pod.Spec.ServiceAccountName; sa != "" {
		profiles = append(profiles, ServiceAccountProfileName(pod.Namespace, sa))
	}
	return Endpoint{
		Labels:         EndpointLabels(pod),
		Profiles:       profiles,
		Ports:          ports,
		ServiceAccount: pod.Spec.ServiceAccountName,
		GenerateName:   pod.GenerateName,
	}, nil
}

// EndpointLabels returns the labels of pod's WorkloadEndpoint, as
// Endpoint.Labels.
func EndpointLabels(pod *corev1.Pod) map[string]string {
	labels := make(map[string]string, len(pod.Labels)+3)
	maps.Copy(labels, pod.Labels)
	labels[v3.LabelNamespace] = pod.Namespace
	labels[v3.LabelOrchestrator] = v3.OrchestratorKubernetes
	// As Calico, only when short enough to be a label value, for
	// compatibility; ksa. profiles match on any length.
	if sa := pod.Spec.ServiceAccountName; sa != "" && len(sa) < 63 {
		labels[LabelServiceAccount] = sa
	}
	return labels
}

// endpointPorts appends the ports of containers Calico maps onto the
// endpoint: those with a container port and either a name or a host port,
// of protocol TCP (the default), UDP or SCTP. Ports of other protocols
// are skipped, as Calico skips them.
func endpointPorts(ports []v3.WorkloadEndpointPort, containers []corev1.Container) ([]v3.WorkloadEndpointPort, error) {
	for _, c := range containers {
		for _, cp := range c.Ports {
			if cp.ContainerPort == 0 || (cp.HostPort == 0 && cp.Name == "") {
				continue
			}
			var proto string
			switch cp.Protocol {
			case corev1.ProtocolTCP, "":
				proto = v3.ProtocolTCP
			case corev1.ProtocolUDP:
				proto = v3.ProtocolUDP
			case corev1.ProtocolSCTP:
				proto = v3.ProtocolSCTP
			default:
				continue
			}
			switch {
			case cp.ContainerPort < 1 || cp.ContainerPort > 65535:
				return nil, fmt.Errorf("container %q: containerPort %d out of range 1-65535", c.Name, cp.ContainerPort)
			case cp.HostPort < 0 || cp.HostPort > 65535:
				return nil, fmt.Errorf("container %q: hostPort %d out of range 0-65535", c.Name, cp.HostPort)
			}
			ports = append(ports, v3.WorkloadEndpointPort{
				Name:     cp.Name,
				Protocol: v3.ProtocolFromString(proto),
				Port:     uint16(cp.ContainerPort),
				HostPort: uint16(cp.HostPort),
				HostIP:   cp.HostIP,
			})
		}
	}
	return ports, nil
}

// FloatingIPs parses the value of the floatingIPs annotation (a JSON list
// of IPs) and returns the NATs Calico's CNI plugin gives the endpoint:
// each external IP mapped to the pod address of its family (IPv6 when it
// contains ':'; the last one when podAddrs has several of a family). An
// external IP of a family the pod has no address of is skipped. An empty
// value is no floating IPs, as the CNI plugin treats it. A value that is
// not a JSON list of strings, or an entry that is not an IP address, is
// an error naming the annotation and its value; Calico does not check the
// entries.
func FloatingIPs(annotation string, podAddrs []netip.Addr) ([]v3.IPNAT, error) {
	if annotation == "" {
		return nil, nil
	}
	var ips []string
	if err := json.Unmarshal([]byte(annotation), &ips); err != nil {
		return nil, fmt.Errorf("parsing annotation %s=%q: %w", AnnotationFloatingIPs, annotation, err)
	}
	var v4, v6 netip.Addr
	for _, a := range podAddrs {
		a = a.Unmap().WithZone("")
		switch {
		case a.Is4():
			v4 = a
		case a.Is6():
			v6 = a
		}
	}
	var nats []v3.IPNAT
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("parsing annotation %s=%q: invalid IP %q", AnnotationFloatingIPs, annotation, s)
		}
		internal := v4
		if strings.Contains(s, ":") {
			internal = v6
		}
		if internal.IsValid() {
			nats = append(nats, v3.IPNAT{InternalIP: internal.String(), ExternalIP: s})
		}
	}
	return nats, nil
}

// AllowedSourcePrefixes parses the value of the allowedSourcePrefixes
// annotation (a JSON list of CIDRs) into the endpoint's
// AllowSpoofedSourcePrefixes, each masked to its network, as Calico does.
// An empty value is none.
func AllowedSourcePrefixes(annotation string) ([]string, error) {
	if annotation == "" {
		return nil, nil
	}
	var cidrs []string
	if err := json.Unmarshal([]byte(annotation), &cidrs); err != nil {
		return nil, fmt.Errorf("parsing annotation %s=%q: %w", AnnotationAllowedSourcePrefixes, annotation, err)
	}
	var out []string
	for _, s := range cidrs {
		n, _, err := parseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("parsing annotation %s=%q: %w", AnnotationAllowedSourcePrefixes, annotation, err)
		}
		out = append(out, n)
	}
	return out, nil
}
