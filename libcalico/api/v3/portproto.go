package v3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Port is Calico's numorstring.Port: a single port, a range "min:max", or a
// named port. In JSON a single port is a number and a range or name is a
// string; a quoted number ("80") is read as a single port.
type Port struct {
	MinPort  uint16 `json:"minPort,omitempty"`
	MaxPort  uint16 `json:"maxPort,omitempty"`
	PortName string `json:"portName"`
}

// SinglePort returns a Port matching only p.
func SinglePort(p uint16) Port { return Port{MinPort: p, MaxPort: p} }

// NamedPort returns a Port naming an endpoint port.
func NamedPort(name string) Port { return Port{PortName: name} }

// PortFromRange returns the inclusive range min:max, or an error when
// min > max.
func PortFromRange(min, max uint16) (Port, error) {
	p := Port{MinPort: min, MaxPort: max}
	if min > max {
		return p, fmt.Errorf("minimum port number (%d) is greater than maximum port number (%d) in port range", min, max)
	}
	return p, nil
}

var (
	rulePortDigitsRe = lazyRegexp(`^\d+$`)
	rulePortRangeRe  = lazyRegexp(`^(\d+):(\d+)$`)
	rulePortNameRe   = lazyRegexp(`^[a-zA-Z0-9_.-]{1,128}$`)
)

// PortFromString parses "80", "80:90" or a port name.
func PortFromString(s string) (Port, error) {
	if rulePortDigitsRe().MatchString(s) {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return Port{}, fmt.Errorf("invalid port format (%s)", s)
		}
		return SinglePort(uint16(n)), nil
	}
	if m := rulePortRangeRe().FindStringSubmatch(s); m != nil {
		min, err := strconv.ParseUint(m[1], 10, 16)
		if err != nil {
			return Port{}, fmt.Errorf("invalid minimum port number in range (%s)", s)
		}
		max, err := strconv.ParseUint(m[2], 10, 16)
		if err != nil {
			return Port{}, fmt.Errorf("invalid maximum port number in range (%s)", s)
		}
		return PortFromRange(uint16(min), uint16(max))
	}
	if !rulePortNameRe().MatchString(s) {
		return Port{}, fmt.Errorf("invalid name for named port (%s)", s)
	}
	return NamedPort(s), nil
}

// String returns the name, the number, or "min:max".
func (p Port) String() string {
	switch {
	case p.PortName != "":
		return p.PortName
	case p.MinPort == p.MaxPort:
		return strconv.FormatUint(uint64(p.MinPort), 10)
	default:
		return fmt.Sprintf("%d:%d", p.MinPort, p.MaxPort)
	}
}

// MarshalJSON writes a single port as a number, anything else as a string.
func (p Port) MarshalJSON() ([]byte, error) {
	if p.PortName == "" && p.MinPort == p.MaxPort {
		return json.Marshal(p.MinPort)
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON reads a number 0-65535 or a string PortFromString accepts.
func (p *Port) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := PortFromString(s)
		if err != nil {
			return err
		}
		*p = v
		return nil
	}
	var n uint16
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid port %s: must be a number 0-65535 or a string", b)
	}
	*p = SinglePort(n)
	return nil
}

// NumOrStringType says which member of a Protocol or DSCP is set.
type NumOrStringType int

// The two kinds of NumOrStringType.
const (
	NumOrStringNum NumOrStringType = iota
	NumOrStringString
)

// uint8OrString is the shared representation behind Protocol and DSCP,
// as Calico's numorstring.Uint8OrString.
type uint8OrString struct {
	Type   NumOrStringType
	NumVal uint8
	StrVal string
}

func (u uint8OrString) numValue() (uint8, error) {
	if u.Type == NumOrStringString {
		n, err := strconv.ParseUint(u.StrVal, 10, 8)
		return uint8(n), err
	}
	return u.NumVal, nil
}

func (u uint8OrString) String() string {
	if u.Type == NumOrStringString {
		return u.StrVal
	}
	return strconv.FormatUint(uint64(u.NumVal), 10)
}

func (u uint8OrString) marshal() ([]byte, error) {
	if n, err := u.numValue(); err == nil {
		return json.Marshal(n)
	}
	return json.Marshal(u.StrVal)
}

// unmarshal reads a number 0-255 or a string; a string of digits that fits
// in a byte is read as a number, as Calico does.
func (u *uint8OrString) unmarshal(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if n, err := strconv.ParseUint(s, 10, 8); err == nil {
			*u = uint8OrString{Type: NumOrStringNum, NumVal: uint8(n)}
		} else {
			*u = uint8OrString{Type: NumOrStringString, StrVal: s}
		}
		return nil
	}
	var n uint8
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid value %s: must be a number 0-255 or a string", b)
	}
	*u = uint8OrString{Type: NumOrStringNum, NumVal: n}
	return nil
}

// Protocol names Calico accepts in rules.
const (
	ProtocolTCP     = "TCP"
	ProtocolUDP     = "UDP"
	ProtocolICMP    = "ICMP"
	ProtocolICMPv6  = "ICMPv6"
	ProtocolSCTP    = "SCTP"
	ProtocolUDPLite = "UDPLite"
)

var protocolNames = []string{ProtocolTCP, ProtocolUDP, ProtocolICMP, ProtocolICMPv6, ProtocolSCTP, ProtocolUDPLite}

// Protocol is Calico's numorstring.Protocol: a protocol name or a number.
type Protocol struct {
	Type   NumOrStringType
	NumVal uint8
	StrVal string
}

// ProtocolFromInt returns protocol number p.
func ProtocolFromInt(p uint8) Protocol { return Protocol{Type: NumOrStringNum, NumVal: p} }

// ProtocolFromString returns the named protocol, with the name's case
// corrected when it matches a known protocol ("tcp" gives "TCP").
func ProtocolFromString(s string) Protocol {
	for _, n := range protocolNames {
		if strings.EqualFold(n, s) {
			return Protocol{Type: NumOrStringString, StrVal: n}
		}
	}
	return Protocol{Type: NumOrStringString, StrVal: s}
}

// NumValue returns the protocol number, parsing a numeric string.
func (p Protocol) NumValue() (uint8, error) { return uint8OrString(p).numValue() }

// String returns the name or the number.
func (p Protocol) String() string { return uint8OrString(p).String() }

// MarshalJSON writes a number or a name.
func (p Protocol) MarshalJSON() ([]byte, error) { return uint8OrString(p).marshal() }

// UnmarshalJSON reads a number 0-255 or a name.
func (p *Protocol) UnmarshalJSON(b []byte) error { return (*uint8OrString)(p).unmarshal(b) }

// SupportsPorts reports whether the protocol has ports: TCP (6), UDP (17)
// or SCTP (132).
func (p Protocol) SupportsPorts() bool {
	if n, err := p.NumValue(); err == nil {
		return n == 6 || n == 17 || n == 132
	}
	switch p.StrVal {
	case ProtocolTCP, ProtocolUDP, ProtocolSCTP, "tcp", "udp", "sctp":
		return true
	}
	return false
}

// is reports whether p is the named protocol or its number.
func (p Protocol) is(name string, num uint8) bool {
	if n, err := p.NumValue(); err == nil {
		return n == num
	}
	return p.StrVal == name
}

// protocolReason returns why p is invalid, or "" when it is valid: a number
// 1-255 or one of the names Calico accepts.
func protocolReason(p Protocol) string {
	if n, err := p.NumValue(); err == nil {
		if n == 0 {
			return "protocol number invalid"
		}
		return ""
	}
	for _, n := range protocolNames {
		if p.StrVal == n {
			return ""
		}
	}
	return "protocol name invalid"
}

// DSCPValues maps each DSCP name to its value.
var DSCPValues = map[string]uint8{
	"DF": 0, "EF": 46,
	"AF11": 10, "AF12": 12, "AF13": 14,
	"AF21": 18, "AF22": 20, "AF23": 22,
	"AF31": 26, "AF32": 28, "AF33": 30,
	"AF41": 34, "AF42": 36, "AF43": 38,
	"CS0": 0, "CS1": 8, "CS2": 16, "CS3": 24, "CS4": 32, "CS5": 40, "CS6": 48,
}

// DSCP is Calico's numorstring.DSCP: a value 0-63 or a name such as "AF11".
type DSCP struct {
	Type   NumOrStringType
	NumVal uint8
	StrVal string
}

// DSCPFromInt returns DSCP value v.
func DSCPFromInt(v uint8) DSCP { return DSCP{Type: NumOrStringNum, NumVal: v} }

// DSCPFromString returns the named DSCP class.
func DSCPFromString(s string) DSCP {
	for k := range DSCPValues {
		if strings.EqualFold(k, s) {
			return DSCP{Type: NumOrStringString, StrVal: k}
		}
	}
	return DSCP{Type: NumOrStringString, StrVal: s}
}

// ToUint8 returns the DSCP value, 0 when the name is unknown.
func (d DSCP) ToUint8() uint8 {
	if n, err := uint8OrString(d).numValue(); err == nil {
		return n
	}
	return DSCPValues[strings.ToUpper(strings.TrimSpace(d.StrVal))]
}

// Validate checks the value is 0-63 or a known name.
func (d DSCP) Validate() error {
	if n, err := uint8OrString(d).numValue(); err == nil {
		if n > 63 {
			return fmt.Errorf("DSCP must be between 0 and 63")
		}
		return nil
	}
	if _, ok := DSCPValues[strings.ToUpper(strings.TrimSpace(d.StrVal))]; !ok {
		return fmt.Errorf("%s is not a valid DSCP value", d.StrVal)
	}
	return nil
}

// String returns the name or the number.
func (d DSCP) String() string { return uint8OrString(d).String() }

// MarshalJSON writes a number or a name.
func (d DSCP) MarshalJSON() ([]byte, error) { return uint8OrString(d).marshal() }

// UnmarshalJSON reads a number 0-255 or a name.
func (d *DSCP) UnmarshalJSON(b []byte) error { return (*uint8OrString)(d).unmarshal(b) }
