package checksystem

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"testing"
)

// Fake is a scripted host.
type Fake struct {
	Release  string
	Files    map[string]string
	Commands map[string]string // name → output; absent means not installed
}

func (f Fake) KernelRelease() (string, error) { return f.Release, nil }

func (f Fake) ReadFile(p string) ([]byte, error) {
	if s, ok := f.Files[p]; ok {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
}

func (f Fake) Command(name string, _ ...string) ([]byte, error) {
	if out, ok := f.Commands[name]; ok {
		return []byte(out), nil
	}
	return nil, fmt.Errorf("exec: %q: %w", name, exec.ErrNotFound)
}

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func goodHost() Fake {
	return Fake{
		Release: "6.1.0-18-amd64",
		Files: map[string]string{
			"/proc/modules":                           "ip_set 61440 1 xt_set, Live 0x0\nxt_set 20480 0 - Live 0x0\n",
			"/sys/module/nf_conntrack/uevent":         "",
			"/lib/modules/6.1.0-18-amd64/modules.dep": "kernel/net/ipv4/ipip.ko: kernel/net/ipv4/tunnel4.ko\nkernel/drivers/net/vxlan/vxlan.ko:\n",
			"/proc/config.gz": gz("CONFIG_IP_NF_IPTABLES=y\nCONFIG_IP6_NF_IPTABLES=m\nCONFIG_NF_CT_NETLINK=y\n" +
				"CONFIG_NETFILTER_XT_MARK=y\nCONFIG_NETFILTER_XT_MATCH_MULTIPORT=y\nCONFIG_NETFILTER_XT_TARGET_MASQUERADE=m\n"),
			"/proc/net/ip_tables_matches": "conntrack\naddrtype\n",
		},
		Commands: map[string]string{
			"iptables": "iptables v1.8.9 (nf_tables)\n", "iptables-save": "iptables-save v1.8.9 (nf_tables)\n",
			"iptables-restore": "iptables-restore v1.8.9 (nf_tables)\n", "ip6tables": "ip6tables v1.8.9 (nf_tables)\n",
			"ipset": "ipset v7.17, protocol version: 7\n", "ip": "ip utility, iproute2-6.1.0, libbpf 1.1.0\n",
		},
	}
}

func TestAllPresent(t *testing.T) {
	r := Check(goodHost())
	var out bytes.Buffer
	r.Write(&out)
	if !r.OK() || strings.Contains(out.String(), "FAIL") || strings.Contains(out.String(), "WARNING") {
		t.Fatalf("want all OK:\n%s", out.String())
	}
	for _, want := range []string{"iptables 1.8.9 (nf_tables)", "ipset 7.17", "6.1.0-18-amd64", "xt_conntrack", "vxlan"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMissingRequiredFails(t *testing.T) {
	h := goodHost()
	delete(h.Commands, "ipset")
	h.Files["/proc/modules"] = "" // xt_set and ip_set gone
	r := Check(h)
	var out bytes.Buffer
	r.Write(&out)
	if r.OK() {
		t.Fatalf("want failure:\n%s", out.String())
	}
	for _, want := range []string{"ipset not found", "Unable to detect the xt_set module", "Unable to detect the ip_set module"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMissingOptionalWarns(t *testing.T) {
	h := goodHost()
	h.Files["/lib/modules/6.1.0-18-amd64/modules.dep"] = ""
	delete(h.Commands, "ip6tables")
	r := Check(h)
	var out bytes.Buffer
	r.Write(&out)
	if !r.OK() {
		t.Fatalf("optional items must not fail:\n%s", out.String())
	}
	for _, want := range []string{"VXLAN IP pools will not work", "IPIP IP pools will not work", "IPv6 policy will be unavailable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestOldKernel(t *testing.T) {
	h := goodHost()
	h.Release = "2.6.32-754.el6.x86_64"
	if Check(h).OK() {
		t.Fatal("2.6.32 must fail")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"3.10", "3.10", 0}, {"3.9", "3.10", -1}, {"4.0", "3.10", 1}, {"3.10.1", "3.10", 1}} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("%s vs %s: %d", c.a, c.b, got)
		}
	}
}

func TestRealHostRuns(t *testing.T) {
	// The real host may lack features; the check must still complete.
	var out bytes.Buffer
	Check(RealHost()).Write(&out)
	if !strings.Contains(out.String(), "Checking kernel modules...") {
		t.Fatal(out.String())
	}
}
