package lab

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/calico-etcd/calico/libcalico/testutil"
)

// HostSubnet holds the hosts' eth0 addresses: host i gets .(10+i).
const HostSubnet = "172.30.0.0/24"

// Gateway is the bridge namespace's address, the hosts' default route; it
// forwards nothing further, so no lab traffic leaves the lab.
const Gateway = "172.30.0.1"

func hostAddr(i int) string { return fmt.Sprintf("172.30.0.%d/24", 10+i) }

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// openNS creates (or, when it exists, opens) a named namespace.
func openNS(name string) (*testutil.NetNS, error) {
	if n, err := testutil.NewNetNSNamed(name); err == nil {
		return n, nil
	}
	return nil, fmt.Errorf("creating network namespace %s (left over? run calico-lab down)", name)
}

// makeBridge creates the bridge namespace with br0.
func makeBridge(name string) (*testutil.NetNS, error) {
	br, err := openNS(name)
	if err != nil {
		return nil, err
	}
	for _, c := range [][]string{
		{"ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "link", "set", "br0", "up"},
		{"ip", "addr", "add", Gateway + "/24", "dev", "br0"},
	} {
		if err := br.Exec(c[0], c[1:]...); err != nil {
			return nil, err
		}
	}
	return br, nil
}

// makeHost creates a host namespace whose eth0 is a port of br0.
func makeHost(bridgeNS, name, addr string, idx int) (*testutil.NetNS, error) {
	h, err := openNS(name)
	if err != nil {
		return nil, err
	}
	port := fmt.Sprintf("h%dport", idx)
	tmp := fmt.Sprintf("h%deth", idx)
	steps := [][]string{
		{"ip", "link", "add", tmp, "netns", name, "type", "veth", "peer", "name", port, "netns", bridgeNS},
		{"ip", "-n", name, "link", "set", tmp, "name", "eth0"},
		{"ip", "-n", name, "addr", "add", addr, "dev", "eth0"},
		{"ip", "-n", name, "link", "set", "eth0", "up"},
		// A default route, as real hosts have: proxy ARP for the pods'
		// 169.254.1.1 gateway needs one. It ends in the bridge namespace.
		{"ip", "-n", name, "route", "add", "default", "via", Gateway},
		{"ip", "-n", bridgeNS, "link", "set", port, "master", "br0"},
		{"ip", "-n", bridgeNS, "link", "set", port, "up"},
		{"ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return h, err
		}
	}
	return h, nil
}

// deleteNamespaces removes every namespace named prefix*.
func deleteNamespaces(prefix string) {
	_ = testutil.SweepNetNS(prefix)
}
