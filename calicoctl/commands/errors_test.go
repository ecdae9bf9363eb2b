package commands

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/testutil"
)

func poolYAML(name, cidr string) string {
	return "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: " + name + "\nspec:\n  cidr: " + cidr + "\n"
}

func gnpYAML(body string) string {
	return "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: p1\nspec:\n" + body
}

// good is a valid resource placed before a bad one, to show that a file
// with one bad resource writes nothing.
var good = poolYAML("good", "10.99.0.0/16") + "---\n"

// TestErrorPaths runs each error path of the issue: exit 1, a message
// naming the field and value, and nothing written.
func TestErrorPaths(t *testing.T) {
	const stalePool = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: base\n  resourceVersion: \"2\"\nspec:\n  cidr: 10.10.0.0/16\n  natOutgoing: true\n"
	for _, tc := range []struct {
		name  string
		file  string // written to a temp file and passed as -f for args "-f"
		args  []string
		stdin string
		want  []string
	}{
		{"bad CIDR", good + poolYAML("p", "10.300.0.0/16"), []string{"create"},
			"", []string{"Failed to create any 'IPPool' resources:", "IPPool(p): error with field IPPool.Spec.CIDR = '10.300.0.0/16'", "must be a valid subnet"}},
		{"overlapping pool", poolYAML("p", "10.10.5.0/24"), []string{"apply"},
			"", []string{"Failed to apply 'IPPool' resource:", "IPPool.Spec.CIDR = '10.10.5.0/24'", "overlaps with IPPool(base)"}},
		{"overlapping pools in one file", poolYAML("a", "10.20.0.0/16") + "---\n" + poolYAML("b", "10.20.1.0/24"), []string{"create"},
			"", []string{"IPPool.Spec.CIDR = '10.20.1.0/24'", "IPPool(b) CIDR overlaps with IPPool(a)"}},
		{"bad selector", good + gnpYAML("  selector: role == \n"), []string{"apply"},
			"", []string{"Failed to apply any resources:", "GlobalNetworkPolicy.Spec.Selector = 'role =='", "invalid selector"}},
		{"unknown kind", good + "apiVersion: projectcalico.org/v3\nkind: Foo\nmetadata:\n  name: x\n", []string{"create"},
			"", []string{"Failed to execute command:", `unknown kind "Foo"`}},
		{"unknown apiVersion", "apiVersion: projectcalico.org/v2\nkind: IPPool\nmetadata:\n  name: x\n", []string{"apply"},
			"", []string{`unsupported apiVersion "projectcalico.org/v2"`}},
		{"unknown field", good + poolYAML("p", "10.30.0.0/16") + "  cidrr: 1\n", []string{"apply"},
			"", []string{`IPPool "p"`, `unknown field "cidrr"`}},
		{"bad name", poolYAML("Bad_Name", "10.30.0.0/16"), []string{"create"},
			"", []string{"Metadata.Name = 'Bad_Name'", "lower case alphanumeric"}},
		{"bad action", gnpYAML("  ingress:\n  - action: Accept\n"), []string{"create"},
			"", []string{"GlobalNetworkPolicy.Spec.Ingress[0].Action = 'Accept'", "must be one of Allow, Deny, Log, Pass"}},
		{"port out of range", gnpYAML("  ingress:\n  - action: Allow\n    protocol: TCP\n    destination:\n      ports: [70000]\n"), []string{"create"},
			"", []string{`GlobalNetworkPolicy "p1"`, "invalid port 70000"}},
		{"port range out of range", gnpYAML("  ingress:\n  - action: Allow\n    protocol: TCP\n    destination:\n      ports: [\"80:70000\"]\n"), []string{"create"},
			"", []string{`GlobalNetworkPolicy "p1"`, "80:70000"}},
		{"ports without protocol", gnpYAML("  ingress:\n  - action: Allow\n    destination:\n      ports: [80]\n"), []string{"create"},
			"", []string{"GlobalNetworkPolicy.Spec.Ingress[0].Destination.Ports = '[80]'", "must set protocol"}},
		{"malformed YAML", good + "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: [\n", []string{"apply"},
			"", []string{"Failed to execute command:", "document 2", "yaml: line"}},
		{"empty file", "", []string{"apply"}, "", []string{"No resources specified in file"}},
		{"empty stdin", "", []string{"apply", "-f", "-"}, "\n---\n", []string{"No resources specified in file stdin"}},
		{"missing file", "", []string{"create", "-f", "/nonexistent/calico.yaml"}, "", []string{"Failed to execute command:", "/nonexistent/calico.yaml", "no such file or directory"}},
		{"create existing", good + poolYAML("base", "10.10.0.0/16"), []string{"create"},
			"", []string{"Failed to create any 'IPPool' resources:", "resource already exists: IPPool(base)"}},
		{"replace missing", poolYAML("base", "10.10.0.0/16") + "---\n" + poolYAML("nope", "10.50.0.0/16"), []string{"replace"},
			"", []string{"Failed to replace any 'IPPool' resources:", "resource does not exist: IPPool(nope)"}},
		{"stale resourceVersion (replace)", stalePool, []string{"replace"},
			"", []string{"Failed to replace 'IPPool' resource:", "update conflict: IPPool(base)", "resourceVersion '2' is out of date"}},
		{"stale resourceVersion (apply)", stalePool, []string{"apply"},
			"", []string{"Failed to apply 'IPPool' resource:", "update conflict: IPPool(base)", "resourceVersion 2 is stale"}},
		{"delete missing", "", []string{"delete", "ippool", "nope"}, "", []string{"Failed to delete 'IPPool' resource: resource does not exist: IPPool(nope)"}},
		{"delete missing from file", poolYAML("nope", "10.50.0.0/16"), []string{"delete"}, "", []string{"resource does not exist: IPPool(nope)"}},
		{"delete tier default", "", []string{"delete", "tier", "default"}, "", []string{"Metadata.Name = 'default'", "Tier default is built in"}},
		{"delete profile projectcalico-default-allow", "", []string{"delete", "profile", "projectcalico-default-allow"},
			"", []string{"Metadata.Name = 'projectcalico-default-allow'", "is built in"}},
		{"apply profile projectcalico-default-allow", "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: projectcalico-default-allow\n", []string{"apply"},
			"", []string{"Metadata.Name = 'projectcalico-default-allow'", "is built in"}},
		{"apply ClusterInformation", "apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata:\n  name: default\n", []string{"apply"},
			"", []string{"operation apply is not supported on ClusterInformation"}},
		{"policy in missing tier", gnpYAML("  tier: nosuch\n"), []string{"apply"},
			"", []string{"Spec.Tier = 'nosuch'", "tier does not exist"}},
		{"namespace on a cluster kind", poolYAML("p", "10.40.0.0/16"), []string{"apply", "-n", "prod"},
			"", []string{"IPPool is not namespaced"}},
		{"unknown kind argument", "", []string{"get", "pods"}, "", []string{"resource type 'pods' is not supported"}},
		{"bad get selector", "", []string{"get", "pools", "--selector", "a =="}, "", []string{"Invalid selector", `"a =="`}},
		{"bad output format", "", []string{"get", "pools", "-o", "xml"}, "", []string{"unrecognized output format 'xml'"}},
		{"unknown flag", "", []string{"get", "pools", "--bogus"}, "", []string{"Invalid option", "unknown flag: --bogus"}},
		{"get one namespaced resource with -A", "", []string{"get", "policy", "p", "-A"}, "", []string{"cannot use --all-namespaces flag for getting a single resource"}},
		{"get missing", "", []string{"get", "pool", "base", "nope"}, "", []string{"resource does not exist: IPPool(nope)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fresh(t)
			c.mustRun("create", "-f", writeFile(t, "base.yaml", poolYAML("base", "10.10.0.0/16")))
			c.mustRun("apply", "-f", writeFile(t, "base2.yaml", poolYAML("base", "10.10.0.0/16")+"  natOutgoing: false\n"))
			before := dump(t)
			args := tc.args
			if len(args) == 1 || (len(args) == 3 && args[1] == "-n") {
				args = append([]string{args[0], "-f", writeFile(t, "in.yaml", tc.file)}, args[1:]...)
			}
			c.stdin = tc.stdin
			r := c.run(args...)
			if r.code != 1 {
				t.Fatalf("want exit 1:\n%s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r)
				}
			}
			if strings.Contains(r.stdout, "Successfully") || strings.Contains(r.stdout, "Partial") {
				t.Errorf("stdout claims success:\n%s", r)
			}
			if after := dump(t); !maps.Equal(before, after) {
				t.Errorf("the datastore changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestEtcdUnreachable fails within the --timeout bound, naming the endpoint.
func TestEtcdUnreachable(t *testing.T) {
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := newCLI(t)
	c.env["ETCD_ENDPOINTS"] = ep
	f := writeFile(t, "p.yaml", poolYAML("p", "10.60.0.0/16"))
	for _, args := range [][]string{
		{"get", "ippools"}, {"create", "-f", f}, {"apply", "-f", f}, {"delete", "ippool", "p"},
		{"version"}, {"patch", "ippool", "p", "-p", `{"spec":{}}`}, {"label", "ippool", "p", "a=b"},
		{"config", "get", "asNumber"},
	} {
		start := time.Now()
		r := c.run(append(args, "--timeout", "500ms")...)
		took := time.Since(start)
		if r.code != 1 || !strings.Contains(r.stderr, ep) || !strings.Contains(r.stderr, "datastore unavailable") {
			t.Errorf("%v: want exit 1 naming %s:\n%s", args, ep, r)
		}
		if took > 3*time.Second {
			t.Errorf("%v took %v with --timeout 500ms", args, took)
		}
	}
}

// TestBadConfig reports a broken config file or environment.
func TestBadConfig(t *testing.T) {
	c := newCLI(t)
	r := c.run("get", "pools", "-c", "/nonexistent/calicoctl.cfg")
	if r.code != 1 || !strings.Contains(r.stderr, "Failed to create Calico API client") {
		t.Fatal(r)
	}
	c.env["DATASTORE_TYPE"] = "kubernetes"
	if r := c.run("get", "pools"); r.code != 1 || !strings.Contains(r.stderr, "not supported") {
		t.Fatal(r)
	}
	cfg := writeFile(t, "c.cfg", "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: "+etcdServer.Endpoint+"\n")
	delete(c.env, "DATASTORE_TYPE")
	c.env["ETCD_ENDPOINTS"] = "http://127.0.0.1:1"
	if r := c.run("get", "pools", "-c", cfg); r.code != 0 {
		t.Fatalf("the config file must win over the environment:\n%s", r)
	}
}
