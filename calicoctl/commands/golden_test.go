package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// allKinds is the short name of every kind calicoctl manages.
var allKinds = []string{"ippool", "ipreservation", "networkpolicy", "gnp", "tier", "profile", "networkset",
	"gnetsets", "wep", "hep", "node", "bgpp", "bgpconfig", "bgpfilter", "felixconfig", "clusterinfo"}

// loaded returns a CLI over a datastore holding testdata/all-kinds.yaml.
func loaded(t *testing.T) *cli {
	t.Helper()
	c := fresh(t)
	c.mustRun("apply", "-f", "testdata/all-kinds.yaml")
	return c
}

// TestGetTables checks -o ps and -o wide of every kind against goldens.
func TestGetTables(t *testing.T) {
	c := loaded(t)
	for _, format := range []string{"ps", "wide"} {
		var b strings.Builder
		for _, k := range allKinds {
			b.WriteString("$ calicoctl get " + k + " -A -o " + format + "\n")
			b.WriteString(c.mustRun("get", k, "-A", "-o", format).stdout)
		}
		golden(t, "get-"+format, normalize(b.String()))
	}
}

// TestGetFormats checks every other output format against goldens.
func TestGetFormats(t *testing.T) {
	c := loaded(t)
	tmpl := writeFile(t, "t.tmpl", "{{range .}}{{range .Items}}{{.ObjectMeta.Name}} {{.Spec.CIDR}}\n{{end}}{{end}}")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"get-ps-default", []string{"get", "ippools"}},
		{"get-ps-namespace", []string{"get", "policy", "-n", "prod"}},
		{"get-ps-default-namespace-empty", []string{"get", "wep"}},
		{"get-yaml-list", []string{"get", "ippools", "-o", "yaml"}},
		{"get-yaml-one", []string{"get", "ippool", "pool-v4", "-o", "yaml"}},
		{"get-yaml-several", []string{"get", "pools", "pool-v4", "pool-v6", "-o", "yaml"}},
		{"get-yaml-export", []string{"get", "ippool", "pool-v4", "-o", "yaml", "--export"}},
		{"get-json-list", []string{"get", "gnetsets", "-o", "json"}},
		{"get-json-one", []string{"get", "policy", "allow-web", "-n", "prod", "-o", "json"}},
		{"get-custom-columns-calico", []string{"get", "ippools", "-o", "custom-columns=NAME,CIDR,NAT"}},
		{"get-custom-columns-paths", []string{"get", "ippools", "-o", "custom-columns=NAME:.metadata.name,BLOCK:.spec.blockSize,USES:.spec.allowedUses,ENV:.metadata.labels.env"}},
		{"get-go-template", []string{"get", "ippools", "-o", "go-template={{range .}}{{range .Items}}{{.ObjectMeta.Name}}={{.Spec.CIDR}};{{end}}{{end}}"}},
		{"get-go-template-file", []string{"get", "ippools", "-o", "go-template-file=" + tmpl}},
		{"get-selector", []string{"get", "gnetsets", "--selector", "blocked == 'true'", "-o", "wide"}},
		{"get-file", []string{"get", "-f", "testdata/all-kinds.yaml", "-o", "ps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, tc.name, normalize(c.mustRun(tc.args...).stdout))
		})
	}
}

// TestGetSelector filters lists and named gets by label.
func TestGetSelector(t *testing.T) {
	c := loaded(t)
	r := c.mustRun("get", "ippools", "--selector", "env == 'prod'", "-o", "custom-columns=NAME")
	if strings.Contains(r.stdout, "pool-v6") || !strings.Contains(r.stdout, "pool-v4") {
		t.Fatal(r)
	}
	r = c.mustRun("get", "ippools", "pool-v4", "pool-v6", "--selector", "!has(env)", "-o", "custom-columns=NAME")
	if !strings.Contains(r.stdout, "pool-v6") || strings.Contains(r.stdout, "pool-v4") {
		t.Fatal(r)
	}
}

// TestYAMLRoundTrip re-applies get -o yaml output unchanged.
func TestYAMLRoundTrip(t *testing.T) {
	c := loaded(t)
	for _, k := range allKinds[:len(allKinds)-1] {
		out := c.mustRun("get", k, "-A", "-o", "yaml").stdout
		p := filepath.Join(t.TempDir(), k+".yaml")
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if k == "profile" {
			continue // holds the built-in projectcalico-default-allow
		}
		c.mustRun("apply", "-f", p)
		if again := c.mustRun("get", k, "-A", "-o", "yaml").stdout; normalize(again) != normalize(out) {
			t.Errorf("%s changed on re-apply:\n%s\nvs\n%s", k, again, out)
		}
	}
}
