package nodeinfo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// Interface is one network interface and its addresses.
type Interface struct {
	Name  string
	Up    bool
	Addrs []netip.Prefix
}

// ListInterfaces returns the interfaces of the calling thread's network
// namespace, in kernel order.
func ListInterfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	out := make([]Interface, 0, len(ifs))
	for _, i := range ifs {
		addrs, err := i.Addrs()
		if err != nil {
			return nil, fmt.Errorf("listing addresses of %s: %w", i.Name, err)
		}
		in := Interface{Name: i.Name, Up: i.Flags&net.FlagUp != 0}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			in.Addrs = append(in.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, in)
	}
	return out, nil
}

// DefaultExcludes are the interfaces first-found never picks (Calico's list).
var DefaultExcludes = []string{
	"^docker.*", "^cbr.*", "^dummy.*", "^virbr.*", "^lxcbr.*", "^veth.*", "^lo$",
	"^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*",
	"^vxlan.calico.*", "^vxlan-v6.calico.*", "^wireguard.cali.*", "^wg-v6.cali.*",
	"^nodelocaldns.*",
}

// Detector finds this host's address of one family.
type Detector struct {
	// Interfaces lists interfaces (ListInterfaces when nil).
	Interfaces func() ([]Interface, error)
	// SourceFor returns the local address the kernel would use to reach
	// dst (a connected UDP socket's local address when nil).
	SourceFor func(ctx context.Context, dst netip.Addr) (netip.Addr, error)
}

func (d Detector) interfaces() ([]Interface, error) {
	if d.Interfaces != nil {
		return d.Interfaces()
	}
	return ListInterfaces()
}

func (d Detector) sourceFor(ctx context.Context, dst netip.Addr) (netip.Addr, error) {
	if d.SourceFor != nil {
		return d.SourceFor(ctx, dst)
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "udp", netip.AddrPortFrom(dst, 80).String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding route to %s: %w", dst, err)
	}
	defer conn.Close()
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding route to %s: %w", dst, err)
	}
	return ap.Addr().Unmap(), nil
}

// ErrNoAddress is returned when detection finds nothing.
var ErrNoAddress = errors.New("no suitable address found")

// Resolve turns an address spec (see the package doc) into an address with
// its prefix length, for IPv4 when v6 is false. method applies to
// "autodetect" and to an empty spec. A zero prefix and nil error mean
// "none".
func (d Detector) Resolve(ctx context.Context, spec, method string, v6 bool) (netip.Prefix, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "none":
		return netip.Prefix{}, nil
	case spec == "" || spec == "autodetect":
		return d.Detect(ctx, method, v6)
	case strings.HasPrefix(spec, "can-reach="):
		return d.Detect(ctx, spec, v6)
	}
	if p, err := netip.ParsePrefix(spec); err == nil {
		if p.Addr().Is6() != v6 {
			return netip.Prefix{}, fmt.Errorf("address %s is not %s", spec, family(v6))
		}
		return p, nil
	}
	a, err := netip.ParseAddr(spec)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address %q is not an IP, a prefix, autodetect, can-reach=<ip> or none", spec)
	}
	if a.Is6() != v6 {
		return netip.Prefix{}, fmt.Errorf("address %s is not %s", spec, family(v6))
	}
	return d.withPrefixLen(a)
}

// withPrefixLen finds a's prefix length on the interface holding it, or
// uses the full length when no interface holds it.
func (d Detector) withPrefixLen(a netip.Addr) (netip.Prefix, error) {
	ifs, err := d.interfaces()
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, i := range ifs {
		for _, p := range i.Addrs {
			if p.Addr() == a {
				return p, nil
			}
		}
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Detect runs one detection method ("" = first-found).
func (d Detector) Detect(ctx context.Context, method string, v6 bool) (netip.Prefix, error) {
	method = strings.TrimSpace(method)
	switch {
	case method == "" || method == "first-found":
		return d.firstFound(nil, DefaultExcludes, v6)
	case strings.HasPrefix(method, "can-reach="):
		target := strings.TrimPrefix(method, "can-reach=")
		dst, err := netip.ParseAddr(target)
		if err != nil {
			addrs, rerr := net.DefaultResolver.LookupNetIP(ctx, "ip", target)
			if rerr != nil || len(addrs) == 0 {
				return netip.Prefix{}, fmt.Errorf("can-reach target %q is not an IP or resolvable name", target)
			}
			dst = addrs[0].Unmap()
		}
		if dst.Is6() != v6 {
			return netip.Prefix{}, fmt.Errorf("can-reach target %s is not %s", dst, family(v6))
		}
		src, err := d.sourceFor(ctx, dst)
		if err != nil {
			return netip.Prefix{}, err
		}
		return d.withPrefixLen(src)
	case strings.HasPrefix(method, "interface="):
		re, err := compileList(strings.TrimPrefix(method, "interface="))
		if err != nil {
			return netip.Prefix{}, err
		}
		return d.firstFound(re, nil, v6)
	case strings.HasPrefix(method, "skip-interface="):
		return d.firstFound(nil, append(append([]string(nil), DefaultExcludes...),
			strings.Split(strings.TrimPrefix(method, "skip-interface="), ",")...), v6)
	case strings.HasPrefix(method, "cidr="):
		return d.byCIDR(strings.TrimPrefix(method, "cidr="), v6)
	case method == "kubernetes-internal-ip":
		return netip.Prefix{}, fmt.Errorf("autodetection method %q needs the Kubernetes API, which this implementation does not read; use cidr=, interface= or can-reach=", method)
	}
	return netip.Prefix{}, fmt.Errorf("unknown autodetection method %q", method)
}

// byCIDR returns the first global address of the family, on any up
// interface (the default exclusions do not apply, as in Calico), that is
// inside one of the comma-separated CIDRs.
func (d Detector) byCIDR(list string, v6 bool) (netip.Prefix, error) {
	var cidrs []netip.Prefix
	for _, part := range strings.Split(list, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		c, err := netip.ParsePrefix(part)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("autodetection method cidr=: %q is not a CIDR", part)
		}
		cidrs = append(cidrs, c.Masked())
	}
	if len(cidrs) == 0 {
		return netip.Prefix{}, errors.New("autodetection method cidr= names no CIDR")
	}
	ifs, err := d.interfaces()
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, i := range ifs {
		if !i.Up {
			continue
		}
		for _, p := range i.Addrs {
			a := p.Addr()
			if a.Is6() != v6 || !a.IsGlobalUnicast() || a.IsLinkLocalUnicast() {
				continue
			}
			for _, c := range cidrs {
				if c.Contains(a) {
					return p, nil
				}
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s in %s: %w", family(v6), list, ErrNoAddress)
}

func compileList(s string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		re, err := regexp.Compile(part)
		if err != nil {
			return nil, fmt.Errorf("interface pattern %q: %w", part, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// firstFound returns the first global address of the family on an up
// interface that matches include (all when nil) and no exclude pattern.
func (d Detector) firstFound(include []*regexp.Regexp, exclude []string, v6 bool) (netip.Prefix, error) {
	ex, err := compileList(strings.Join(exclude, ","))
	if err != nil {
		return netip.Prefix{}, err
	}
	ifs, err := d.interfaces()
	if err != nil {
		return netip.Prefix{}, err
	}
	matches := func(res []*regexp.Regexp, name string) bool {
		for _, re := range res {
			if re.MatchString(name) {
				return true
			}
		}
		return false
	}
	for _, i := range ifs {
		if !i.Up || matches(ex, i.Name) || (include != nil && !matches(include, i.Name)) {
			continue
		}
		for _, p := range i.Addrs {
			a := p.Addr()
			if a.Is6() == v6 && a.IsGlobalUnicast() && !a.IsLinkLocalUnicast() {
				return p, nil
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s: %w", family(v6), ErrNoAddress)
}

func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}
