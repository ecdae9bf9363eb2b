// Package checksystem checks that a host has what felix needs: a recent
// enough kernel, the iptables and ipset tools, and the kernel modules or
// built-in features for iptables, ipsets, conntrack, VXLAN and IPIP. It
// looks for each module the way Calico's `calicoctl node checksystem`
// does (loaded, built in, loadable, kernel config, iptables matches) and
// reads the host only through Host, so tests run against a fake.
package checksystem

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MinKernel is the oldest kernel felix supports.
const MinKernel = "3.10"

// Host is the machine being checked.
type Host interface {
	// KernelRelease returns what `uname -r` prints.
	KernelRelease() (string, error)
	// ReadFile reads a file such as /proc/modules; errors wrap
	// fs.ErrNotExist when it is absent.
	ReadFile(path string) ([]byte, error)
	// Command runs a program and returns its combined output; the error
	// wraps exec.ErrNotFound when the program is not installed.
	Command(name string, args ...string) ([]byte, error)
}

// RealHost returns the machine calicoctl runs on.
func RealHost() Host { return realHost{} }

type realHost struct{}

var _ Host = realHost{}

func (realHost) KernelRelease() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b)), err
}

func (realHost) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (realHost) Command(name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// Status of one check.
type Status string

// Check outcomes.
const (
	OK   Status = "OK"
	Fail Status = "FAIL"
	Warn Status = "WARNING"
)

// Result is one line of the report.
type Result struct {
	Name   string
	Status Status
	// Note explains a FAIL or WARNING.
	Note string
}

// Section is a titled group of results.
type Section struct {
	Title   string
	Results []Result
}

// Report is the whole check.
type Report struct {
	Sections []Section
}

// OK reports whether nothing required is missing.
func (r Report) OK() bool {
	for _, s := range r.Sections {
		for _, res := range s.Results {
			if res.Status == Fail {
				return false
			}
		}
	}
	return true
}

// Write prints the report in calicoctl's layout.
func (r Report) Write(w io.Writer) {
	for _, s := range r.Sections {
		fmt.Fprintf(w, "Checking %s...\n", s.Title)
		for _, res := range s.Results {
			if res.Note != "" {
				fmt.Fprintf(w, "%s: %s\n", res.Status, res.Note)
			}
			fmt.Fprintf(w, "\t\t%-20s\t\t\t\t\t%s\n", res.Name, res.Status)
		}
	}
}

// tool is a program felix runs.
type tool struct {
	name     string
	args     []string
	required bool
	why      string
}

var tools = []tool{
	{"iptables", []string{"--version"}, true, "felix programs policy with iptables"},
	{"iptables-save", []string{"--version"}, true, "felix reads the iptables state with iptables-save"},
	{"iptables-restore", []string{"--version"}, true, "felix writes iptables with iptables-restore"},
	{"ip6tables", []string{"--version"}, false, "IPv6 policy will be unavailable"},
	{"ipset", []string{"--version"}, true, "felix keeps selector members in ipsets"},
	{"ip", []string{"-V"}, false, "node diags uses ip to dump routes and addresses"},
}

// module is a kernel feature felix needs, found as a module or built in.
type module struct {
	name     string
	config   string // CONFIG_ option that builds it
	match    string // iptables match name in /proc/net/ip_tables_matches
	required bool
	why      string
}

var modules = []module{
	{"ip_tables", "CONFIG_IP_NF_IPTABLES", "", true, ""},
	{"ip6_tables", "CONFIG_IP6_NF_IPTABLES", "", false, "IPv6 will be unavailable as ip6_tables kernel module is not found"},
	{"ip_set", "CONFIG_IP_SET", "", true, ""},
	{"xt_set", "CONFIG_NETFILTER_XT_SET", "set", true, ""},
	{"nf_conntrack", "CONFIG_NF_CONNTRACK", "", true, ""},
	{"xt_conntrack", "CONFIG_NETFILTER_XT_MATCH_CONNTRACK", "conntrack", true, ""},
	{"nf_conntrack_netlink", "CONFIG_NF_CT_NETLINK", "", true, ""},
	{"xt_mark", "CONFIG_NETFILTER_XT_MARK", "mark", true, ""},
	{"xt_multiport", "CONFIG_NETFILTER_XT_MATCH_MULTIPORT", "multiport", true, ""},
	{"xt_addrtype", "CONFIG_NETFILTER_XT_MATCH_ADDRTYPE", "addrtype", true, ""},
	{"xt_MASQUERADE", "CONFIG_NETFILTER_XT_TARGET_MASQUERADE", "", true, ""},
	{"vxlan", "CONFIG_VXLAN", "", false, "VXLAN IP pools will not work as the vxlan kernel module is not found"},
	{"ipip", "CONFIG_NET_IPIP", "", false, "IPIP IP pools will not work as the ipip kernel module is not found"},
}

var versionRe = regexp.MustCompile(`v?(\d+(?:\.\d+)+)`)

// Check runs every check against h.
func Check(h Host) Report {
	var r Report
	rel, relErr := h.KernelRelease()
	r.Sections = append(r.Sections, Section{Title: "kernel version", Results: []Result{checkKernel(rel, relErr)}})

	var bins []Result
	for _, t := range tools {
		bins = append(bins, checkTool(h, t))
	}
	r.Sections = append(r.Sections, Section{Title: "binaries", Results: bins})

	f := newFinder(h, rel)
	var mods []Result
	for _, m := range modules {
		mods = append(mods, f.check(m))
	}
	r.Sections = append(r.Sections, Section{Title: "kernel modules", Results: mods})
	return r
}

func checkKernel(rel string, err error) Result {
	if err != nil {
		return Result{Name: "unknown", Status: Fail, Note: fmt.Sprintf("cannot read the kernel version: %v", err)}
	}
	m := versionRe.FindStringSubmatch(rel)
	if m == nil || compareVersions(m[1], MinKernel) < 0 {
		return Result{Name: rel, Status: Fail, Note: fmt.Sprintf("Minimum kernel version to run Calico is %s. Detected kernel version: %s", MinKernel, rel)}
	}
	return Result{Name: rel, Status: OK}
}

func checkTool(h Host, t tool) Result {
	out, err := h.Command(t.name, t.args...)
	status := Fail
	if !t.required {
		status = Warn
	}
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return Result{Name: t.name, Status: status, Note: fmt.Sprintf("%s not found: %s", t.name, t.why)}
	case err != nil:
		return Result{Name: t.name, Status: status, Note: fmt.Sprintf("running %s failed: %v: %s", t.name, err, strings.TrimSpace(string(out)))}
	}
	name := t.name
	if m := versionRe.FindStringSubmatch(string(out)); m != nil {
		name += " " + m[1]
	}
	if strings.Contains(string(out), "nf_tables") {
		name += " (nf_tables)"
	} else if strings.Contains(string(out), "legacy") {
		name += " (legacy)"
	}
	return Result{Name: name, Status: OK}
}

// finder looks for kernel modules in the places Calico looks.
type finder struct {
	h       Host
	rel     string
	loaded  string
	modDeps string
	config  string
	matches string
}

func newFinder(h Host, rel string) *finder {
	f := &finder{h: h, rel: rel}
	read := func(p string) string {
		b, err := h.ReadFile(p)
		if err != nil {
			return ""
		}
		return string(b)
	}
	f.loaded = read("/proc/modules")
	f.modDeps = read("/lib/modules/"+rel+"/modules.dep") + "\n" + read("/lib/modules/"+rel+"/modules.builtin")
	f.matches = read("/proc/net/ip_tables_matches")
	if gz, err := h.ReadFile("/proc/config.gz"); err == nil {
		if zr, err := gzip.NewReader(bytes.NewReader(gz)); err == nil {
			if b, err := io.ReadAll(zr); err == nil {
				f.config = string(b)
			}
		}
	}
	if f.config == "" {
		for _, p := range []string{"/boot/config-" + rel, "/usr/src/linux/.config", "/usr/src/linux-" + rel + "/.config",
			"/usr/src/linux-headers-" + rel + "/.config", "/lib/modules/" + rel + "/build/.config"} {
			if c := read(p); c != "" {
				f.config = c
				break
			}
		}
	}
	return f
}

func (f *finder) check(m module) Result {
	if f.found(m) {
		return Result{Name: m.name, Status: OK}
	}
	if !m.required {
		return Result{Name: m.name, Status: Warn, Note: m.why}
	}
	return Result{Name: m.name, Status: Fail, Note: fmt.Sprintf("Unable to detect the %s module as Loaded/Builtin module or lsmod", m.name)}
}

func (f *finder) found(m module) bool {
	// Loaded modules, and built-in ones with parameters, appear in sysfs.
	if _, err := f.h.ReadFile("/sys/module/" + m.name + "/uevent"); err == nil {
		return true
	}
	names := []string{m.name, strings.ReplaceAll(m.name, "_", "-")}
	for _, n := range names {
		if lineHasPrefix(f.loaded, n+" ") || strings.Contains(f.modDeps, "/"+n+".ko") {
			return true
		}
	}
	if m.config != "" && (lineHasPrefix(f.config, m.config+"=y") || lineHasPrefix(f.config, m.config+"=m")) {
		return true
	}
	return m.match != "" && lineIs(f.matches, m.match)
}

func lineHasPrefix(text, prefix string) bool {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func lineIs(text, want string) bool {
	for line := range strings.Lines(text) {
		if strings.TrimSpace(line) == want {
			return true
		}
	}
	return false
}

// compareVersions compares dotted versions numerically.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
