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
	ifacePrefixRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
	hostnameRe    = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$`)
)

// parse turns a raw value into the field's type, or explains why not.
func (p *param) parse(raw string) (reflect.Value, error) {
	raw = strings.TrimSpace(raw)
	if p.nonZero && raw == "" {
		return reflect.Value{}, errors.New("must not be empty")
	}
	switch p.kind {
	case "bool":
		switch strings.ToLower(raw) {
		case "true", "t", "yes", "y", "1", "on":
			return reflect.ValueOf(true), nil
		case "false", "f", "no", "n", "0", "off", "":
			return reflect.ValueOf(false), nil
		}
		return reflect.Value{}, errors.New("not a boolean")
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
