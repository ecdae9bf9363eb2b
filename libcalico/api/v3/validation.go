package v3

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/selector"
)

// validator accumulates field errors under a path such as "IPPool.Spec".
type validator struct {
	errs *cerrors.Validation
}

func newValidator() *validator { return &validator{errs: &cerrors.Validation{}} }

func (v *validator) add(field string, value any, reason string) {
	v.errs.Add(field, value, reason)
}

func (v *validator) err() error { return v.errs.Err() }

var (
	dns1123Label     = lazyRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = lazyRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelValueRe     = lazyRegexp(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	labelNameRe      = lazyRegexp(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	interfaceNameRe  = lazyRegexp(`^[a-zA-Z0-9_.\-]{1,15}$`)
)

// name checks metadata.name as a DNS-1123 subdomain (max 253).
func (v *validator) name(field, name string) {
	switch {
	case name == "":
		v.add(field, name, "name must be specified")
	case len(name) > 253 || !dns1123Subdomain().MatchString(name):
		v.add(field, name, "name must consist of lower case alphanumeric characters, '-' or '.' (regex: "+dns1123Subdomain().String()+")")
	}
}

// namespace checks a namespace as a DNS-1123 label (max 63).
func (v *validator) namespace(field, ns string) {
	if len(ns) > 63 || !dns1123Label().MatchString(ns) {
		v.add(field, ns, "namespace must be a DNS-1123 label")
	}
}

// labels checks Kubernetes label keys and values.
func (v *validator) labels(field string, l map[string]string) {
	for k, val := range l {
		if !validLabelKey(k) {
			v.add(field, k, "invalid label key")
		}
		if len(val) > 63 || !labelValueRe().MatchString(val) {
			v.add(field+"["+k+"]", val, "invalid label value")
		}
	}
}

func validLabelKey(k string) bool {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if prefix == "" || len(prefix) > 253 || !dns1123Subdomain().MatchString(prefix) {
			return false
		}
	}
	return len(name) <= 63 && labelNameRe().MatchString(name)
}

// selector checks a selector expression.
func (v *validator) selector(field, s string) {
	if _, err := selector.Parse(s); err != nil {
		v.add(field, s, "invalid selector: "+err.Error())
	}
}

// cidr parses a CIDR and reports it when invalid. It accepts a bare IP as a
// single-address network, as Calico does for rule nets.
func (v *validator) cidr(field, s string) (netip.Prefix, bool) {
	p, err := ParseCIDR(s)
	if err != nil {
		v.add(field, s, "invalid CIDR")
		return netip.Prefix{}, false
	}
	return p, true
}

// ip parses an IP address and reports it when invalid.
func (v *validator) ip(field, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		v.add(field, s, "invalid IP address")
		return netip.Addr{}, false
	}
	return a, true
}

// ipPort checks "IP" or "IP:port" ("[v6]:port" for IPv6).
func (v *validator) ipPort(field, s string) {
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		v.add(field, s, "must be an IP address, optionally with a port (IP:port or [IPv6]:port)")
	}
}

// oneOf reports s unless it is one of allowed (empty allowed only if listed).
func (v *validator) oneOf(field, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.add(field, s, "must be one of "+strings.Join(allowed, ", "))
}

// interfaceName checks a Linux interface name (or "*" where allowed by caller).
func (v *validator) interfaceName(field, s string) {
	if !interfaceNameRe().MatchString(s) {
		v.add(field, s, "invalid interface name")
	}
}

// ParseCIDR parses a CIDR (or a bare IP as /32 or /128) and returns it
// masked to its network address.
func ParseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: zone not allowed", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validateMeta checks metadata common to all kinds.
func (v *validator) meta(kind string, m *ObjectMeta, namespaced bool) {
	v.name("Metadata.Name", m.Name)
	if namespaced {
		if m.Namespace != "" {
			v.namespace("Metadata.Namespace", m.Namespace)
		}
	} else if m.Namespace != "" {
		v.add("Metadata.Namespace", m.Namespace, kind+" is not namespaced")
	}
	v.labels("Metadata.Labels", m.Labels)
}
