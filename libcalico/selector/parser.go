package selector

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Grammar (whitespace is space or tab, allowed between any two tokens):
//
//	selector   = [ or ]
//	or         = and { "||" and }
//	and        = term { "&&" term }
//	term       = { "!" } ( "(" or ")" | "all(" ")" | "global(" ")"
//	             | "has(" key ")" | key comparison )
//	comparison = ( "==" | "!=" | "contains" | "starts" "with" | "ends" "with" ) quoted
//	           | ( "in" | "not" "in" ) "{" [ quoted { "," quoted } [ "," ] ] "}"
//	key        = 1*( ALPHA | DIGIT | "_" | "." | "/" | "-" )
//	quoted     = "'" *(not "'") "'" | `"` *(not `"`) `"`
//
// As in Calico, keywords after a key need no word boundary ("startswith"
// and "notin" are accepted) and leading "!"s collapse to at most one.

// parser is a recursive-descent parser working directly on the input.
type parser struct {
	in    string
	pos   int
	depth int
}

// parse parses a whole selector.
func parse(s string) (*node, *ParseError) {
	p := &parser{in: s}
	if len(s) > MaxLength {
		return nil, p.errAt(MaxLength, fmt.Sprintf("selector longer than %d bytes", MaxLength))
	}
	p.skipSpace()
	if p.eof() {
		return &node{op: opAll}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.eof() {
		return nil, p.fail("expected '&&', '||' or end of selector")
	}
	return n, nil
}

func (p *parser) eof() bool { return p.pos >= len(p.in) }

func (p *parser) skipSpace() {
	for p.pos < len(p.in) && (p.in[p.pos] == ' ' || p.in[p.pos] == '\t') {
		p.pos++
	}
}

// accept consumes tok if the input continues with it.
func (p *parser) accept(tok string) bool {
	if strings.HasPrefix(p.in[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *parser) errAt(pos int, msg string) *ParseError {
	return &ParseError{Input: p.in, Pos: pos, Msg: msg}
}

// fail reports that msg was expected at the current position, naming the
// character found there if it can never appear outside quotes.
func (p *parser) fail(msg string) *ParseError {
	if !p.eof() && !inAlphabet(p.in[p.pos]) {
		r, _ := utf8.DecodeRuneInString(p.in[p.pos:])
		msg = fmt.Sprintf("invalid character %q: %s", r, msg)
	}
	return p.errAt(p.pos, msg)
}

// parseOr parses and-expressions joined by "||".
func (p *parser) parseOr() (*node, *ParseError) {
	return p.parseList(opOr, "||", p.parseAnd)
}

// parseAnd parses terms joined by "&&".
func (p *parser) parseAnd() (*node, *ParseError) {
	return p.parseList(opAnd, "&&", p.parseTerm)
}

// parseList parses one or more sub-expressions separated by sep. A single
// sub-expression is returned as is.
func (p *parser) parseList(o op, sep string, sub func() (*node, *ParseError)) (*node, *ParseError) {
	first, err := sub()
	if err != nil {
		return nil, err
	}
	var kids []*node
	for {
		p.skipSpace()
		if !p.accept(sep) {
			break
		}
		n, err := sub()
		if err != nil {
			return nil, err
		}
		if kids == nil {
			kids = []*node{first}
		}
		kids = append(kids, n)
	}
	if kids == nil {
		return first, nil
	}
	return &node{op: o, kids: kids}, nil
}

// parseTerm parses an optionally negated operand.
func (p *parser) parseTerm() (*node, *ParseError) {
	neg := false
	for {
		p.skipSpace()
		if strings.HasPrefix(p.in[p.pos:], "!") && !strings.HasPrefix(p.in[p.pos:], "!=") {
			neg = !neg
			p.pos++
			continue
		}
		break
	}
	n, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	if neg {
		n = negate(n)
	}
	return n, nil
}

func (p *parser) parseOperand() (*node, *ParseError) {
	switch {
	case p.eof():
		return nil, p.fail("expected a selector expression")
	case p.in[p.pos] == '(':
		if p.depth >= MaxDepth {
			return nil, p.errAt(p.pos, fmt.Sprintf("parentheses nested deeper than %d levels", MaxDepth))
		}
		p.depth++
		p.pos++
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if !p.accept(")") {
			return nil, p.fail("expected ')'")
		}
		p.depth--
		return n, nil
	case p.accept("all("):
		return p.finishCall(&node{op: opAll})
	case p.accept("global("):
		return p.finishCall(&node{op: opGlobal})
	case p.accept("has("):
		p.skipSpace()
		key := p.scanKey()
		if key == "" {
			return nil, p.fail("expected a label key")
		}
		return p.finishCall(&node{op: opHas, key: key})
	}
	key := p.scanKey()
	if key == "" {
		return nil, p.fail("expected a selector expression")
	}
	return p.parseComparison(key)
}

// finishCall consumes the ")" that closes all(, global( or has(key.
func (p *parser) finishCall(n *node) (*node, *ParseError) {
	p.skipSpace()
	if !p.accept(")") {
		return nil, p.fail("expected ')'")
	}
	return n, nil
}

// scanKey consumes and returns a label key, or "" if there is none.
func (p *parser) scanKey() string {
	start := p.pos
	for p.pos < len(p.in) && isKeyChar(p.in[p.pos]) {
		p.pos++
	}
	return p.in[start:p.pos]
}

// comparisons lists the operators that may follow a key, in match order.
// Multi-word operators allow optional whitespace between their words.
var comparisons = []struct {
	words []string
	op    op
}{
	{[]string{"=="}, opEq},
	{[]string{"!="}, opNe},
	{[]string{"contains"}, opContains},
	{[]string{"starts", "with"}, opStartsWith},
	{[]string{"ends", "with"}, opEndsWith},
	{[]string{"not", "in"}, opNotIn},
	{[]string{"in"}, opIn},
}

const expectedOperator = "expected an operator (==, !=, in, not in, contains, starts with or ends with)"

// parseComparison parses the operator and operand after key.
func (p *parser) parseComparison(key string) (*node, *ParseError) {
	p.skipSpace()
	var n *node
	for _, c := range comparisons {
		if !p.accept(c.words[0]) {
			continue
		}
		for _, w := range c.words[1:] {
			p.skipSpace()
			if !p.accept(w) {
				return nil, p.fail(fmt.Sprintf("expected %q", w))
			}
		}
		n = &node{op: c.op, key: key}
		break
	}
	if n == nil {
		return nil, p.fail(expectedOperator)
	}
	p.skipSpace()
	if n.op == opIn || n.op == opNotIn {
		return n, p.parseSet(n)
	}
	v, err := p.parseQuoted("expected a quoted value")
	if err != nil {
		return nil, err
	}
	n.val = v
	return n, nil
}

// parseQuoted consumes a quoted value; expected is the error if there is
// no opening quote.
func (p *parser) parseQuoted(expected string) (string, *ParseError) {
	if p.eof() || (p.in[p.pos] != '"' && p.in[p.pos] != '\'') {
		return "", p.fail(expected)
	}
	q := p.in[p.pos]
	end := strings.IndexByte(p.in[p.pos+1:], q)
	if end < 0 {
		return "", p.errAt(p.pos, "unterminated quoted value")
	}
	v := p.in[p.pos+1 : p.pos+1+end]
	p.pos += end + 2
	return v, nil
}

// parseSet parses "{...}" into an in/not-in node.
func (p *parser) parseSet(n *node) *ParseError {
	if !p.accept("{") {
		return p.fail("expected '{'")
	}
	var vals []string
	for {
		p.skipSpace()
		if p.accept("}") {
			break
		}
		v, err := p.parseQuoted("expected a quoted value or '}'")
		if err != nil {
			return err
		}
		vals = append(vals, v)
		p.skipSpace()
		if p.accept("}") {
			break
		}
		if !p.accept(",") {
			return p.fail("expected ',' or '}'")
		}
	}
	slices.Sort(vals)
	n.vals = slices.Compact(vals)
	if len(n.vals) >= setMapMin {
		n.set = make(map[string]struct{}, len(n.vals))
		for _, v := range n.vals {
			n.set[v] = struct{}{}
		}
	}
	return nil
}

func isKeyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}

// inAlphabet reports whether c can appear outside quotes in some selector.
func inAlphabet(c byte) bool {
	return isKeyChar(c) || strings.IndexByte(" \t()!=&|{},'\"", c) >= 0
}
