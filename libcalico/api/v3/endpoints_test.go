package v3

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestWorkloadEndpointName(t *testing.T) {
	for _, tc := range []struct{ node, orch, wl, ep, want string }{
		{"node1", "k8s", "mypod", "eth0", "node1-k8s-mypod-eth0"},
		{"node-1", "k8s", "my-pod-x", "eth0", "node--1-k8s-my--pod--x-eth0"},
		{"n", "cni", "abc-123", "eth-0", "n-cni-abc--123-eth--0"},
		{"n", "", "", "", "n---"},
	} {
		if got := WorkloadEndpointName(tc.node, tc.orch, tc.wl, tc.ep); got != tc.want {
			t.Errorf("WorkloadEndpointName(%q, %q, %q, %q) = %q, want %q", tc.node, tc.orch, tc.wl, tc.ep, got, tc.want)
		}
	}
	// The orchestrator decides which identifier is the third part.
	for _, tc := range []struct{ spec, want string }{
		{`{"node":"n","orchestrator":"k8s","pod":"p","containerID":"c","workload":"w","endpoint":"e"}`, "n-k8s-p-e"},
		{`{"node":"n","orchestrator":"cni","pod":"p","containerID":"c-1","workload":"w","endpoint":"e"}`, "n-cni-c--1-e"},
		{`{"node":"n","orchestrator":"libnetwork","pod":"p","containerID":"c","workload":"w","endpoint":"e"}`, "n-libnetwork-libnetwork-e"},
		{`{"node":"n","orchestrator":"openstack","pod":"p","containerID":"c","workload":"w","endpoint":"e"}`, "n-openstack-w-e"},
	} {
		w := &WorkloadEndpoint{}
		polFromJSON(t, w, `{"spec":`+tc.spec+`}`)
		if got, err := w.ExpectedName(); err != nil || got != tc.want || w.Name != tc.want {
			t.Errorf("%s: ExpectedName = %q, %v; defaulted name %q; want %q", tc.spec, got, err, w.Name, tc.want)
		}
	}
	w := NewWorkloadEndpoint()
	w.Spec = WorkloadEndpointSpec{Node: "n", Orchestrator: "k8s", Endpoint: "-eth0"}
	_, err := w.ExpectedName()
	polWantErr(t, err, "WorkloadEndpoint.Spec.Pod", "", "field should be assigned")
	polWantErr(t, err, "WorkloadEndpoint.Spec.Endpoint", "-eth0", "field must not begin with a '-'")
}

func TestWorkloadEndpointDefaults(t *testing.T) {
	w := &WorkloadEndpoint{}
	polFromJSON(t, w, `{"metadata":{"labels":{"role":"db","projectcalico.org/namespace":"spoof"}},"spec":{"orchestrator":"k8s","node":"node1","pod":"mypod","endpoint":"eth0","interfaceName":"cali0"}}`)
	if w.Namespace != "default" || w.Name != "node1-k8s-mypod-eth0" {
		t.Errorf("namespace %q name %q", w.Namespace, w.Name)
	}
	want := map[string]string{"role": "db", LabelNamespace: "default", LabelOrchestrator: "k8s"}
	for k, v := range want {
		if w.Labels[k] != v {
			t.Errorf("labels %v, want %v", w.Labels, want)
		}
	}
	if err := w.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

const epWEP = `{"metadata":{"name":"node1-k8s-mypod-eth0","namespace":"production"},"spec":{"orchestrator":"k8s","node":"node1","containerID":"1234abcd","pod":"mypod","endpoint":"eth0","ipNetworks":["10.10.1.5/32","fd00::5"],"profiles":["prof1"],"interfaceName":"cali0123456789","mac":"ee:ee:ee:ee:ee:ee"}}`

// epWEPWith returns epWEP with its spec fields overridden by patch.
func epWEPWith(t *testing.T, patch string) *WorkloadEndpoint {
	t.Helper()
	w := &WorkloadEndpoint{}
	polFromJSON(t, w, epWEP)
	if err := json.Unmarshal([]byte(patch), &w.Spec); err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	return w
}

func TestWorkloadEndpointValidation(t *testing.T) {
	const s = "WorkloadEndpoint.Spec"
	for _, tc := range []struct {
		name, patch, field, value, reason string
	}{
		{"valid", `{}`, "", "", ""},
		{"valid ports", `{"ports":[{"name":"http","protocol":"TCP","port":80},{"name":"","protocol":"UDP","port":53,"hostPort":5353,"hostIP":"10.0.0.1"}]}`, "", "", ""},
		{"valid nat and gateways", `{"ipNATs":[{"internalIP":"10.10.1.5","externalIP":"172.16.0.1"}],"ipv4Gateway":"169.254.1.1","ipv6Gateway":"fe80::1","qosControls":{"ingressBandwidth":1000000,"dscp":"AF11"},"allowSpoofedSourcePrefixes":["10.0.0.1","192.168.0.0/16"]}`, "", "", ""},
		{"name mismatch", `{"pod":"otherpod"}`, "Metadata.Name", "node1-k8s-mypod-eth0", "expected name node1-k8s-otherpod-eth0"},
		{"missing endpoint", `{"endpoint":""}`, s + ".Endpoint", "", "field should be assigned"},
		{"bad ip", `{"ipNetworks":["10.0.0.999/32"]}`, s + ".IPNetworks[0]", "10.0.0.999/32", "invalid CIDR"},
		{"garbage ip", `{"ipNetworks":["garbage"]}`, s + ".IPNetworks[0]", "garbage", "invalid CIDR"},
		{"empty ip", `{"ipNetworks":[""]}`, s + ".IPNetworks[0]", "", "invalid CIDR"},
		{"multiple addresses", `{"ipNetworks":["10.10.1.0/24"]}`, s + ".IPNetworks[0]", "10.10.1.0/24", "IP network contains multiple addresses"},
		{"zone", `{"ipNetworks":["fe80::1%eth0"]}`, s + ".IPNetworks[0]", "fe80::1%eth0", "invalid CIDR"},
		{"mac", `{"mac":"ee:ee:ee"}`, s + ".MAC", "ee:ee:ee", "invalid MAC address"},
		{"interface", `{"interfaceName":"cali0123456789abc"}`, s + ".InterfaceName", "cali0123456789abc", "invalid interface name"},
		{"no interface", `{"interfaceName":""}`, s + ".InterfaceName", "", "interface name must be specified"},
		{"nat ip", `{"ipNATs":[{"internalIP":"10.10.1.5","externalIP":"nope"}]}`, s + ".IPNATs[0].ExternalIP", "nope", "invalid IP address"},
		{"nat family", `{"ipNATs":[{"internalIP":"10.10.1.5","externalIP":"fd00::9"}]}`, s + ".IPNATs[0].ExternalIP", "fd00::9", "mismatched IP versions"},
		{"nat outside", `{"ipNATs":[{"internalIP":"10.10.1.6","externalIP":"1.2.3.4"}]}`, s + ".IPNATs[0].InternalIP", "10.10.1.6", "NAT is not in the endpoint networks"},
		{"v4 gateway", `{"ipv4Gateway":"fe80::1"}`, s + ".IPv4Gateway", "fe80::1", "invalid IPv4 gateway address specified"},
		{"v6 gateway", `{"ipv6Gateway":"1.2.3.4"}`, s + ".IPv6Gateway", "1.2.3.4", "invalid IPv6 gateway address specified"},
		{"profile", `{"profiles":["Bad"]}`, s + ".Profiles[0]", "Bad", ""},
		{"container id", `{"containerID":"abc.def"}`, s + ".ContainerID", "abc.def", "invalid container ID"},
		{"sa name", `{"serviceAccountName":"SA"}`, s + ".ServiceAccountName", "SA", ""},
		{"port protocol", `{"ports":[{"name":"ping","protocol":"ICMP","port":1}]}`, s + ".Ports[0].Protocol", "ICMP", "WorkloadEndpointPort protocol does not support ports."},
		{"port number", `{"ports":[{"name":"http","protocol":"TCP","port":0}]}`, s + ".Ports[0].Port", "0", "port must be between 1 and 65535"},
		{"port name", `{"ports":[{"name":"","protocol":"TCP","port":80}]}`, s + ".Ports[0].Name", "", "WorkloadEndpointPort name must not be empty if no HostPort is specified"},
		{"port host ip", `{"ports":[{"name":"a","protocol":"TCP","port":80,"hostPort":80,"hostIP":"999.1.1.1"}]}`, s + ".Ports[0].HostIP", "999.1.1.1", "invalid IP address"},
		{"spoof prefix", `{"allowSpoofedSourcePrefixes":["10.abcd"]}`, s + ".AllowSpoofedSourcePrefixes[0]", "10.abcd", "invalid CIDR"},
		{"dscp", `{"qosControls":{"dscp":64}}`, s + ".QoSControls.DSCP", "64", "DSCP must be between 0 and 63"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := epWEPWith(t, tc.patch).Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			polWantErr(t, err, tc.field, tc.value, tc.reason)
		})
	}
}

func TestHostEndpointValidation(t *testing.T) {
	const s = "HostEndpoint.Spec"
	for _, tc := range []struct {
		name, spec, field, value, reason string
	}{
		{"valid", `{"node":"node1","interfaceName":"eth0","expectedIPs":["192.168.1.10","fd00::1"],"profiles":["prof1"],"ports":[{"name":"ssh","protocol":"TCP","port":22}]}`, "", "", ""},
		{"all interfaces", `{"node":"node1","interfaceName":"*"}`, "", "", ""},
		{"ips only", `{"node":"node1","expectedIPs":["10.0.0.1"]}`, "", "", ""},
		{"no node", `{"interfaceName":"eth0"}`, s + ".Node", "", "no node has been specified"},
		{"bad node", `{"node":"Node_1","interfaceName":"eth0"}`, s + ".Node", "Node_1", ""},
		{"nothing", `{"node":"n"}`, s + ".InterfaceName", "", "no interface or expected IPs have been specified"},
		{"bad interface", `{"node":"n","interfaceName":"eth 0"}`, s + ".InterfaceName", "eth 0", "invalid interface name"},
		{"bad ip", `{"node":"n","expectedIPs":["10.0.0.0/24"]}`, s + ".ExpectedIPs[0]", "10.0.0.0/24", "invalid IP address"},
		{"port name", `{"node":"n","interfaceName":"eth0","ports":[{"name":"","protocol":"TCP","port":22}]}`, s + ".Ports[0].Name", "", "invalid port name"},
		{"port protocol", `{"node":"n","interfaceName":"eth0","ports":[{"name":"x","protocol":"UDPLite","port":22}]}`, s + ".Ports[0].Protocol", "UDPLite", "EndpointPort protocol does not support ports."},
		{"port unknown protocol", `{"node":"n","interfaceName":"eth0","ports":[{"name":"x","protocol":"tcp","port":22}]}`, s + ".Ports[0].Protocol", "tcp", "protocol name invalid"},
		{"port zero", `{"node":"n","interfaceName":"eth0","ports":[{"name":"x","protocol":6,"port":0}]}`, s + ".Ports[0].Port", "0", "port must be between 1 and 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &HostEndpoint{}
			polFromJSON(t, h, `{"metadata":{"name":"hep"},"spec":`+tc.spec+`}`)
			err := h.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			polWantErr(t, err, tc.field, tc.value, tc.reason)
		})
	}
	var h HostEndpoint
	if err := json.Unmarshal([]byte(`{"spec":{"ports":[{"name":"x","protocol":"TCP","port":70000}]}}`), &h); err == nil {
		t.Error("port 70000 decoded without error")
	}
}

func TestNetworkSetValidation(t *testing.T) {
	ns := &NetworkSet{}
	polFromJSON(t, ns, `{"metadata":{"name":"external-db","labels":{"role":"db"}},"spec":{"nets":["10.200.0.0/24","10.0.0.1","10.0.0.1/24","dead:beef::/96"]}}`)
	if ns.Namespace != "default" {
		t.Errorf("namespace %q", ns.Namespace)
	}
	if err := ns.Validate(); err != nil {
		t.Fatalf("valid set: %v", err)
	}
	ns.Spec.Nets = append(ns.Spec.Nets, "garbage")
	polWantErr(t, ns.Validate(), "NetworkSet.Spec.Nets[4]", "garbage", "invalid CIDR")

	g := &GlobalNetworkSet{}
	polFromJSON(t, g, `{"metadata":{"name":"blocklist","labels":{"projectcalico.org/namespace":"x"}},"spec":{"nets":["198.51.100.0/33"]}}`)
	err := g.Validate()
	polWantErr(t, err, "GlobalNetworkSet.Spec.Nets[0]", "198.51.100.0/33", "invalid CIDR")
	polWantErr(t, err, "Metadata.Labels", LabelNamespace, "projectcalico.org/namespace is not a valid label name")
	g = &GlobalNetworkSet{}
	polFromJSON(t, g, `{"metadata":{"name":"g","namespace":"x"}}`)
	polWantErr(t, g.Validate(), "Metadata.Namespace", "x", "not namespaced")
}

// Garbage in any field must give errors, never a panic.
func TestPolicyKindsGarbageDoesNotPanic(t *testing.T) {
	junk := []string{"", " ", "-", "--", "*", "💥", "\x00", "a\nb", "999.999.999.999/99", "::/129", "0:0",
		strings.Repeat("x", 300), "global()", "has(", "'", "1e400", "-1", "%", "fe80::1%eth0/64"}
	neg, big := -1, 1<<40
	for _, j := range junk {
		ports := []Port{NamedPort(j), {MinPort: 65535, MaxPort: 0}}
		proto := &Protocol{Type: NumOrStringString, StrVal: j}
		rule := Rule{Action: Action(j), IPVersion: &big, Protocol: proto, NotProtocol: proto,
			ICMP: &ICMPFields{Type: &neg, Code: &big}, NotICMP: &ICMPFields{Code: &neg},
			Source:      EntityRule{Nets: []string{j}, NotNets: []string{j}, Selector: j, NamespaceSelector: j, Ports: ports, Services: &ServiceMatch{Name: j, Namespace: j}},
			Destination: EntityRule{NotSelector: j, NotPorts: ports, ServiceAccounts: &ServiceAccountMatch{Selector: j, Names: []string{j}}, Services: &ServiceMatch{}},
			HTTP:        &HTTPMatch{Methods: []string{j, j}, Paths: []HTTPPath{{Exact: j}, {}}},
			Metadata:    &RuleMetadata{Annotations: map[string]string{j: j}}}
		meta := ObjectMeta{Name: j, Namespace: j, Labels: map[string]string{j: j}, Annotations: map[string]string{j: j}}
		ht := &Tier{ObjectMeta: meta}
		ht.Spec.DefaultAction = (*Action)(&j)
		for _, r := range []Resource{
			&NetworkPolicy{ObjectMeta: meta, Spec: NetworkPolicySpec{Tier: j, Selector: j, ServiceAccountSelector: j, Types: []PolicyType{PolicyType(j)}, Ingress: []Rule{rule}, Egress: []Rule{rule}, PerformanceHints: []PolicyPerformanceHint{PolicyPerformanceHint(j)}}},
			&GlobalNetworkPolicy{ObjectMeta: meta, Spec: GlobalNetworkPolicySpec{Tier: j, NamespaceSelector: j, PreDNAT: true, DoNotTrack: true, Ingress: []Rule{rule, {}}, Egress: []Rule{rule}}},
			ht, &Tier{}, &NetworkPolicy{}, &GlobalNetworkPolicy{},
			&Profile{ObjectMeta: meta, Spec: ProfileSpec{Ingress: []Rule{rule}, LabelsToApply: map[string]string{j: j}}},
			&NetworkSet{ObjectMeta: meta, Spec: NetworkSetSpec{Nets: []string{j}}},
			&GlobalNetworkSet{ObjectMeta: meta, Spec: GlobalNetworkSetSpec{Nets: []string{j, ""}}},
			&WorkloadEndpoint{ObjectMeta: meta, Spec: WorkloadEndpointSpec{Orchestrator: j, Node: j, Pod: j, Workload: j, ContainerID: j, Endpoint: j,
				ServiceAccountName: j, IPNetworks: []string{j}, IPNATs: []IPNAT{{InternalIP: j, ExternalIP: j}}, IPv4Gateway: j, IPv6Gateway: j,
				Profiles: []string{j}, InterfaceName: j, MAC: j, AllowSpoofedSourcePrefixes: []string{j},
				Ports:       []WorkloadEndpointPort{{Name: j, Protocol: *proto, HostIP: j}},
				QoSControls: &QoSControls{IngressBandwidth: -1, DSCP: &DSCP{Type: NumOrStringString, StrVal: j}}}},
			&WorkloadEndpoint{}, &HostEndpoint{},
			&HostEndpoint{ObjectMeta: meta, Spec: HostEndpointSpec{Node: j, InterfaceName: j, ExpectedIPs: []string{j}, Profiles: []string{j}, Ports: []EndpointPort{{Name: j, Protocol: *proto}}}},
		} {
			if err := r.Validate(); err == nil && j != "" {
				t.Errorf("%T with %q validated", r, j)
			}
			r.Default()
			_ = r.Validate()
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("%T with %q: encoding: %v", r, j, err)
			}
		}
	}
}

// FuzzPolicyKindsJSON decodes arbitrary JSON into every kind, defaults and
// validates it; none of that may panic.
func FuzzPolicyKindsJSON(f *testing.F) {
	f.Add([]byte(`{"spec":{"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[80,"1:2","x"]}}]}}`))
	f.Add([]byte(`{"metadata":{"name":"n-k8s-p-e"},"spec":{"node":"n","orchestrator":"k8s","pod":"p","endpoint":"e","ipNetworks":["x"],"ipNATs":[{"internalIP":"1.1.1.1","externalIP":"::1"}]}}`))
	f.Add([]byte(`{"spec":{"icmp":{"type":-5},"nets":["::/0"],"expectedIPs":[""],"order":1e308,"defaultAction":"Pass"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mk := range polFixtureKinds {
			r := mk()
			if json.Unmarshal(data, r) != nil {
				continue
			}
			_ = r.Validate()
			r.Default()
			_ = r.Validate()
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("%T: encoding after decode: %v", r, err)
			}
		}
	})
}
