// Package installtest checks `make install`: every file lands where the
// variables say, and systemd accepts the units it writes.
package installtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallAndVerifyUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is required (Debian package systemd)")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	cmd := exec.Command("make", "-C", root, "install", "DESTDIR=",
		"PREFIX="+p("usr"), "UNITDIR="+p("units"), "CONFDIR="+p("etc"),
		"CNIBINDIR="+p("cni/bin"), "CNICONFDIR="+p("cni/net.d"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{
		"usr/bin/calico-felix", "usr/bin/calico-confd", "usr/bin/calico-bgpd", "usr/bin/calicoctl",
		"usr/bin/calico-kube-controllers", "usr/bin/calico-cni-agent", "cni/bin/calico", "cni/bin/calico-direct", "cni/bin/calico-ipam", "etc/felix.cfg.sample",
		"etc/calicoctl.cfg.sample", "etc/calico.env.sample", "etc/kube-controllers.env.sample",
		"cni/net.d/10-calico.conflist.sample", "cni/net.d/10-calico-k8s.conflist.sample",
	} {
		if _, err := os.Stat(p(f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	units, _ := filepath.Glob(p("units/*.service"))
	if len(units) != 5 {
		t.Fatalf("units = %v, want felix, confd, bgpd, kube-controllers and cni-agent", units)
	}
	for _, u := range units {
		body, _ := os.ReadFile(u)
		for _, want := range []string{"Type=notify", "Restart=on-failure", "ExecStart=" + p("usr/bin/")} {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s lacks %q", filepath.Base(u), want)
			}
		}
		if out, err := exec.Command("systemd-analyze", "verify", u).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) != 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u), err, out)
		}
	}
}
