// Package iptables models iptables tables as chains of rules and converges
// the kernel to them with iptables-restore. Every rule carries a
// "cali:<hash>" comment derived from its chain, its content and its position
// (Calico's scheme), which is how the package recognises its own rules when
// it reads the kernel back with iptables-save: chains are rewritten only when
// their hashes differ, rules hooked into the kernel's chains (INPUT, ...) are
// kept at the top (or bottom) of those chains, and chains with the owned
// prefix that are no longer wanted are deleted.
//
// The package knows nothing of Calico policy; package rules builds the chains.
package iptables

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Rule is one iptables rule: match criteria, an action and comments.
type Rule struct {
	Match   Match
	Action  Action // nil renders a rule with no target (a counter/no-op)
	Comment []string
}

// Chain is a named, ordered list of rules.
type Chain struct {
	Name  string
	Rules []Rule
}

// Match is an ordered list of iptables match fragments. Its methods return a
// new Match and never modify the receiver's backing array.
type Match []string

func (m Match) add(frags ...string) Match {
	out := make(Match, len(m), len(m)+len(frags))
	copy(out, m)
	return append(out, frags...)
}

// Render joins the fragments.
func (m Match) Render() string { return strings.Join(m, " ") }

// Protocol matches a protocol name ("tcp") or number ("4").
func (m Match) Protocol(p string) Match { return m.add("-p " + p) }

// NotProtocol matches any protocol but p.
func (m Match) NotProtocol(p string) Match { return m.add("! -p " + p) }

// SourceNet matches a source CIDR.
func (m Match) SourceNet(cidr string) Match { return m.add("--source " + cidr) }

// NotSourceNet matches sources outside cidr.
func (m Match) NotSourceNet(cidr string) Match { return m.add("! --source " + cidr) }

// DestNet matches a destination CIDR.
func (m Match) DestNet(cidr string) Match { return m.add("--destination " + cidr) }

// NotDestNet matches destinations outside cidr.
func (m Match) NotDestNet(cidr string) Match { return m.add("! --destination " + cidr) }

// InInterface matches the input interface (a trailing + is a wildcard).
func (m Match) InInterface(iface string) Match { return m.add("--in-interface " + iface) }

// OutInterface matches the output interface.
func (m Match) OutInterface(iface string) Match { return m.add("--out-interface " + iface) }

// SourceIPSet matches sources in the named set.
func (m Match) SourceIPSet(name string) Match { return m.add("-m set --match-set " + name + " src") }

// NotSourceIPSet matches sources not in the named set.
func (m Match) NotSourceIPSet(name string) Match {
	return m.add("-m set ! --match-set " + name + " src")
}

// DestIPSet matches destinations in the named set.
func (m Match) DestIPSet(name string) Match { return m.add("-m set --match-set " + name + " dst") }

// NotDestIPSet matches destinations not in the named set.
func (m Match) NotDestIPSet(name string) Match {
	return m.add("-m set ! --match-set " + name + " dst")
}

// SourceIPPortSet matches (source IP, protocol, source port) in a hash:ip,port set.
func (m Match) SourceIPPortSet(name string) Match {
	return m.add("-m set --match-set " + name + " src,src")
}

// NotSourceIPPortSet negates SourceIPPortSet.
func (m Match) NotSourceIPPortSet(name string) Match {
	return m.add("-m set ! --match-set " + name + " src,src")
}

// DestIPPortSet matches (destination IP, protocol, destination port).
func (m Match) DestIPPortSet(name string) Match {
	return m.add("-m set --match-set " + name + " dst,dst")
}

// NotDestIPPortSet negates DestIPPortSet.
func (m Match) NotDestIPPortSet(name string) Match {
	return m.add("-m set ! --match-set " + name + " dst,dst")
}

// PortRange is an inclusive range of ports; Min == Max for one port.
type PortRange struct{ Min, Max uint16 }

func renderPorts(ports []PortRange) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		if p.Min == p.Max {
			parts[i] = strconv.Itoa(int(p.Min))
		} else {
			parts[i] = strconv.Itoa(int(p.Min)) + ":" + strconv.Itoa(int(p.Max))
		}
	}
	return strings.Join(parts, ",")
}

// SourcePorts matches source ports with multiport (at most 15 slots; a
// range takes two). The rule must also match a port protocol.
func (m Match) SourcePorts(ports ...PortRange) Match {
	return m.add("-m multiport --source-ports " + renderPorts(ports))
}

// NotSourcePorts negates SourcePorts.
func (m Match) NotSourcePorts(ports ...PortRange) Match {
	return m.add("-m multiport ! --source-ports " + renderPorts(ports))
}

// DestPorts matches destination ports with multiport.
func (m Match) DestPorts(ports ...PortRange) Match {
	return m.add("-m multiport --destination-ports " + renderPorts(ports))
}

// NotDestPorts negates DestPorts.
func (m Match) NotDestPorts(ports ...PortRange) Match {
	return m.add("-m multiport ! --destination-ports " + renderPorts(ports))
}

// Port is a single-port PortRange.
func Port(p uint16) PortRange { return PortRange{p, p} }

// ICMPType matches an ICMP (IPv4) type, and code when code >= 0.
func (m Match) ICMPType(typ, code int) Match {
	return m.add("-m icmp --icmp-type " + typeCode(typ, code))
}

// NotICMPType negates ICMPType.
func (m Match) NotICMPType(typ, code int) Match {
	return m.add("-m icmp ! --icmp-type " + typeCode(typ, code))
}

// ICMPv6Type matches an ICMPv6 type, and code when code >= 0.
func (m Match) ICMPv6Type(typ, code int) Match {
	return m.add("-m icmp6 --icmpv6-type " + typeCode(typ, code))
}

// NotICMPv6Type negates ICMPv6Type.
func (m Match) NotICMPv6Type(typ, code int) Match {
	return m.add("-m icmp6 ! --icmpv6-type " + typeCode(typ, code))
}

func typeCode(typ, code int) string {
	if code < 0 {
		return strconv.Itoa(typ)
	}
	return strconv.Itoa(typ) + "/" + strconv.Itoa(code)
}

// ConntrackState matches conntrack states ("RELATED,ESTABLISHED", "INVALID", "DNAT").
func (m Match) ConntrackState(states string) Match { return m.add("-m conntrack --ctstate " + states) }

// NotConntrackState negates ConntrackState.
func (m Match) NotConntrackState(states string) Match {
	return m.add("-m conntrack ! --ctstate " + states)
}

// MarkSet matches packets whose mark has all bits of mark set.
func (m Match) MarkSet(mark uint32) Match {
	return m.add(fmt.Sprintf("-m mark --mark %#x/%#x", mark, mark))
}

// MarkClear matches packets whose mark has all bits of mask clear.
func (m Match) MarkClear(mask uint32) Match { return m.add(fmt.Sprintf("-m mark --mark 0/%#x", mask)) }

// MarkNotClear matches packets with any bit of mask set.
func (m Match) MarkNotClear(mask uint32) Match {
	return m.add(fmt.Sprintf("-m mark ! --mark 0/%#x", mask))
}

// SrcAddrTypeLocal matches a local source address; limitIfaceOut limits the
// check to the output interface; not negates it.
func (m Match) SrcAddrTypeLocal(not, limitIfaceOut bool) Match {
	s := "-m addrtype --src-type LOCAL"
	if not {
		s = "-m addrtype ! --src-type LOCAL"
	}
	if limitIfaceOut {
		s += " --limit-iface-out"
	}
	return m.add(s)
}

// DestAddrTypeLocal matches a local destination address.
func (m Match) DestAddrTypeLocal() Match { return m.add("-m addrtype --dst-type LOCAL") }

// Limit matches at most rate packets ("10/second") with the given burst
// (0: iptables' default), as Calico's LogActionRateLimit.
func (m Match) Limit(rate string, burst int) Match {
	if burst == 0 {
		return m.add("-m limit --limit " + rate)
	}
	return m.add("-m limit --limit " + rate + " --limit-burst " + strconv.Itoa(burst))
}

// RPFCheckFailed matches packets that fail a strict reverse-path check.
func (m Match) RPFCheckFailed() Match { return m.add("-m rpfilter --invert --validmark") }

// Action is an iptables target.
type Action interface {
	// Render returns the target fragment, e.g. "--jump ACCEPT".
	Render() string
}

type (
	// Accept is -j ACCEPT.
	Accept struct{}
	// Drop is -j DROP.
	Drop struct{}
	// Reject is -j REJECT (ICMP port unreachable; filter table only).
	Reject struct{}
	// Return is -j RETURN.
	Return struct{}
	// NoTrack is -j NOTRACK (raw table).
	NoTrack struct{}
	// Jump jumps to a chain, returning to the next rule.
	Jump struct{ Target string }
	// Goto jumps to a chain whose RETURN skips the rest of this chain.
	Goto struct{ Target string }
	// SetMaskedMark sets the bits of Mask to Mark.
	SetMaskedMark struct{ Mark, Mask uint32 }
	// ClearMarkBits clears the bits of Mask.
	ClearMarkBits struct{ Mask uint32 }
	// Log logs with a prefix at level 5.
	Log struct{ Prefix string }
	// Masquerade is -j MASQUERADE, optionally limited to source ports
	// ToPorts ("32768-65535") and --random-fully.
	Masquerade struct {
		ToPorts     string
		RandomFully bool
	}
	// SNAT rewrites the source address (To may carry ports: "1.2.3.4:1-2").
	SNAT struct {
		To          string
		RandomFully bool
	}
	// DNAT rewrites the destination address.
	DNAT struct{ To string }
)

// Render implements Action.
func (Accept) Render() string { return "--jump ACCEPT" }

// Render implements Action.
func (Drop) Render() string { return "--jump DROP" }

// Render implements Action.
func (Reject) Render() string { return "--jump REJECT" }

// Render implements Action.
func (Return) Render() string { return "--jump RETURN" }

// Render implements Action.
func (NoTrack) Render() string { return "--jump NOTRACK" }

// Render implements Action.
func (a Jump) Render() string { return "--jump " + a.Target }

// Render implements Action.
func (a Goto) Render() string { return "--goto " + a.Target }

// Render implements Action.
func (a SetMaskedMark) Render() string {
	return fmt.Sprintf("--jump MARK --set-mark %#x/%#x", a.Mark, a.Mask)
}

// Render implements Action.
func (a ClearMarkBits) Render() string { return fmt.Sprintf("--jump MARK --set-mark 0/%#x", a.Mask) }

// Render implements Action.
func (a Log) Render() string {
	p := escapeComment(a.Prefix) + ": "
	if len(p) > maxLogPrefixLen {
		p = p[:maxLogPrefixLen] // iptables refuses a longer prefix; the kernel would cut it anyway
	}
	return fmt.Sprintf("--jump LOG --log-prefix \"%s\" --log-level 5", p)
}

// maxLogPrefixLen is the longest --log-prefix iptables accepts.
const maxLogPrefixLen = 29

// Render implements Action.
func (a Masquerade) Render() string {
	s := "--jump MASQUERADE"
	if a.ToPorts != "" {
		s += " --to-ports " + a.ToPorts
	}
	if a.RandomFully {
		s += " --random-fully"
	}
	return s
}

// Render implements Action.
func (a SNAT) Render() string {
	s := "--jump SNAT --to-source " + a.To
	if a.RandomFully {
		s += " --random-fully"
	}
	return s
}

// Render implements Action.
func (a DNAT) Render() string { return "--jump DNAT --to-destination " + a.To }

// SetMark sets the bits of mark.
func SetMark(mark uint32) Action { return SetMaskedMark{Mark: mark, Mask: mark} }

// ClearMark clears the bits of mask.
func ClearMark(mask uint32) Action { return ClearMarkBits{Mask: mask} }

// JumpTarget returns the chain an action jumps or goes to, if any.
func JumpTarget(a Action) (string, bool) {
	switch a := a.(type) {
	case Jump:
		return a.Target, true
	case Goto:
		return a.Target, true
	}
	return "", false
}

var shellUnsafe = regexp.MustCompile(`[^\w @%+=:,./-]`)

const maxCommentLen = 256

// escapeComment replaces characters iptables-restore cannot take inside a
// quoted comment with '_' and truncates to iptables' limit.
func escapeComment(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		if !commentSafe(s[i]) {
			safe = false
			break
		}
	}
	if !safe {
		s = shellUnsafe.ReplaceAllString(s, "_")
	}
	if len(s) > maxCommentLen {
		s = s[:maxCommentLen]
	}
	return s
}

// commentSafe matches the complement of shellUnsafe for ASCII.
func commentSafe(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("_ @%+=:,./-", c) >= 0
}

// body renders everything after "-A <chain> <prefix>": comments, match and
// action, space separated.
func (r *Rule) body() string {
	var b strings.Builder
	for _, c := range r.Comment {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`-m comment --comment "`)
		b.WriteString(escapeComment(c))
		b.WriteByte('"')
	}
	if len(r.Match) > 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.Match.Render())
	}
	if r.Action != nil {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.Action.Render())
	}
	return b.String()
}

// String renders the rule as it follows "-A <chain> <hash comment>" in
// iptables-restore input: comments, match, action.
func (r Rule) String() string { return r.body() }
