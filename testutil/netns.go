package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// NetNSPrefix starts the name of every namespace these helpers make, so
// leftovers of a killed run can be found and swept.
const NetNSPrefix = "ctest-"

// RequireRoot fails (not skips) a test that needs root when run without it:
// kernel tests are part of the suite, and hiding them would hide failures.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test programs the kernel in network namespaces and must run as root")
	}
}

// UniqueName returns prefix plus random hex, short enough for interface
// names when prefix is.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

// NetNS is a named network namespace (visible in `ip netns list`).
type NetNS struct {
	ns.NetNS
	Name string
}

// NewNetNSNamed creates /var/run/netns/<name>.
func NewNetNSNamed(name string) (*NetNS, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	h, err := ns.GetNS("/var/run/netns/" + name)
	if err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		return nil, fmt.Errorf("opening netns %s: %w", name, err)
	}
	n := &NetNS{NetNS: h, Name: name}
	if err := n.IP("link", "set", "lo", "up"); err != nil {
		n.Delete()
		return nil, err
	}
	return n, nil
}

// IP runs the ip tool on the namespace (ip -n), which is quicker than Exec
// as it needs no mount namespace of its own.
func (n *NetNS) IP(args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("in netns %s: ip %s: %w: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// OpenNetNS opens an existing named namespace; Close (not Delete) it.
func OpenNetNS(name string) (*NetNS, error) {
	h, err := ns.GetNS("/var/run/netns/" + name)
	if err != nil {
		return nil, fmt.Errorf("opening netns %s: %w", name, err)
	}
	return &NetNS{NetNS: h, Name: name}, nil
}

// Delete closes and removes the namespace; safe to call twice.
func (n *NetNS) Delete() {
	if n.NetNS != nil {
		n.NetNS.Close()
	}
	_ = exec.Command("ip", "netns", "del", n.Name).Run()
}

// Exec runs a command inside the namespace and returns its error with output.
func (n *NetNS) Exec(name string, args ...string) error {
	_, err := n.Output(name, args...)
	return err
}

// Output runs a command inside the namespace and returns its combined output.
func (n *NetNS) Output(name string, args ...string) (string, error) {
	full := append([]string{"netns", "exec", n.Name, name}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// NewNetNS makes a uniquely named namespace for a test, removed at cleanup
// whether the test passed or not.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := NewNetNSNamed(UniqueName(NetNSPrefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Delete)
	return n
}

// RunIn runs f on a thread locked into the namespace.
func (n *NetNS) RunIn(f func() error) error {
	return n.Do(func(ns.NetNS) error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		return f()
	})
}

// SweepNetNS deletes namespaces left by killed runs (names with prefix).
func SweepNetNS(prefix string) error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			_ = exec.Command("ip", "netns", "del", f[0]).Run()
		}
	}
	return nil
}
