// Package dataplane programs a workload's networking the way Calico does:
// a veth pair from the pod's network namespace to the host's, the pod's
// addresses (/32 and /128) and routes via a fixed link-local gateway, the
// host's /32 route to the pod and the host interface's sysctls.
//
//	pod netns                                    host netns (where the plugin runs)
//	eth0  10.0.0.5/32                            cali0123456789a  ee:ee:ee:ee:ee:ee
//	  169.254.1.1 dev eth0 scope link   ◄─veth─►   10.0.0.5 dev cali0123456789a scope link
//	  default via 169.254.1.1 dev eth0             proxy_arp=1 proxy_delay=0 forwarding=1
//	  default via fe80::ecee:eeff:feee:eeee        (IPv6: proxy_ndp=1 forwarding=1 accept_ra=0)
//
// The host answers ARP for 169.254.1.1 by proxy ARP, and NDP for the IPv6
// gateway with the link-local address its fixed MAC gives, so no address is
// ever put on the host side. Host routes get no explicit protocol, as in
// Calico's plugin, which with netlink means "boot" (3): felix's own
// protocol, so felix adopts the route as it is. A route felix programmed
// first is accepted.
//
// The host namespace is the one the calling thread is in. Kernel is the
// real implementation; Fake keeps state in memory for tests of the callers.
package dataplane

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
)

// The fixed addresses of Calico's point-to-point workload links.
var (
	// HostMAC is the MAC of every host-side workload interface.
	HostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	// IPv4Gateway is the pod's IPv4 next hop, answered by proxy ARP.
	IPv4Gateway = netip.MustParseAddr("169.254.1.1")
	// IPv6Gateway is the link-local address HostMAC gives the host side.
	IPv6Gateway = netip.MustParseAddr("fe80::ecee:eeff:feee:eeee")
	// DefaultRoutes are the pod routes programmed when none are configured.
	DefaultRoutes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
)

// HostIfacePrefix starts the name of every host-side workload interface.
const HostIfacePrefix = "cali"

// HostVethName returns the host-side interface name for a workload:
// "cali" and the first 11 hex digits of the SHA-1 of workloadID, which is
// "<namespace>.<pod>" for Kubernetes pods (as Calico and felix compute it)
// and the container ID otherwise.
func HostVethName(workloadID string) string {
	sum := sha1.Sum([]byte(workloadID))
	return HostIfacePrefix + hex.EncodeToString(sum[:])[:11]
}

// Errors callers test with errors.Is.
var (
	// ErrNetNSNotFound: the pod's network namespace does not exist.
	ErrNetNSNotFound = errors.New("network namespace does not exist")
	// ErrInterfaceExists: the pod already has an interface of that name.
	ErrInterfaceExists = errors.New("interface already exists in the pod")
	// ErrHostInterfaceExists: the host already has the host-side name,
	// paired with another namespace than the pod's.
	ErrHostInterfaceExists = errors.New("host-side interface already exists")
	// ErrAlreadyAttached: the host-side name is taken by a pair into this
	// very pod (under another interface name).
	ErrAlreadyAttached = errors.New("the pod is already attached")
	// ErrFamilies: Configure got addresses of other families than the
	// Request's Families.
	ErrFamilies = errors.New("addresses are not of the families the interface was set up for")
)

// Request describes one workload interface.
type Request struct {
	// NetNS is the path of the pod's network namespace.
	NetNS string
	// IfName is the interface name inside the pod (CNI_IFNAME).
	IfName string
	// HostIfName is the host-side name (HostVethName).
	HostIfName string
	// Addrs are the pod's addresses; each is programmed as a /32 or /128.
	Addrs []netip.Addr
	// Routes are the pod's routes via the gateway of their family;
	// DefaultRoutes when empty. Only families with an address are used.
	Routes []netip.Prefix
	// MTU of both ends; 0 keeps the kernel's default.
	MTU int
	// AllowIPForwarding turns forwarding on inside the pod (Calico's
	// container_settings.allow_ip_forwarding); otherwise it is turned off.
	AllowIPForwarding bool
	// Families, when known before the addresses are, lets Create also
	// do what needs no address (see Create). Zero means unknown.
	Families Families
	// PodMAC is the pod interface's MAC: Create gives it to the
	// interface (nil: the kernel picks one), Check compares it (nil: not
	// compared).
	PodMAC net.HardwareAddr
}

// NewPodMAC returns a random, locally administered unicast MAC, as the
// kernel gives a veth by default; chosen before the pair exists, so that
// the endpoint can be written while the pair is made.
func NewPodMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, err
	}
	mac[0] = mac[0]&0xfe | 0x02
	return mac, nil
}

// Families are the address families a pod has.
type Families struct{ V4, V6 bool }

// Known reports whether any family is set.
func (f Families) Known() bool { return f.V4 || f.V6 }

// FamiliesOf returns the families of addrs.
func FamiliesOf(addrs []netip.Addr) Families {
	_, has4, has6 := podAddrs(addrs)
	return Families{V4: has4, V6: has6}
}

// Result is what Setup made.
type Result struct {
	HostIfName string
	HostMAC    net.HardwareAddr
	PodMAC     net.HardwareAddr
}

// Dataplane programs workload interfaces. Every method runs with the
// calling thread's network namespace as the host namespace.
type Dataplane interface {
	// Setup creates and configures the interface (Create, then
	// Configure). On error it leaves nothing of what it created behind.
	Setup(req *Request) (*Result, error)
	// Create makes the veth pair without addresses; it needs no
	// req.Addrs, so callers may run it while IPAM is still assigning.
	// With req.Families known it also sets the sysctls, brings both
	// ends up and adds the pod's gateway routes for those families.
	// It fails, changing nothing, when the pod namespace does not exist
	// (ErrNetNSNotFound), the pod has an interface named IfName
	// (ErrInterfaceExists) or the host one named HostIfName
	// (ErrAlreadyAttached if that one's peer is in the pod,
	// ErrHostInterfaceExists if elsewhere). On other errors it leaves
	// nothing behind.
	Create(req *Request) (*Result, error)
	// Configure finishes a pair Create made, with req.Addrs: pod
	// addresses and host routes, and what Create left undone when
	// req.Families was unknown. Addresses of other families than
	// req.Families are an error. On error it deletes the pair.
	Configure(req *Request) error
	// Teardown deletes the pod's interface ifName, and with it its host
	// side. A namespace or interface that is already gone is success.
	// If detached is not nil, it is called as soon as the host no longer
	// routes to the pod (the host side's routes deleted), before the
	// kernel's slow link deletion: from then on the pod's addresses may
	// be given to another pod. It is not called when there was no
	// interface to detach.
	Teardown(netns, ifName string, detached func()) error
	// DeleteHostVeth deletes a host-side interface (and its pod side) by
	// name; one that does not exist is success.
	DeleteHostVeth(name string) error
	// DeletePair deletes the pair Create makes for req if it exists: the
	// pod's req.IfName, a veth whose peer is the host's req.HostIfName,
	// as an earlier ADD of the same attachment (cut off, or retried)
	// leaves it. Anything else named so (an interface the plugin did not
	// make, a pair to another host interface) is left alone, and it
	// reports whether it deleted the pair.
	DeletePair(req *Request) (bool, error)
	// Check reports the first way the interface differs from req: a
	// missing or misconfigured interface, address or route on either side.
	Check(req *Request) error
}

// podAddrs returns the addresses as host prefixes and which families
// they include.
func podAddrs(addrs []netip.Addr) (pfx []netip.Prefix, has4, has6 bool) {
	for _, a := range addrs {
		a = a.Unmap()
		pfx = append(pfx, netip.PrefixFrom(a, a.BitLen()))
		if a.Is4() {
			has4 = true
		} else {
			has6 = true
		}
	}
	return pfx, has4, has6
}

// podRoutes returns the routes to program for the families present.
func podRoutes(routes []netip.Prefix, has4, has6 bool) []netip.Prefix {
	if len(routes) == 0 {
		routes = DefaultRoutes
	}
	var out []netip.Prefix
	for _, r := range routes {
		if (r.Addr().Is4() && has4) || (r.Addr().Is6() && !r.Addr().Is4In6() && has6) {
			out = append(out, r.Masked())
		}
	}
	return out
}

// gatewayFor returns the pod's next hop for a destination.
func gatewayFor(dst netip.Prefix) netip.Addr {
	if dst.Addr().Is4() {
		return IPv4Gateway
	}
	return IPv6Gateway
}
