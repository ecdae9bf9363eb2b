package v3

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("1m30s"),
// as Kubernetes' metav1.Duration is.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"90s\": %w", err)
	}
	pd, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	d.Duration = pd
	return nil
}

// ASNumber is a BGP AS number. It is written as a number and read from a
// number, a decimal string or Calico's dotted "high.low" form.
type ASNumber uint32

// ASNumberFromString parses "64512" or the dotted form "1.10".
func ASNumberFromString(s string) (ASNumber, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return ASNumber(n), nil
	}
	hi, lo, ok := strings.Cut(s, ".")
	if ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 == nil && err2 == nil {
			return ASNumber(h<<16 + l), nil
		}
	}
	return 0, fmt.Errorf("invalid AS Number format (%s)", s)
}

// UnmarshalJSON reads a number or a string.
func (a *ASNumber) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var n uint32
	if err := json.Unmarshal(b, &n); err == nil {
		*a = ASNumber(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("invalid AS Number %s", b)
	}
	v, err := ASNumberFromString(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// String returns the decimal form.
func (a ASNumber) String() string { return strconv.FormatUint(uint64(a), 10) }

// SecretKeySelector is Kubernetes' reference to one key of a secret.
type SecretKeySelector struct {
	Name     string `json:"name,omitempty"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
}

// Helpers shared by the infrastructure kinds. Each reports a bad value
// through v; callers skip values that are unset.

var (
	ifaceFilterRe    = lazyRegexp(`^[a-zA-Z0-9:._+-]{1,15}$`)
	kvItemRe         = lazyRegexp(`^\s*(\w+)=(.*)$`)
	standardCommRe   = lazyRegexp(`^(\d+):(\d+)$`)
	largeCommRe      = lazyRegexp(`^(\d+):(\d+):(\d+)$`)
	prometheusHostRe = lazyRegexp(`^[a-zA-Z0-9:._+-]{1,64}$`)
)

// parseIPAddr parses an IP with no zone, mapping IPv4-in-IPv6 to IPv4.
func parseIPAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func requireIPv4Addr(v *validator, field, s string) {
	if a, ok := parseIPAddr(s); !ok || !a.Is4() {
		v.add(field, s, "must be a valid IPv4 address")
	}
}

func requireIPv6Addr(v *validator, field, s string) {
	if a, ok := parseIPAddr(s); !ok || !a.Is6() {
		v.add(field, s, "must be a valid IPv6 address")
	}
}

func requireMAC(v *validator, field, s string) {
	if _, err := net.ParseMAC(s); err != nil {
		v.add(field, s, "must be a valid MAC address")
	}
}

// parseStrictNet parses a CIDR (or bare IP) that must equal its network
// address, as Calico's "net" validator requires.
func parseStrictNet(s string) (netip.Prefix, bool) {
	p, err := ParseCIDR(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	if strings.Contains(s, "/") {
		raw, err := netip.ParsePrefix(s)
		if err != nil || raw.Addr() != p.Addr() {
			return netip.Prefix{}, false
		}
	}
	return p, true
}

func requireRegexp(v *validator, field, s string) {
	if _, err := regexp.Compile(s); err != nil {
		v.add(field, s, "must be a valid regular expression")
	}
}

func requireKeyValueList(v *validator, field, s string) {
	if strings.TrimSpace(s) == "" {
		return
	}
	for item := range strings.SplitSeq(s, ",") {
		if item != "" && !kvItemRe().MatchString(item) {
			v.add(field, s, "must be a comma separated list of key=value pairs")
			return
		}
	}
}

// requireFoldedOneOf accepts s case-insensitively, as Calico's (?i) patterns do.
func requireFoldedOneOf(v *validator, field, s string, allowed ...string) {
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return
		}
	}
	v.add(field, s, "must be one of "+strings.Join(allowed, ", "))
}

func requireIntRange(v *validator, field string, n *int, lo, hi int) {
	if n != nil && (*n < lo || *n > hi) {
		v.add(field, *n, fmt.Sprintf("must be between %d and %d", lo, hi))
	}
}

func requireNonNegativeDuration(v *validator, field string, d *Duration) {
	if d != nil && d.Duration < 0 {
		v.add(field, d.Duration.String(), "must not be negative")
	}
}

// communityValueOK reports whether s is "aa:nn" with 16-bit parts or
// "aa:nn:mm" with 32-bit parts.
func communityValueOK(s string) bool {
	bits := 16
	var g []string
	if g = standardCommRe().FindStringSubmatch(s); g == nil {
		if g = largeCommRe().FindStringSubmatch(s); g == nil {
			return false
		}
		bits = 32
	}
	for _, part := range g[1:] {
		if _, err := strconv.ParseUint(part, 10, bits); err != nil {
			return false
		}
	}
	return true
}

func requireSecretKeyRef(v *validator, field string, s *SecretKeySelector) {
	if s == nil {
		return
	}
	if s.Key == "" {
		v.add(field+".Key", s.Key, "secret key must be specified")
	}
	if s.Name != "" {
		v.name(field+".Name", s.Name)
	}
}

func ptrTo[T any](v T) *T { return &v }

// infraTypeMeta fills a missing kind and apiVersion.
func infraTypeMeta(t *TypeMeta, kind string) {
	if t.Kind == "" {
		t.Kind = kind
	}
	if t.APIVersion == "" {
		t.APIVersion = APIVersion
	}
}
