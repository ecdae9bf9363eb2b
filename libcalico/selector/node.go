package selector

import (
	"strings"
)

// op is the kind of a node.
type op uint8

const (
	opAll op = iota
	opGlobal
	opAnd
	opOr
	opNot
	opHas
	opEq
	opNe
	opIn
	opNotIn
	opContains
	opStartsWith
	opEndsWith
)

// setMapMin is the set size from which "in" uses a map instead of a scan.
const setMapMin = 8

// node is one term of a parsed selector. Only the fields its op needs are
// set.
type node struct {
	op   op
	key  string              // leaf ops
	val  string              // ==, !=, contains, starts with, ends with
	vals []string            // in, not in: sorted, no duplicates
	set  map[string]struct{} // in, not in: vals as a set, when large
	kids []*node             // and, or: two or more; not: exactly one
}

// negate returns !n, folding a double negation.
func negate(n *node) *node {
	if n.op == opNot {
		return n.kids[0]
	}
	return &node{op: opNot, kids: []*node{n}}
}

// evalMap evaluates n against a map. It does not allocate.
func (n *node) evalMap(m map[string]string) bool {
	switch n.op {
	case opAll, opGlobal:
		return true
	case opAnd:
		for _, k := range n.kids {
			if !k.evalMap(m) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range n.kids {
			if k.evalMap(m) {
				return true
			}
		}
		return false
	case opNot:
		return !n.kids[0].evalMap(m)
	}
	v, ok := m[n.key]
	return n.leaf(v, ok)
}

// evalLabels is evalMap for a Labels source.
func (n *node) evalLabels(l Labels) bool {
	switch n.op {
	case opAll, opGlobal:
		return true
	case opAnd:
		for _, k := range n.kids {
			if !k.evalLabels(l) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range n.kids {
			if k.evalLabels(l) {
				return true
			}
		}
		return false
	case opNot:
		return !n.kids[0].evalLabels(l)
	}
	v, ok := l.Get(n.key)
	return n.leaf(v, ok)
}

// leaf evaluates a leaf op given the label's value and presence.
func (n *node) leaf(v string, ok bool) bool {
	switch n.op {
	case opHas:
		return ok
	case opEq:
		return ok && v == n.val
	case opNe:
		return !ok || v != n.val
	case opIn:
		return ok && n.contains(v)
	case opNotIn:
		return !ok || !n.contains(v)
	case opContains:
		return ok && strings.Contains(v, n.val)
	case opStartsWith:
		return ok && strings.HasPrefix(v, n.val)
	case opEndsWith:
		return ok && strings.HasSuffix(v, n.val)
	}
	return false
}

// contains reports whether v is in an in/not-in node's set.
func (n *node) contains(v string) bool {
	if n.set != nil {
		_, ok := n.set[v]
		return ok
	}
	for _, s := range n.vals {
		if s == v {
			return true
		}
	}
	return false
}

// binaryOps maps and/or/comparison ops to their canonical spelling.
var binaryOps = [...]string{
	opAnd:        " && ",
	opOr:         " || ",
	opEq:         " == ",
	opNe:         " != ",
	opIn:         " in ",
	opNotIn:      " not in ",
	opContains:   " contains ",
	opStartsWith: " starts with ",
	opEndsWith:   " ends with ",
}

// write appends Calico's canonical form of n to b.
func (n *node) write(b *strings.Builder) {
	switch n.op {
	case opAll:
		b.WriteString("all()")
	case opGlobal:
		b.WriteString("global()")
	case opHas:
		b.WriteString("has(")
		b.WriteString(n.key)
		b.WriteByte(')')
	case opNot:
		b.WriteByte('!')
		n.kids[0].write(b)
	case opAnd, opOr:
		b.WriteByte('(')
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(binaryOps[n.op])
			}
			k.write(b)
		}
		b.WriteByte(')')
	case opIn, opNotIn:
		b.WriteString(n.key)
		b.WriteString(binaryOps[n.op])
		b.WriteByte('{')
		for i, v := range n.vals {
			if i > 0 {
				b.WriteString(", ")
			}
			writeQuoted(b, v)
		}
		b.WriteByte('}')
	default:
		b.WriteString(n.key)
		b.WriteString(binaryOps[n.op])
		writeQuoted(b, n.val)
	}
}

// writeQuoted quotes v with " unless it contains one. A parsed value never
// holds both quote characters, since there are no escapes.
func writeQuoted(b *strings.Builder, v string) {
	q := byte('"')
	if strings.IndexByte(v, '"') >= 0 {
		q = '\''
	}
	b.WriteByte(q)
	b.WriteString(v)
	b.WriteByte(q)
}
