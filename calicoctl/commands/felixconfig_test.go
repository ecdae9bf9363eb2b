package commands

import (
	"strings"
	"testing"
)

// A FelixConfiguration that sets fields felix does not act on is written
// (a Calico manifest applies unchanged) with a warning naming each field;
// Calico's defaults and fields felix acts on are not warned about, and a
// field of Calico's newest API is accepted.
func TestWriteFelixConfigurationWarnsAboutUnsupportedFields(t *testing.T) {
	c := fresh(t)
	f := writeFile(t, "fc.yaml", `apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  chainInsertMode: Append
  wireguardEnabled: true
  bpfEnabled: false
  nftablesMode: Auto
  logActionRateLimit: 10/second
  bpfJITHardening: Auto
  istioAmbientMode: Enabled
`)
	for _, verb := range []string{"create", "apply", "replace"} {
		r := c.mustRun(verb, "-f", f)
		for _, want := range []string{
			`Warning: FelixConfiguration "default": spec.wireguardEnabled = true is not supported by this felix`,
			`Warning: FelixConfiguration "default": spec.istioAmbientMode = Enabled is not supported by this felix`,
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", verb, want, r)
			}
		}
		for _, quiet := range []string{"chainInsertMode", "bpfEnabled", "nftablesMode", "bpfJITHardening", "floatingIPs", "logActionRateLimit"} {
			if strings.Contains(r.stderr, quiet) {
				t.Errorf("%s: warned about %s:\n%s", verb, quiet, r)
			}
		}
		if !strings.Contains(r.stdout, "Successfully") {
			t.Errorf("%s: write did not succeed:\n%s", verb, r)
		}
	}
	got := c.mustRun("get", "felixconfiguration", "default", "-o", "yaml").stdout
	for _, want := range []string{"wireguardEnabled: true", "logActionRateLimit: 10/second", "chainInsertMode: Append"} {
		if !strings.Contains(got, want) {
			t.Errorf("stored resource lacks %q:\n%s", want, got)
		}
	}
}
