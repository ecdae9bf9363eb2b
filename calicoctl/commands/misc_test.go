package commands

import (
	"os"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
)

func TestConvertGolden(t *testing.T) {
	c := newCLI(t)
	golden(t, "convert-ippool-yaml", c.mustRun("convert", "-f", "testdata/v1/ippool.yaml").stdout)
	golden(t, "convert-mixed-yaml", c.mustRun("convert", "-f", "testdata/v1/mixed.yaml").stdout)
	golden(t, "convert-mixed-json", c.mustRun("convert", "-f", "testdata/v1/mixed.yaml", "-o", "json").stdout)
	data, _ := os.ReadFile("testdata/v1/ippool.yaml")
	c.stdin = string(data)
	if r := c.mustRun("convert", "-f", "-"); r.stdout != c.mustRun("convert", "-f", "testdata/v1/ippool.yaml").stdout {
		t.Fatal("stdin and file differ")
	}
}

// TestConvertedManifestsApply feeds convert's output to apply.
func TestConvertedManifestsApply(t *testing.T) {
	c := fresh(t)
	for _, f := range []string{"ippool", "mixed"} {
		out := c.mustRun("convert", "-f", "testdata/v1/"+f+".yaml").stdout
		c.mustRun("apply", "-f", writeFile(t, f+".yaml", out))
	}
	keys := dump(t)
	for _, k := range []string{
		"ippools/10-1-0-0-16", "ippools/192-168-0-0-16", "ippools/2001-db8---64",
		"globalnetworkpolicies/default.allow-tcp-6379", "profiles/dev-profile",
		"hostendpoints/myhost.eth0", "workloadendpoints/default/rack1--host1-k8s-frontend--5gs43-eth0",
		"bgppeers/rack1-host1.192-168-1-1", "bgppeers/2001-0db8-0000-0000-0000-0000-0000-0001", "nodes/node-hostname",
	} {
		if _, ok := keys["/calico/resources/v3/projectcalico.org/"+k]; !ok {
			t.Errorf("missing %s", k)
		}
	}
}

func TestConvertErrors(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct{ in, want string }{
		{"apiVersion: v1\nkind: ipPool\nmetadata:\n  cidr: 10.0.0.0/8\nspec:\n  nat_outgoing: true\n", `unknown field "nat_outgoing"`},
		{"apiVersion: v1\nkind: ipPool\nmetadata:\n  cidr: 10.0.0.0/8\n  name: x\n", `unknown field "name"`},
		{"apiVersion: v1\nkind: ipPool\nmetadata:\n  cidr: 10.0.0.0/33\n", "error with field metadata.cidr = '10.0.0.0/33'"},
		{"apiVersion: v1\nkind: policy\nmetadata:\n  name: p\nspec:\n  selector: a ==\n", "Converted manifest resource(s) failed validation"},
		{"apiVersion: v1\nkind: tier\nmetadata:\n  name: t\n", "conversion for the resource type 'tier' is not supported"},
		{"", "No resources specified"},
	} {
		r := c.run("convert", "-f", writeFile(t, "in.yaml", tc.in))
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("want %q:\n%s", tc.want, r)
		}
	}
	if r := c.run("convert", "-f", "testdata/v1/ippool.yaml", "-o", "wide"); r.code != 1 || !strings.Contains(r.stderr, "unrecognized output format 'wide'") {
		t.Error(r)
	}
	bad := "apiVersion: v1\nkind: policy\nmetadata:\n  name: p\nspec:\n  selector: a ==\n"
	if r := c.run("convert", "-f", writeFile(t, "in.yaml", bad), "--ignore-validation"); r.code != 0 || !strings.Contains(r.stdout, "selector: a ==") {
		t.Error(r)
	}
}

func TestPatch(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "p.yaml", poolYAML("p", "10.1.0.0/16")))
	if r := c.mustRun("patch", "ippool", "p", "-p", `{"spec":{"natOutgoing":true,"ipipMode":"Always"}}`); r.stdout != "Successfully patched 1 'IPPool' resource\n" {
		t.Fatal(r)
	}
	c.mustRun("patch", "pool", "p", "--type", "merge", "-p", `{"metadata":{"labels":{"a":"b"}}}`)
	c.mustRun("patch", "pool", "p", "--type", "json", "-p", `[{"op":"replace","path":"/spec/ipipMode","value":"CrossSubnet"}]`)
	golden(t, "patch-result", normalize(c.mustRun("get", "pool", "p", "-o", "yaml").stdout))

	before := dump(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"patch", "pool", "p", "-p", `{"spec":{"cidr":"10.300.0.0/16"}}`}, "IPPool.Spec.CIDR = '10.300.0.0/16'"},
		{[]string{"patch", "pool", "p", "-p", `{"spec":{"natOutgoin":true}}`}, `unknown field "natOutgoin"`},
		{[]string{"patch", "pool", "p", "-p", `{"metadata":{"name":"q"}}`}, "may not change the name"},
		{[]string{"patch", "pool", "p", "-p", `not json`}, "must be a JSON object"},
		{[]string{"patch", "pool", "p", "--type", "json", "-p", `[{"op":"remove","path":"/spec/nope"}]`}, "applying JSON patch"},
		{[]string{"patch", "pool", "nope", "-p", `{}`}, "resource does not exist: IPPool(nope)"},
		{[]string{"patch", "pool", "p", "--type", "yaml", "-p", `{}`}, `unknown patch type "yaml"`},
		{[]string{"patch", "clusterinfo", "default", "-p", `{}`}, "not supported on ClusterInformation"},
	} {
		r := c.run(tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: want %q:\n%s", tc.args, tc.want, r)
		}
	}
	for k, v := range dump(t) {
		if before[k] != v {
			t.Errorf("failed patches changed %s", k)
		}
	}
}

func TestLabel(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", "testdata/all-kinds.yaml")
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"label", "nodes", "node1", "cluster=backend"}, 0, "Successfully set label cluster on nodes node1\n", ""},
		{[]string{"label", "nodes", "node1", "cluster=backend"}, 0, "Successfully updated label cluster on nodes node1\n", ""},
		{[]string{"label", "nodes", "node1", "cluster=frontend"}, 1, "", "key cluster is already present. please use '--overwrite'"},
		{[]string{"label", "nodes", "node1", "cluster=frontend", "--overwrite"}, 0, "Successfully updated label cluster on nodes node1\n", ""},
		{[]string{"label", "nodes", "node1", "cluster", "--remove"}, 0, "Successfully removed label cluster from nodes node1\n", ""},
		{[]string{"label", "nodes", "node1", "cluster", "--remove"}, 1, "", "cannot remove label of nodes node1, key cluster does not exist"},
		{[]string{"label", "nodes", "node9", "a=b"}, 1, "", "failed to get nodes node9"},
		{[]string{"label", "nodes", "node1", "novalue"}, 1, "", "invalid label novalue"},
		{[]string{"label", "nodes", "node1", "bad key!=x"}, 1, "", "label not changed"},
		{[]string{"label", "policy", "allow-web", "-n", "prod", "tested=yes"}, 0, "Successfully set label tested on policy allow-web\n", ""},
	} {
		r := c.run(tc.args...)
		if r.code != tc.code || (tc.out != "" && r.stdout != tc.out) || !strings.Contains(r.stderr, tc.err) {
			t.Errorf("%v:\n%s", tc.args, r)
		}
	}
	if r := c.mustRun("get", "policy", "allow-web", "-n", "prod", "-o", "yaml"); !strings.Contains(r.stdout, "tested: \"yes\"") || !strings.Contains(r.stdout, "projectcalico.org/tier: default") {
		t.Error(r)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	c := fresh(t)
	c.mustRun("apply", "-f", writeFile(t, "g.yaml", gnsYAML("g", "1.1.1.0/24")))
	out := strings.ReplaceAll(c.mustRun("version").stdout, buildinfo.Version, "<version>")
	golden(t, "version", strings.ReplaceAll(out, buildinfo.GitCommit, "<commit>"))
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := c.mustRun("completion", sh); !strings.Contains(r.stdout, "calicoctl") {
			t.Errorf("%s completion:\n%s", sh, r)
		}
	}
	if r := c.run("completion", "tcsh"); r.code != 1 {
		t.Error(r)
	}
	if r := c.mustRun("--help"); !strings.Contains(r.stdout, "Available Commands") {
		t.Error(r)
	}
}
