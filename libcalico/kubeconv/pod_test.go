package kubeconv_test

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/kubeconv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func wepPort(name, proto string, port, hostPort uint16, hostIP string) v3.WorkloadEndpointPort {
	return v3.WorkloadEndpointPort{Name: name, Protocol: v3.ProtocolFromString(proto), Port: port, HostPort: hostPort, HostIP: hostIP}
}

// validEndpoint checks that a WorkloadEndpoint made from e validates. The
// pod name is not the pod's: Calico's cases use names such as "podA" that
// Kubernetes would reject.
func validEndpoint(t *testing.T, pod *corev1.Pod, e kubeconv.Endpoint) {
	t.Helper()
	w := v3.NewWorkloadEndpoint()
	w.Namespace = pod.Namespace
	w.Labels = e.Labels
	w.GenerateName = e.GenerateName
	w.Spec = v3.WorkloadEndpointSpec{
		Orchestrator: v3.OrchestratorKubernetes, Node: "node-a", Pod: "pod-a", Endpoint: "eth0",
		InterfaceName: "cali0123456789a", Profiles: e.Profiles, Ports: e.Ports,
		ServiceAccountName: e.ServiceAccount, IPNetworks: []string{"192.168.0.1/32"},
	}
	w.Default()
	if err := w.Validate(); err != nil {
		t.Errorf("endpoint fails Validate: %v", err)
	}
}

// TestCalicoPodEndpoint reproduces the label, profile, port, service
// account and generateName checks of Calico's "Test Pod conversion".
func TestCalicoPodEndpoint(t *testing.T) {
	longSA := "serviceaccount-name-that-is-too-long-to-be-used-as-a-kubernetes-label-because-it-exceeds-the-character-limit"
	saPorts := []corev1.Container{
		{Ports: []corev1.ContainerPort{{ContainerPort: 5678}, {Name: "no-proto", ContainerPort: 1234}}},
		{Ports: []corev1.ContainerPort{{Name: "tcp-proto", Protocol: corev1.ProtocolTCP, ContainerPort: 1024}}},
	}
	saWantPorts := []v3.WorkloadEndpointPort{wepPort("no-proto", "TCP", 1234, 0, ""), wepPort("tcp-proto", "TCP", 1024, 0, "")}
	for _, c := range []struct {
		name string
		pod  corev1.Pod
		want kubeconv.Endpoint
		// Calico's port names longer than 15 characters fail endpoint
		// validation, in Calico too.
		invalid bool
	}{
		{
			name:    "should parse a Pod with an IP to a WorkloadEndpoint",
			invalid: true,
			pod: corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "podA", Namespace: "default", Labels: kv("labelA", "valueA", "labelB", "valueB")},
				Spec: corev1.PodSpec{
					NodeName:       "nodeA",
					InitContainers: []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "init-port", ContainerPort: 3000}}}},
					Containers: []corev1.Container{
						{Ports: []corev1.ContainerPort{{ContainerPort: 5678}, {Name: "no-proto", ContainerPort: 1234}}},
						{Ports: []corev1.ContainerPort{
							{Name: "tcp-proto", Protocol: corev1.ProtocolTCP, ContainerPort: 1024},
							{Name: "tcp-proto-with-host-port", Protocol: corev1.ProtocolTCP, ContainerPort: 8080, HostPort: 5678},
							{Name: "tcp-proto-with-host-port-and-ip", Protocol: corev1.ProtocolTCP, ContainerPort: 8081, HostPort: 6789, HostIP: "1.2.3.4"},
							{Protocol: corev1.ProtocolTCP, ContainerPort: 500, HostPort: 5000},
							{Name: "udp-proto", Protocol: corev1.ProtocolUDP, ContainerPort: 432},
							{Name: "sctp-proto", Protocol: corev1.ProtocolSCTP, ContainerPort: 891},
							{Name: "unkn-proto", Protocol: corev1.Protocol("unknown"), ContainerPort: 567},
						}},
					},
				},
				Status: corev1.PodStatus{PodIP: "192.168.0.1"},
			},
			want: kubeconv.Endpoint{
				Labels: kv("labelA", "valueA", "labelB", "valueB",
					"projectcalico.org/namespace", "default", "projectcalico.org/orchestrator", "k8s"),
				Profiles: []string{"kns.default"},
				Ports: []v3.WorkloadEndpointPort{
					wepPort("no-proto", "TCP", 1234, 0, ""),
					wepPort("tcp-proto", "TCP", 1024, 0, ""),
					wepPort("tcp-proto-with-host-port", "TCP", 8080, 5678, ""),
					wepPort("tcp-proto-with-host-port-and-ip", "TCP", 8081, 6789, "1.2.3.4"),
					wepPort("", "TCP", 500, 5000, ""),
					wepPort("udp-proto", "UDP", 432, 0, ""),
					wepPort("sctp-proto", "SCTP", 891, 0, ""),
					wepPort("init-port", "TCP", 3000, 0, ""),
				},
			},
		},
		{
			name: "should parse a Pod with no labels",
			pod:  corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "podB", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "nodeA"}},
			want: kubeconv.Endpoint{
				Labels:   kv("projectcalico.org/namespace", "default", "projectcalico.org/orchestrator", "k8s"),
				Profiles: []string{"kns.default"},
			},
		},
		{
			name: "should parse a Pod with serviceaccount",
			pod: corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "podA", Namespace: "default", Labels: kv("labelA", "valueA", "labelB", "valueB")},
				Spec:       corev1.PodSpec{NodeName: "nodeA", ServiceAccountName: "sa-test", Containers: saPorts},
			},
			want: kubeconv.Endpoint{
				Labels: kv("labelA", "valueA", "labelB", "valueB", "projectcalico.org/namespace", "default",
					"projectcalico.org/orchestrator", "k8s", "projectcalico.org/serviceaccount", "sa-test"),
				Profiles:       []string{"kns.default", "ksa.default.sa-test"},
				Ports:          saWantPorts,
				ServiceAccount: "sa-test",
			},
		},
		{
			name: "should parse a Pod with long serviceaccount",
			pod: corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "podA", Namespace: "default", Labels: kv("labelA", "valueA", "labelB", "valueB")},
				Spec:       corev1.PodSpec{NodeName: "nodeA", ServiceAccountName: longSA, Containers: saPorts},
			},
			want: kubeconv.Endpoint{
				Labels: kv("labelA", "valueA", "labelB", "valueB",
					"projectcalico.org/namespace", "default", "projectcalico.org/orchestrator", "k8s"),
				Profiles:       []string{"kns.default", "ksa.default." + longSA},
				Ports:          saWantPorts,
				ServiceAccount: longSA,
			},
		},
		{
			name: "should parse a Pod with GenerateName set in metadata",
			pod:  corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "podA", Namespace: "default", GenerateName: "generatedname"}},
			want: kubeconv.Endpoint{
				Labels:       kv("projectcalico.org/namespace", "default", "projectcalico.org/orchestrator", "k8s"),
				Profiles:     []string{"kns.default"},
				GenerateName: "generatedname",
			},
		},
		{
			name: "service account of 62 characters keeps its label; our own labels win",
			pod: corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: kv("projectcalico.org/namespace", "spoofed")},
				Spec:       corev1.PodSpec{ServiceAccountName: strings.Repeat("s", 62)},
			},
			want: kubeconv.Endpoint{
				Labels: kv("projectcalico.org/namespace", "ns", "projectcalico.org/orchestrator", "k8s",
					"projectcalico.org/serviceaccount", strings.Repeat("s", 62)),
				Profiles:       []string{"kns.ns", "ksa.ns." + strings.Repeat("s", 62)},
				ServiceAccount: strings.Repeat("s", 62),
			},
		},
		{
			name: "service account of 63 characters has no label",
			pod: corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
				Spec:       corev1.PodSpec{ServiceAccountName: strings.Repeat("s", 63)},
			},
			want: kubeconv.Endpoint{
				Labels:         kv("projectcalico.org/namespace", "ns", "projectcalico.org/orchestrator", "k8s"),
				Profiles:       []string{"kns.ns", "ksa.ns." + strings.Repeat("s", 63)},
				ServiceAccount: strings.Repeat("s", 63),
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := jsonString(c.pod)
			got, err := kubeconv.PodEndpoint(&c.pod)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "endpoint", got, c.want)
			equal(t, "EndpointLabels", kubeconv.EndpointLabels(&c.pod), c.want.Labels)
			if jsonString(c.pod) != before {
				t.Error("pod modified")
			}
			if !c.invalid {
				validEndpoint(t, &c.pod, got)
			}
		})
	}
}

// Port numbers Calico would truncate are errors.
func TestPodEndpointBadPorts(t *testing.T) {
	for _, c := range []struct {
		name string
		port corev1.ContainerPort
		want string
	}{
		{"container port too big", corev1.ContainerPort{Name: "p", ContainerPort: 70000}, "containerPort 70000"},
		{"negative container port", corev1.ContainerPort{Name: "p", ContainerPort: -1}, "containerPort -1"},
		{"host port too big", corev1.ContainerPort{ContainerPort: 80, HostPort: 65536}, "hostPort 65536"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
				Spec:       corev1.PodSpec{InitContainers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{c.port}}}},
			}
			_, err := kubeconv.PodEndpoint(pod)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "ns/p") {
				t.Errorf("error %v, want one naming ns/p and %q", err, c.want)
			}
		})
	}
	// Ports Calico skips are skipped, whatever their values.
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
		{Name: "x", ContainerPort: 70000, Protocol: "ICMP"},
		{ContainerPort: 70000},
		{Name: "Bad_Name", ContainerPort: 0},
	}}}}}
	if e, err := kubeconv.PodEndpoint(pod); err != nil || e.Ports != nil {
		t.Errorf("got %v, %v; want no ports and no error", e.Ports, err)
	}
	if _, err := kubeconv.PodEndpoint(nil); err == nil {
		t.Error("nil pod: want an error")
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestFloatingIPs(t *testing.T) {
	for _, c := range []struct {
		name       string
		annotation string
		pod        []netip.Addr
		want       []v3.IPNAT
	}{
		{"should look in the calico annotation for a floating IP", `["1.1.1.1"]`, addrs("192.168.0.1"),
			[]v3.IPNAT{{InternalIP: "192.168.0.1", ExternalIP: "1.1.1.1"}}},
		{"should find the right address family target for dual stack floating IPs", `["1.1.1.1","fd80:100:100::10"]`,
			addrs("192.168.0.1", "fd5f:8067::1"),
			[]v3.IPNAT{{InternalIP: "192.168.0.1", ExternalIP: "1.1.1.1"}, {InternalIP: "fd5f:8067::1", ExternalIP: "fd80:100:100::10"}}},
		{"a family the pod has no address of is skipped", `["1.1.1.1","fd80::10","2.2.2.2"]`, addrs("10.0.0.5"),
			[]v3.IPNAT{{InternalIP: "10.0.0.5", ExternalIP: "1.1.1.1"}, {InternalIP: "10.0.0.5", ExternalIP: "2.2.2.2"}}},
		{"IPv6 only", `["1.1.1.1","fd80::10"]`, addrs("fd00::5"), []v3.IPNAT{{InternalIP: "fd00::5", ExternalIP: "fd80::10"}}},
		{"the last address of a family wins", `["1.1.1.1"]`, addrs("10.0.0.1", "10.0.0.2"),
			[]v3.IPNAT{{InternalIP: "10.0.0.2", ExternalIP: "1.1.1.1"}}},
		{"an IPv4-mapped pod address is IPv4", `["1.1.1.1"]`, addrs("::ffff:10.0.0.1"),
			[]v3.IPNAT{{InternalIP: "10.0.0.1", ExternalIP: "1.1.1.1"}}},
		{"no pod addresses", `["1.1.1.1"]`, nil, nil},
		{"empty annotation", "", addrs("10.0.0.1"), nil},
		{"empty list", `[]`, addrs("10.0.0.1"), nil},
		{"null", `null`, addrs("10.0.0.1"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := kubeconv.FloatingIPs(c.annotation, c.pod)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "NATs", got, c.want)
			if len(got) == 0 {
				return
			}
			w := v3.NewWorkloadEndpoint()
			w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: "n", Pod: "p", Endpoint: "eth0", InterfaceName: "cali1", IPNATs: got}
			for _, a := range c.pod {
				w.Spec.IPNetworks = append(w.Spec.IPNetworks, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()).String())
			}
			w.Default()
			if err := w.Validate(); err != nil {
				t.Errorf("endpoint with these NATs fails Validate: %v", err)
			}
		})
	}
}

func TestFloatingIPsErrors(t *testing.T) {
	for _, a := range []string{`not json`, `"1.1.1.1"`, `[1]`, `["1.1.1.1", "bogus"]`, `["10.0.0.0/8"]`, `["fe80::1%eth0"]`, `[""]`} {
		_, err := kubeconv.FloatingIPs(a, addrs("10.0.0.1"))
		if err == nil {
			t.Errorf("%s: want an error", a)
			continue
		}
		if !strings.Contains(err.Error(), kubeconv.AnnotationFloatingIPs) || !strings.Contains(err.Error(), strconv.Quote(a)) {
			t.Errorf("%s: error %q should name the annotation and its value", a, err)
		}
	}
}

// TestCalicoAllowedSourcePrefixes reproduces Calico's source spoofing
// annotation cases of "Test Pod conversion".
func TestCalicoAllowedSourcePrefixes(t *testing.T) {
	for _, c := range []struct {
		name, annotation string
		want             []string
		err              bool
	}{
		{"should look at the source spoofing disabling annotation", `["8.8.8.8/32","1.1.1.0/24"]`, []string{"8.8.8.8/32", "1.1.1.0/24"}, false},
		{"should error on empty string in the source spoofing disabling annotation", `[""]`, nil, true},
		{"should error on invalid CIDR in the source spoofing disabling annotation", `["gumbo"]`, nil, true},
		{"should normalize CIDRs in the source spoofing disabling annotation", `["1.1.1.1/16"]`, []string{"1.1.0.0/16"}, false},
		{"no annotation", "", nil, false},
		{"not JSON", "8.8.8.8/32", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := kubeconv.AllowedSourcePrefixes(c.annotation)
			if (err != nil) != c.err {
				t.Fatalf("error %v, want error %v", err, c.err)
			}
			if err != nil && !strings.Contains(err.Error(), kubeconv.AnnotationAllowedSourcePrefixes) {
				t.Errorf("error %q should name the annotation", err)
			}
			equal(t, "prefixes", got, c.want)
		})
	}
}
