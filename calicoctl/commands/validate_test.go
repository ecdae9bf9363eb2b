package commands

import (
	"strings"
	"testing"
)

// TestValidate checks resources offline: the datastore is never read, so
// it works with etcd down; each invalid resource is named.
func TestValidate(t *testing.T) {
	c := offline(t)
	bad := poolYAML("ok", "10.1.0.0/16") + "---\n" + poolYAML("bad", "10.300.0.0/16") + "---\n" +
		gnpYAML("  selector: role ==\n") + "---\n" + poolYAML("overlaps-ok", "10.1.0.0/24")
	s := &session{c: c}
	s.run("validate", "-f", "testdata/all-kinds.yaml")
	s.run("validate", "-f", writeFile(t, "one.yaml", poolYAML("p", "10.1.0.0/16")))
	s.run("validate", "-f", writeFile(t, "bad.yaml", bad))
	s.run("validate", "-f", writeFile(t, "worse.yaml", poolYAML("bad", "10.300.0.0/16")))
	s.run("validate", "-f", writeFile(t, "ns.yaml", poolYAML("p", "10.1.0.0/16")), "-n", "prod")
	s.run("validate", "-f", writeFile(t, "builtin.yaml", "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: projectcalico-default-allow\n"))
	s.run("validate", "-f", writeFile(t, "empty.yaml", ""), "--skip-empty")
	s.run("validate", "-f", "/nonexistent/x.yaml")
	golden(t, "validate", strings.ReplaceAll(s.b.String(), t.TempDir()[:strings.LastIndex(t.TempDir(), "/")], "<tmp>"))
	c.stdin = poolYAML("p", "10.1.0.0/16")
	if r := c.mustRun("validate", "-f", "-"); r.stdout != "Successfully validated 1 'IPPool' resource(s)\n" {
		t.Fatal(r)
	}
}
