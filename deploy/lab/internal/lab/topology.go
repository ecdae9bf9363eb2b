package lab

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/calico-etcd/calico/testutil"
)

// HostSubnet holds the hosts' eth0 addresses: host i gets .(10+i). With
// several subnets (Options.Subnets), subnet s is 172.30.s.0/24.
const HostSubnet = "172.30.0.0/24"

// Gateway is the bridge namespace's address in the first subnet, the
// hosts' default route there (172.30.s.1 in subnet s). It routes between
// the lab's subnets and forwards nothing further, so no lab traffic
// leaves the lab.
const Gateway = "172.30.0.1"

// subnetOf spreads hosts 1..n evenly over subnets, in order: with 3 hosts
// and 2 subnets, host1 and host2 share subnet 0, host3 is in subnet 1.
func subnetOf(i, hosts, subnets int) int {
	if subnets <= 1 {
		return 0
	}
	return (i - 1) * subnets / hosts
}

func hostAddr(i, subnet int) string { return fmt.Sprintf("172.30.%d.%d/24", subnet, 10+i) }
func hostAddr6(i, subnet int) string {
	return fmt.Sprintf("fd00:30:%d::%d/64", subnet, 10+i)
}

// hostMAC is host i's eth0 address, fixed so that every host can be given
// every other's before they exist (neighbours).
func hostMAC(i int) string { return fmt.Sprintf("02:ca:1c:00:%02x:%02x", i>>8, i&0xff) }

func gateway(subnet int) string  { return fmt.Sprintf("172.30.%d.1", subnet) }
func gateway6(subnet int) string { return fmt.Sprintf("fd00:30:%d::1", subnet) }

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

// makeBridge creates the bridge namespace with one bridge per subnet
// (br0, br1, ...), each holding the subnet's gateway addresses; with
// several subnets it routes between them.
func makeBridge(name string, subnets int, ipv6 bool) (*testutil.NetNS, error) {
	br, err := openNS(name)
	if err != nil {
		return nil, err
	}
	var steps [][]string
	for s := 0; s < max(subnets, 1); s++ {
		dev := fmt.Sprintf("br%d", s)
		steps = append(steps,
			[]string{"ip", "link", "add", dev, "type", "bridge"},
			[]string{"ip", "link", "set", dev, "up"},
			[]string{"ip", "addr", "add", gateway(s) + "/24", "dev", dev})
		if ipv6 {
			steps = append(steps, []string{"ip", "addr", "add", gateway6(s) + "/64", "dev", dev, "nodad"})
		}
	}
	if subnets > 1 {
		steps = append(steps,
			[]string{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
			[]string{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"})
	}
	for _, c := range steps {
		if err := br.Exec(c[0], c[1:]...); err != nil {
			return nil, err
		}
	}
	return br, nil
}

// makeHost creates a host namespace whose eth0 is a port of its subnet's
// bridge.
func makeHost(bridgeNS string, h HostState, idx int) (*testutil.NetNS, error) {
	ns, err := openNS(h.NetNS)
	if err != nil {
		return nil, err
	}
	name := h.NetNS
	port := fmt.Sprintf("h%dport", idx)
	tmp := fmt.Sprintf("h%deth", idx)
	steps := [][]string{
		{"ip", "link", "add", tmp, "address", hostMAC(idx), "netns", name, "type", "veth", "peer", "name", port, "netns", bridgeNS},
		{"ip", "-n", name, "link", "set", tmp, "name", "eth0"},
		{"ip", "-n", name, "addr", "add", h.Addr, "dev", "eth0"},
		{"ip", "-n", name, "link", "set", "eth0", "up"},
		// A default route, as real hosts have: proxy ARP for the pods'
		// 169.254.1.1 gateway needs one. It ends in the bridge namespace.
		{"ip", "-n", name, "route", "add", "default", "via", gateway(h.Subnet)},
		{"ip", "-n", bridgeNS, "link", "set", port, "master", fmt.Sprintf("br%d", h.Subnet)},
		{"ip", "-n", bridgeNS, "link", "set", port, "up"},
		{"ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	if h.Addr6 != "" {
		steps = append(steps,
			[]string{"ip", "-n", name, "addr", "add", h.Addr6, "dev", "eth0", "nodad"},
			[]string{"ip", "-n", name, "-6", "route", "add", "default", "via", gateway6(h.Subnet)})
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return ns, err
		}
	}
	return ns, nil
}

// deleteNamespaces removes every namespace named prefix*.
func deleteNamespaces(prefix string) {
	_ = testutil.SweepNetNS(prefix)
}

// neighbours gives host i permanent neighbour entries for the other hosts
// of its subnet. The kernel keeps one neighbour table for all namespaces
// and refuses new learned entries past one limit for all of them together
// (net.ipv4.neigh.default.gc_thresh3, 1024): a one-subnet lab of 50 hosts
// in a full BGP mesh needs 2,450, and sessions failed to connect for want
// of them. Permanent entries do not count.
func neighbours(name string, i, hosts, subnets int, ipv6 bool) error {
	var b strings.Builder
	sub := subnetOf(i, hosts, subnets)
	for j := 1; j <= hosts; j++ {
		if j == i || subnetOf(j, hosts, subnets) != sub {
			continue
		}
		fmt.Fprintf(&b, "neigh replace %s lladdr %s dev eth0 nud permanent\n", strings.TrimSuffix(hostAddr(j, sub), "/24"), hostMAC(j))
		if ipv6 {
			fmt.Fprintf(&b, "neigh replace %s lladdr %s dev eth0 nud permanent\n", strings.TrimSuffix(hostAddr6(j, sub), "/64"), hostMAC(j))
		}
	}
	if b.Len() == 0 {
		return nil
	}
	cmd := exec.Command("ip", "-n", name, "-batch", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("neighbour entries in %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
