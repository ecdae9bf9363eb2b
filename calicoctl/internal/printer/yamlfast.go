package printer

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// fastYAML renders obj exactly as sigs.k8s.io/yaml.Marshal (go-yaml v2)
// would, several times faster: it marshals obj to JSON, decodes that into
// a tree, and writes go-yaml's block style itself. It reports ok=false
// when the tree holds something whose rendering it does not reproduce
// with certainty (non-ASCII or multi-line strings, lines long enough to
// fold, very long keys); callers then fall back to yaml.Marshal.
func fastYAML(obj any) (out []byte, ok bool) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, false
	}
	var e yamlEmitter
	e.buf.Grow(len(data) + len(data)/4)
	switch t := tree.(type) {
	case map[string]any:
		if len(t) == 0 {
			e.buf.WriteString("{}\n")
		} else if !e.mapping(t, 0, "") {
			return nil, false
		}
	case []any:
		if len(t) == 0 {
			e.buf.WriteString("[]\n")
		} else if !e.sequence(t, 0, "") {
			return nil, false
		}
	default:
		s, ok := scalar(t, 0)
		if !ok {
			return nil, false
		}
		e.buf.WriteString(s + "\n")
	}
	return e.buf.Bytes(), true
}

type yamlEmitter struct {
	buf bytes.Buffer
}

// mapping writes a non-empty mapping at indent; first, when set, replaces
// the indentation of the first line ("- " of a sequence item).
func (e *yamlEmitter) mapping(m map[string]any, indent int, first string) bool {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, keyCompare)
	if !consistentOrder(keys) {
		return false
	}
	pad := strings.Repeat(" ", indent)
	for i, k := range keys {
		lead := pad
		if i == 0 && first != "" {
			lead = first
		}
		if len(k) > 128 {
			return false // go-yaml writes long keys as "? key"
		}
		ks, ok := str(k, indent)
		if !ok {
			return false
		}
		e.buf.WriteString(lead)
		e.buf.WriteString(ks)
		switch v := m[k].(type) {
		case map[string]any:
			if len(v) == 0 {
				e.buf.WriteString(": {}\n")
				continue
			}
			e.buf.WriteString(":\n")
			if !e.mapping(v, indent+2, "") {
				return false
			}
		case []any:
			if len(v) == 0 {
				e.buf.WriteString(": []\n")
				continue
			}
			e.buf.WriteString(":\n")
			if !e.sequence(v, indent, "") {
				return false
			}
		default:
			s, ok := scalar(v, indent+len(ks)+2)
			if !ok {
				return false
			}
			e.buf.WriteString(": ")
			e.buf.WriteString(s)
			e.buf.WriteByte('\n')
		}
	}
	return true
}

// sequence writes a non-empty sequence whose dashes sit at indent.
func (e *yamlEmitter) sequence(items []any, indent int, first string) bool {
	pad := strings.Repeat(" ", indent)
	for i, it := range items {
		lead := pad + "- "
		if i == 0 && first != "" {
			lead = first + "- "
		}
		switch v := it.(type) {
		case map[string]any:
			if len(v) == 0 {
				e.buf.WriteString(lead + "{}\n")
				continue
			}
			if !e.mapping(v, indent+2, lead) {
				return false
			}
		case []any:
			if len(v) == 0 {
				e.buf.WriteString(lead + "[]\n")
				continue
			}
			if !e.sequence(v, indent+2, lead) {
				return false
			}
		default:
			s, ok := scalar(v, indent+2)
			if !ok {
				return false
			}
			e.buf.WriteString(lead)
			e.buf.WriteString(s)
			e.buf.WriteByte('\n')
		}
	}
	return true
}

// scalar renders a JSON scalar starting at column col.
func scalar(v any, col int) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "null", true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	case json.Number:
		return number(string(v))
	case string:
		return str(v, col)
	}
	return "", false
}

var yamlStyleFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// number renders a JSON number as go-yaml resolves and re-emits it.
func number(t string) (string, bool) {
	if i, err := strconv.ParseInt(t, 0, 64); err == nil {
		return strconv.FormatInt(i, 10), true
	}
	if u, err := strconv.ParseUint(t, 0, 64); err == nil {
		return strconv.FormatUint(u, 10), true
	}
	if !yamlStyleFloat.MatchString(t) {
		return "", false
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", false
	}
	return strconv.FormatFloat(f, 'g', -1, 64), true
}

// str renders a string as go-yaml does in block context, starting at
// column col, or reports that it cannot be sure.
func str(s string, col int) (string, bool) {
	if s == "" {
		return `""`, true
	}
	spaces := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", false // multi-line, control or non-ASCII: not handled
		}
		if c == ' ' {
			spaces = true
		}
	}
	var out string
	switch {
	case !resolvesToString(s) || isBase60Float(s):
		out = `"` + quoteEscaper.Replace(s) + `"`
	case plainAllowed(s):
		out = s
	default:
		out = "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	// go-yaml folds scalars at a space once the line passes 80 columns.
	if spaces && col+len(out) > 80 {
		return "", false
	}
	return out, true
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

var resolveWords = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "true": true, "True": true, "TRUE": true,
	"on": true, "On": true, "ON": true, "n": true, "N": true, "no": true, "No": true, "NO": true,
	"false": true, "False": true, "FALSE": true, "off": true, "Off": true, "OFF": true,
	"~": true, "null": true, "Null": true, "NULL": true, ".nan": true, ".NaN": true, ".NAN": true,
	".inf": true, ".Inf": true, ".INF": true, "+.inf": true, "+.Inf": true, "+.INF": true,
	"-.inf": true, "-.Inf": true, "-.INF": true, "<<": true,
}

// resolvesToString reports whether go-yaml reads s, unquoted, as a string.
func resolvesToString(s string) bool {
	switch c := s[0]; {
	case strings.IndexByte("yYnNtTfFoO~", c) >= 0:
		return !resolveWords[s]
	case c == '.':
		if resolveWords[s] {
			return false
		}
		_, err := strconv.ParseFloat(s, 64)
		return err != nil
	case c == '+' || c == '-' || c >= '0' && c <= '9':
		if resolveWords[s] || isTimestamp(s) {
			return false
		}
		plain := strings.ReplaceAll(s, "_", "")
		if _, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return false
		}
		if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return false
		}
		if yamlStyleFloat.MatchString(plain) {
			if _, err := strconv.ParseFloat(plain, 64); err == nil {
				return false
			}
		}
		if b, ok := strings.CutPrefix(plain, "0b"); ok {
			if _, err := strconv.ParseUint(b, 2, 64); err == nil {
				return false
			}
		} else if b, ok := strings.CutPrefix(plain, "-0b"); ok {
			if _, err := strconv.ParseInt("-"+b, 2, 64); err == nil {
				return false
			}
		}
	}
	return true
}

var timestampFormats = []string{"2006-1-2T15:4:5.999999999Z07:00", "2006-1-2t15:4:5.999999999Z07:00", "2006-1-2 15:4:5.999999999", "2006-1-2"}

// isTimestamp is go-yaml's parseTimestamp test.
func isTimestamp(s string) bool {
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, f := range timestampFormats {
		if _, err := timeParse(f, s); err == nil {
			return true
		}
	}
	return false
}

var base60float = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)

func isBase60Float(s string) bool {
	c := s[0]
	if !(c == '+' || c == '-' || c >= '0' && c <= '9') || strings.IndexByte(s, ':') < 0 {
		return false
	}
	return base60float.MatchString(s)
}

// plainAllowed is go-yaml's analysis of whether a printable-ASCII string
// may be written plain in block context.
func plainAllowed(s string) bool {
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		return false
	}
	for i := 0; i < len(s); i++ {
		followedBySpace := i+1 >= len(s) || s[i+1] == ' '
		switch c := s[i]; {
		case i == 0 && strings.IndexByte("#,[]{}&*!|>'\"%@`", c) >= 0:
			return false
		case c == ':' && followedBySpace, i == 0 && c == '?' && followedBySpace, i == 0 && c == '-' && followedBySpace:
			return false
		case c == '#' && i > 0 && s[i-1] == ' ':
			return false
		}
	}
	return true
}

// keyCompare is go-yaml's ordering of string map keys: letters before
// other characters, and runs of digits compared as numbers.
func keyCompare(a, b string) int {
	if a == b {
		return 0
	}
	if keyLess(a, b) {
		return -1
	}
	return 1
}

// consistentOrder reports whether go-yaml's key order is a total order on
// sorted keys. With digits in keys it can be cyclic ("123" < "1e3" <
// "9x" < "123"), and then go-yaml's output depends on map iteration order,
// so the fast path declines.
func consistentOrder(sorted []string) bool {
	if !slices.ContainsFunc(sorted, func(k string) bool { return strings.ContainsAny(k, "0123456789") }) {
		return true
	}
	for i := range sorted {
		for j := i + 1; j < len(sorted); j++ {
			if keyLess(sorted[j], sorted[i]) {
				return false
			}
		}
	}
	return true
}

func keyLess(as, bs string) bool {
	ar, br := []rune(as), []rune(bs)
	for i := 0; i < len(ar) && i < len(br); i++ {
		if ar[i] == br[i] {
			continue
		}
		al := unicode.IsLetter(ar[i])
		bl := unicode.IsLetter(br[i])
		if al && bl {
			return ar[i] < br[i]
		}
		if al || bl {
			return bl
		}
		var ai, bi int
		var an, bn int64
		if ar[i] == '0' || br[i] == '0' {
			for j := i - 1; j >= 0 && unicode.IsDigit(ar[j]); j-- {
				if ar[j] != '0' {
					an = 1
					bn = 1
					break
				}
			}
		}
		for ai = i; ai < len(ar) && unicode.IsDigit(ar[ai]); ai++ {
			an = an*10 + int64(ar[ai]-'0')
		}
		for bi = i; bi < len(br) && unicode.IsDigit(br[bi]); bi++ {
			bn = bn*10 + int64(br[bi]-'0')
		}
		if an != bn {
			return an < bn
		}
		if ai != bi {
			return ai < bi
		}
		return ar[i] < br[i]
	}
	return len(ar) < len(br)
}

var timeParse = time.Parse
