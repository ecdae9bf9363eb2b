package iptables

import (
	"bufio"
	"bytes"
	"regexp"
	"strings"
)

// kernelRule is one rule as iptables-save showed it.
type kernelRule struct {
	// hash from the rule's "cali:" comment, "" when it has none.
	hash string
	// ours: the rule has a hash or jumps to an owned chain.
	ours bool
	// spec is the rule after "-A <chain> ", kept for our rules in chains we
	// do not own, so they can be deleted by specification.
	spec string
}

// kernelChain is one chain as iptables-save showed it.
type kernelChain struct {
	owned bool // name has the owned prefix
	rules []kernelRule
}

// kernelTable maps chain name to chain.
type kernelTable map[string]*kernelChain

var (
	hashRE = regexp.MustCompile(`--comment "?` + RuleHashPrefix + `([A-Za-z0-9_-]{16})"?`)
)

// parseSave reads iptables-save output into one kernelTable per table.
// Chains whose name starts with one of owned are treated as entirely ours.
func parseSave(out []byte, owned []string) map[string]kernelTable {
	tables := map[string]kernelTable{}
	var cur kernelTable
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || line[0] == '#':
			continue
		case line[0] == '*':
			cur = kernelTable{}
			tables[line[1:]] = cur
		case cur == nil:
			continue
		case line[0] == ':':
			name, _, _ := strings.Cut(line[1:], " ")
			if cur[name] == nil {
				cur[name] = &kernelChain{owned: hasAnyPrefix(name, owned)}
			}
		case strings.HasPrefix(line, "-A "):
			rest := line[3:]
			name, spec, _ := strings.Cut(rest, " ")
			ch := cur[name]
			if ch == nil {
				ch = &kernelChain{owned: hasAnyPrefix(name, owned)}
				cur[name] = ch
			}
			r := kernelRule{}
			if m := hashRE.FindStringSubmatch(spec); m != nil {
				r.hash = m[1]
				r.ours = true
			} else if !ch.owned && jumpsToOwned(spec, owned) {
				r.ours = true
			}
			if r.ours && !ch.owned {
				r.spec = spec
			}
			ch.rules = append(ch.rules, r)
		}
	}
	return tables
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// jumpsToOwned reports whether a rule's target is an owned chain.
func jumpsToOwned(spec string, owned []string) bool {
	fields := strings.Fields(spec)
	for i := 0; i+1 < len(fields); i++ {
		switch fields[i] {
		case "-j", "--jump", "-g", "--goto":
			return hasAnyPrefix(fields[i+1], owned)
		}
	}
	return false
}
