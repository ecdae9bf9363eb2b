package commands

import (
	"strings"
	"testing"
)

// TestConfigUnset returns a node's setting to the cluster's and the
// cluster's to the default, as the original calicoctl did.
func TestConfigUnset(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "n.yaml", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: node1\nspec:\n  bgp:\n    ipv4Address: 10.0.0.1/24\n"))
	s := &session{c: c}
	for _, args := range [][]string{
		{"config", "unset", "logLevel"},
		{"config", "set", "logLevel", "debug"},
		{"config", "set", "logLevel", "error", "-n", "node1"},
		{"config", "get", "logLevel", "--node", "node1"},
		{"config", "unset", "logLevel", "--node", "node1"},
		{"config", "get", "logLevel", "--node", "node1"},
		{"config", "unset", "logLevel"},
		{"config", "get", "logLevel"},
		{"config", "set", "asNumber", "64600"},
		{"config", "set", "asNumber", "65001", "--node", "node1"},
		{"config", "unset", "asNumber", "--node", "node1"},
		{"config", "get", "asNumber", "--node", "node1"},
		{"config", "unset", "asNumber"},
		{"config", "get", "asNumber"},
		{"config", "set", "nodeToNodeMesh", "off"},
		{"config", "unset", "nodeToNodeMesh"},
		{"config", "get", "nodeToNodeMesh"},
		{"config", "unset", "nodeToNodeMesh", "--node", "node1"},
		{"config", "unset", "asNumber", "--node", "nope"},
		{"config", "unset", "ipip"},
	} {
		s.run(args...)
	}
	golden(t, "config-unset", s.b.String())
	keys := dump(t)
	for _, k := range []string{"bgpconfigurations/default", "bgpconfigurations/node.node1", "felixconfigurations/default", "felixconfigurations/node.node1", "nodes/node1"} {
		v := keys["/calico/resources/v3/projectcalico.org/"+k]
		for _, gone := range []string{"logSeverityScreen", "asNumber", "nodeToNodeMeshEnabled"} {
			if strings.Contains(v, gone) {
				t.Errorf("%s still holds %s: %s", k, gone, v)
			}
		}
	}
}

// TestConfigRaw gets, sets and unsets any field of BGPConfiguration and
// FelixConfiguration; values are validated.
func TestConfigRaw(t *testing.T) {
	c := fresh(t)
	s := &session{c: c}
	for _, args := range [][]string{
		{"config", "get", "--raw=felix", "reportingInterval"},
		{"config", "set", "--raw=felix", "ReportingInterval", "60s"},
		{"config", "get", "--raw=felix", "reportinginterval"},
		{"config", "set", "--raw=felix", "ipv6Support", "false", "--node", "node1"},
		{"config", "get", "--raw=felix", "ipv6Support", "--node", "node1"},
		{"config", "set", "--raw=felix", "failsafeInboundHostPorts", "[{protocol: TCP, port: 22}]"},
		{"config", "get", "--raw=felix", "failsafeInboundHostPorts"},
		{"config", "set", "--raw=bgp", "listenPort", "1790"},
		{"config", "get", "--raw=bgp", "listenPort"},
		{"config", "set", "--raw=bgp", "logSeverityScreen", "Debug"},
		{"config", "unset", "--raw=bgp", "listenPort"},
		{"config", "get", "--raw=bgp", "listenPort"},
		{"config", "unset", "--raw=felix", "ipv6Support", "--node", "node1"},
		{"config", "get", "--raw=felix", "ipv6Support", "--node", "node1"},
		{"config", "set", "--raw=felix", "ipv6Support", "maybe"},
		{"config", "set", "--raw=bgp", "listenPort", "99999"},
		{"config", "set", "--raw=felix", "noSuchField", "1"},
		{"config", "set", "--raw=bird", "x", "1"},
		{"config", "set", "--raw=bgp", "logSeverityScreen", "Chatty"},
	} {
		s.run(args...)
	}
	golden(t, "config-raw", s.b.String())
	keys := dump(t)
	if v := keys["/calico/resources/v3/projectcalico.org/felixconfigurations/default"]; !strings.Contains(v, `"reportingInterval":"1m0s"`) && !strings.Contains(v, `"reportingInterval":"60s"`) {
		t.Errorf("felixconfigurations/default = %s", v)
	}
	if v := keys["/calico/resources/v3/projectcalico.org/bgpconfigurations/default"]; strings.Contains(v, "listenPort") || !strings.Contains(v, `"logSeverityScreen":"Debug"`) {
		t.Errorf("bgpconfigurations/default = %s", v)
	}
}
