// Package selector parses and evaluates Calico label selectors.
//
// A selector is parsed once with Parse and can then be evaluated against
// many label sets without allocating. The language follows Calico's:
//
//	all()  global()  has(k)  !has(k)
//	k == 'v'  k != 'v'  k in {'a', 'b'}  k not in {'a'}
//	k contains 's'  k starts with 's'  k ends with 's'
//	!expr  expr && expr  expr || expr  (expr)
//
// Values are quoted with ' or " and have no escapes. && binds tighter than
// ||. != and "not in" match when the label is absent. The empty (or
// blank) selector is all(). Only space and tab count as whitespace.
package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Labels is a read-only label set.
type Labels interface {
	Get(key string) (string, bool)
}

// Selector is a parsed selector, safe for concurrent use.
type Selector interface {
	// Evaluate reports whether the selector matches labels.
	Evaluate(labels map[string]string) bool
	// EvaluateLabels is Evaluate for any label source; nil means no labels.
	EvaluateLabels(labels Labels) bool
	// String returns the canonical form, which re-parses to an equal
	// selector.
	String() string
	// UniqueID returns a stable ID derived from the canonical form, so
	// equivalent spellings share an ID. It uses Calico's scheme:
	// "s:" + base64url(sha224("s:" + String())).
	UniqueID() string
}

const (
	// MaxLength is the longest selector, in bytes, that Parse accepts.
	MaxLength = 64 << 10
	// MaxDepth is the deepest nesting of parentheses that Parse accepts.
	MaxDepth = 64
)

// ParseError describes why a selector failed to parse.
type ParseError struct {
	Input string // the selector as given
	Pos   int    // 0-based byte offset of the problem in Input
	Msg   string
}

// Error returns e.g. `selector "a == " position 5: expected a quoted value`.
// Very long inputs are shortened.
func (e *ParseError) Error() string {
	in := e.Input
	if len(in) > 100 {
		in = in[:100] + "..."
	}
	return fmt.Sprintf("selector %q position %d: %s", in, e.Pos, e.Msg)
}

// Parse parses s; an empty or blank s selects everything. Errors are of
// type *ParseError.
func Parse(s string) (Selector, error) {
	root, perr := parse(s)
	if perr != nil {
		return nil, perr
	}
	// Build "s:" + canonical once: it is both the hash input and, minus
	// the prefix, the canonical string.
	var b strings.Builder
	b.Grow(len(idPrefix) + len(s) + 16)
	b.WriteString(idPrefix)
	root.write(&b)
	full := b.String()
	return &selector{root: root, str: full[len(idPrefix):], id: uniqueID(full)}, nil
}

// MustParse is Parse that panics on error, for tests and constants.
func MustParse(s string) Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// selector is the Selector implementation. All fields are set by Parse and
// never modified, so it is safe for concurrent use.
type selector struct {
	root *node
	str  string
	id   string
}

func (s *selector) Evaluate(labels map[string]string) bool {
	return s.root.evalMap(labels)
}

func (s *selector) EvaluateLabels(labels Labels) bool {
	if labels == nil {
		return s.root.evalMap(nil)
	}
	return s.root.evalLabels(labels)
}

func (s *selector) String() string   { return s.str }
func (s *selector) UniqueID() string { return s.id }

const idPrefix = "s:"

// uniqueID returns Calico's ID for a selector, given "s:" + its canonical
// form: "s:" + base64url(sha224("s:" + canonical)).
func uniqueID(prefixed string) string {
	sum := sha256.Sum224([]byte(prefixed))
	var buf [len(idPrefix) + 38]byte // 38 = unpadded base64 of 28 bytes
	copy(buf[:], idPrefix)
	base64.RawURLEncoding.Encode(buf[len(idPrefix):], sum[:])
	return string(buf[:])
}
