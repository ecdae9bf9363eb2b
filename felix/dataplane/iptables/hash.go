package iptables

import (
	"crypto/sha256"
	"encoding/base64"
)

const (
	// MaxChainNameLength is the longest chain name we generate; iptables
	// allows 28 characters.
	MaxChainNameLength = 28
	// HashLength is the length of a rule hash in its "cali:" comment:
	// 16 base64 characters, 96 bits.
	HashLength = 16
	// RuleHashPrefix starts the comment that carries a rule's hash.
	RuleHashPrefix = "cali:"

	shortenedMarker = "_"
)

// LengthLimitedName returns prefix+suffix when that fits in maxLen;
// otherwise prefix, "_" and as much of the base64 SHA-256 of suffix as
// fits. A suffix that already starts with "_" and exactly fills maxLen is
// hashed too, so a shortened name never collides with a literal one. This
// is Calico's scheme for chain and IP set names.
func LengthLimitedName(prefix, suffix string, maxLen int) string {
	if suffix == "" {
		suffix = shortenedMarker
	}
	total := len(prefix) + len(suffix)
	if total > maxLen || (total == maxLen && suffix[:1] == shortenedMarker) {
		sum := sha256.Sum256([]byte(suffix))
		h := base64.RawURLEncoding.EncodeToString(sum[:])
		n := maxLen - 1 - len(prefix)
		if n <= 0 {
			panic("iptables: name prefix " + prefix + " leaves no room for a hash")
		}
		return prefix + shortenedMarker + h[:n]
	}
	return prefix + suffix
}

// ChainName limits a chain name built from prefix and suffix to 28 characters.
func ChainName(prefix, suffix string) string {
	return LengthLimitedName(prefix, suffix, MaxChainNameLength)
}

// ruleHashes returns the hash of each rule of a chain, given the rendered
// bodies of its rules. Each hash chains in the previous one (starting from
// the hash of the chain name), so a rule's hash depends on its chain, its
// content and every rule before it: the same rule at another position or
// in another chain gets another hash.
func ruleHashes(chain string, bodies []string) []string {
	h := sha256.New224()
	h.Write([]byte(chain))
	prev := h.Sum(nil)
	out := make([]string, len(bodies))
	buf := make([]byte, 0, 256)
	for i, body := range bodies {
		h.Reset()
		h.Write(prev)
		buf = append(buf[:0], "-A "...)
		buf = append(buf, chain...)
		buf = append(buf, " HASH"...)
		if body != "" {
			buf = append(buf, ' ')
			buf = append(buf, body...)
		}
		h.Write(buf)
		prev = h.Sum(prev[:0])
		out[i] = base64.RawURLEncoding.EncodeToString(prev)[:HashLength]
	}
	return out
}

// RuleHashes returns the hashes of the chain's rules as they appear in
// their "cali:" comments.
func (c *Chain) RuleHashes() []string {
	bodies := make([]string, len(c.Rules))
	for i := range c.Rules {
		bodies[i] = c.Rules[i].body()
	}
	return ruleHashes(c.Name, bodies)
}
