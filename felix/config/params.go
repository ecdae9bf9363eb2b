package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/calico-etcd/calico/felix/dpapi"
)

// param is one parameter, from its struct tag.
type param struct {
	name     string // as Calico spells it
	field    int
	kind     string // "oneof", "int", ...
	args     []string
	def      string
	local    bool
	nonZero  bool
	live     bool
	defValue reflect.Value
}

// params indexes Config's parameters by lower-case name.
var params = func() map[string]*param {
	out := map[string]*param{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("config")
		if !ok {
			continue
		}
		parts := append(strings.SplitN(tag, ";", 3), "", "")
		p := &param{name: f.Name, field: i, def: parts[1]}
		p.kind, p.args = splitKind(parts[0])
		for _, fl := range strings.Split(parts[2], ",") {
			switch fl {
			case "local":
				p.local = true
			case "non-zero":
				p.nonZero = true
			case "live":
				p.live = true
			}
		}
		v, err := p.parse(p.def)
		if err != nil {
			panic(fmt.Sprintf("default of %s: %v", p.name, err))
		}
		p.defValue = v
		out[strings.ToLower(f.Name)] = p
	}
	return out
}()

// splitKind reads "oneof(a,b)" as "oneof", [a b].
func splitKind(s string) (string, []string) {
	i := strings.IndexByte(s, '(')
	if i < 0 || !strings.HasSuffix(s, ")") {
		return s, nil
	}
	return s[:i], strings.Split(s[i+1:len(s)-1], ",")
}

var (
	ifaceParamRe  = regexp.MustCompile(`^[a-zA-Z0-9:._+-]{1,15}$`)
	logRateRe     = regexp.MustCompile(`^[1-9]\d{0,3}/(second|minute|hour|day)$`)
	ifacePrefixRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
	hostnameRe    = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$`)
)

// parse turns a raw value into the field's type, or explains why not.
// "none" is the field's zero value, as in Calico.
func (p *param) parse(raw string) (reflect.Value, error) {
	raw = strings.TrimSpace(raw)
	if p.nonZero && (raw == "" || strings.EqualFold(raw, "none")) {
		return reflect.Value{}, errors.New("must not be empty")
	}
	if strings.EqualFold(raw, "none") && p.kind != "port-list" {
		return reflect.Zero(reflect.TypeFor[Config]().Field(p.field).Type), nil
	}
	switch p.kind {
	case "*bool":
		if raw == "" {
			return reflect.ValueOf((*bool)(nil)), nil
		}
		b, err := parseBool(raw)
		if err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(&b), nil
	case "ipv6":
		if raw == "" {
			return reflect.ValueOf(""), nil
		}
		a, err := netip.ParseAddr(raw)
		if err != nil || !a.Is6() || a.Is4In6() {
			return reflect.Value{}, errors.New("not an IPv6 address")
		}
		return reflect.ValueOf(a.String()), nil
	case "cidr-list":
		var out []netip.Prefix
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			pfx, err := parseCIDROrIP(s)
			if err != nil {
				return reflect.Value{}, fmt.Errorf("invalid CIDR %q", s)
			}
			out = append(out, pfx)
		}
		return reflect.ValueOf(out), nil
	case "portrange":
		if raw == "" {
			return reflect.ValueOf(""), nil
		}
		lo, hi, err := ParsePortRange(raw)
		if err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(fmt.Sprintf("%d:%d", lo, hi)), nil
	case "route-table-range", "route-table-ranges":
		if raw == "" {
			return reflect.ValueOf(""), nil
		}
		rs, err := ParseRouteTableRanges(raw)
		if err != nil {
			return reflect.Value{}, err
		}
		if p.kind == "route-table-range" && len(rs) != 1 {
			return reflect.Value{}, errors.New("want one range min-max")
		}
		return reflect.ValueOf(formatRanges(rs)), nil
	case "iface-regexp-list":
		if _, err := ParseInterfaceMatchers(raw); err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(raw), nil
	case "log-rate":
		if raw != "" && !logRateRe.MatchString(raw) {
			return reflect.Value{}, errors.New("want N/second, N/minute, N/hour or N/day with N 1-9999")
		}
		return reflect.ValueOf(raw), nil
	case "iface-param":
		if raw != "" && !ifaceParamRe.MatchString(raw) {
			return reflect.Value{}, errors.New("not an interface name (a trailing + is a wildcard)")
		}
		return reflect.ValueOf(raw), nil
	case "bool":
		if raw == "" {
			return reflect.ValueOf(false), nil
		}
		b, err := parseBool(raw)
		return reflect.ValueOf(b), err
	case "int":
		if raw == "" {
			raw = "0"
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			return reflect.Value{}, errors.New("not an integer")
		}
		if len(p.args) == 2 {
			lo, _ := strconv.Atoi(p.args[0])
			hi, _ := strconv.Atoi(p.args[1])
			if n < lo || n > hi {
				return reflect.Value{}, fmt.Errorf("must be between %d and %d", lo, hi)
			}
		}
		if p.nonZero && n == 0 {
			return reflect.Value{}, errors.New("must not be zero")
		}
		return reflect.ValueOf(n), nil
	case "seconds":
		d, err := parseDuration(raw, time.Second)
		return reflect.ValueOf(d), err
	case "oneof":
		for _, a := range p.args {
			if strings.EqualFold(a, raw) {
				return reflect.ValueOf(a), nil
			}
		}
		if raw == "" && !p.nonZero {
			return reflect.ValueOf(""), nil
		}
		return reflect.Value{}, fmt.Errorf("must be one of %s", strings.Join(p.args, ", "))
	case "string", "file":
		if p.kind == "file" && slices.Contains(p.args, "must-exist") && raw != "" {
			if _, err := os.Stat(raw); err != nil {
				return reflect.Value{}, errors.New("file does not exist")
			}
		}
		return reflect.ValueOf(raw), nil
	case "iface-list":
		for _, s := range strings.Split(raw, ",") {
			if !ifacePrefixRe.MatchString(strings.TrimSpace(s)) {
				return reflect.Value{}, fmt.Errorf("invalid interface prefix %q", s)
			}
		}
		return reflect.ValueOf(raw), nil
	case "hostname", "host-address":
		if raw == "" {
			return reflect.ValueOf(""), nil
		}
		if _, err := netip.ParseAddr(raw); err == nil && p.kind == "host-address" {
			return reflect.ValueOf(raw), nil
		}
		if !hostnameRe.MatchString(raw) || len(raw) > 253 {
			return reflect.Value{}, errors.New("not a valid host name")
		}
		return reflect.ValueOf(raw), nil
	case "ipv4":
		if raw == "" {
			return reflect.ValueOf(""), nil
		}
		a, err := netip.ParseAddr(raw)
		if err != nil || !a.Is4() {
			return reflect.Value{}, errors.New("not an IPv4 address")
		}
		return reflect.ValueOf(a.String()), nil
	case "authority":
		if _, _, err := splitHostPort(raw); err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(raw), nil
	case "endpoint-list":
		var eps []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return reflect.Value{}, fmt.Errorf("invalid endpoint %q (want http(s)://host:port)", s)
			}
			eps = append(eps, s)
		}
		return reflect.ValueOf(eps), nil
	case "mark-bitmask":
		n, err := strconv.ParseUint(raw, 0, 32)
		if err != nil || n == 0 {
			return reflect.Value{}, errors.New("not a non-zero 32-bit mask")
		}
		return reflect.ValueOf(uint32(n)), nil
	case "port-list":
		ports, err := parsePortList(raw)
		return reflect.ValueOf(ports), err
	case "regexp":
		if _, err := regexp.Compile(raw); err != nil {
			return reflect.Value{}, errors.New("not a valid regular expression")
		}
		return reflect.ValueOf(raw), nil
	}
	return reflect.Value{}, fmt.Errorf("unknown parameter kind %q", p.kind)
}

func parseBool(raw string) (bool, error) {
	switch strings.ToLower(raw) {
	case "true", "t", "yes", "y", "1", "on":
		return true, nil
	case "false", "f", "no", "n", "0", "off":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

func parseCIDROrIP(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePortRange reads "32768:65535", "32768-65535" or one port.
func ParsePortRange(s string) (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		a, b, ok = strings.Cut(s, "-")
	}
	if !ok {
		b = a
	}
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if err1 != nil || err2 != nil || x == 0 || x > y {
		return 0, 0, errors.New("want a port range min:max within 1-65535")
	}
	return uint16(x), uint16(y), nil
}

// RouteTableRange is an inclusive range of route table indices.
type RouteTableRange struct{ Min, Max int }

// ParseRouteTableRanges reads "1-250" or "1-10,200-250", as Calico; the
// kernel's reserved tables (253-255) and 0 are refused.
func ParseRouteTableRanges(s string) ([]RouteTableRange, error) {
	var out []RouteTableRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, b, ok := strings.Cut(part, "-")
		if !ok {
			b = a
		}
		lo, err1 := strconv.Atoi(strings.TrimSpace(a))
		hi, err2 := strconv.Atoi(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || lo < 1 || lo > hi || int64(hi) > 0xffffffff {
			return nil, fmt.Errorf("invalid route table range %q", part)
		}
		if lo <= 255 && hi >= 253 {
			return nil, fmt.Errorf("route table range %q includes the kernel's tables 253-255", part)
		}
		out = append(out, RouteTableRange{lo, hi})
	}
	if len(out) == 0 {
		return nil, errors.New("no route table range")
	}
	return out, nil
}

func formatRanges(rs []RouteTableRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d-%d", r.Min, r.Max)
	}
	return strings.Join(parts, ",")
}

// ParseInterfaceMatchers reads Calico's InterfaceExclude: a comma
// separated list of interface names, or regular expressions between
// slashes ("kube-ipvs0,/^veth.*$/").
func ParseInterfaceMatchers(s string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if len(e) > 2 && strings.HasPrefix(e, "/") && strings.HasSuffix(e, "/") {
			re, err := regexp.Compile(e[1 : len(e)-1])
			if err != nil {
				return nil, fmt.Errorf("invalid interface regexp %q", e)
			}
			out = append(out, re)
			continue
		}
		if !ifacePrefixRe.MatchString(e) {
			return nil, fmt.Errorf("invalid interface name %q", e)
		}
		out = append(out, regexp.MustCompile("^"+regexp.QuoteMeta(e)+"$"))
	}
	return out, nil
}

// parseDuration reads a number of units or a Go duration ("1m30s").
func parseDuration(raw string, unit time.Duration) (time.Duration, error) {
	if raw == "" {
		return 0, nil
	}
	if f, err := strconv.ParseFloat(raw, 64); err == nil {
		if f < 0 {
			return 0, errors.New("must not be negative")
		}
		return time.Duration(f * float64(unit)), nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return 0, errors.New("not a duration")
	}
	return d, nil
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, errors.New("want host:port")
	}
	port, err := strconv.Atoi(s[i+1:])
	if err != nil || port < 1 || port > 65535 {
		return "", 0, errors.New("invalid port")
	}
	return s[:i], port, nil
}

// parsePortList reads Calico's failsafe list: "tcp:22,udp:68", entries
// "proto:port" or "proto:net:port" (an IPv6 net in brackets); "none" or
// "" is the empty list.
func parsePortList(raw string) ([]dpapi.ProtoPort, error) {
	out := []dpapi.ProtoPort{}
	if raw == "" || strings.EqualFold(raw, "none") {
		return out, nil
	}
	for _, e := range strings.Split(raw, ",") {
		e = strings.TrimSpace(e)
		var pp dpapi.ProtoPort
		proto, rest, ok := strings.Cut(e, ":")
		if !ok {
			proto, rest = "tcp", e
		}
		pp.Protocol = strings.ToLower(proto)
		if pp.Protocol != "tcp" && pp.Protocol != "udp" && pp.Protocol != "sctp" {
			return nil, fmt.Errorf("entry %q: protocol must be tcp, udp or sctp", e)
		}
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			n := strings.Trim(rest[:i], "[]")
			if _, err := netip.ParsePrefix(n); err != nil {
				return nil, fmt.Errorf("entry %q: invalid net", e)
			}
			pp.Net, rest = n, rest[i+1:]
		}
		port, err := strconv.ParseUint(rest, 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("entry %q: invalid port", e)
		}
		pp.Port = uint16(port)
		out = append(out, pp)
	}
	return out, nil
}

// formatPortList is the inverse of parsePortList.
func formatPortList(ps []dpapi.ProtoPort) string {
	if len(ps) == 0 {
		return "none"
	}
	var parts []string
	for _, p := range ps {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		switch {
		case p.Net == "":
			parts = append(parts, fmt.Sprintf("%s:%d", proto, p.Port))
		case strings.Contains(p.Net, ":"):
			parts = append(parts, fmt.Sprintf("%s:[%s]:%d", proto, p.Net, p.Port))
		default:
			parts = append(parts, fmt.Sprintf("%s:%s:%d", proto, p.Net, p.Port))
		}
	}
	return strings.Join(parts, ",")
}
