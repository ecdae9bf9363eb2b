package calc

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/selector"
)

// Label keys and prefixes Calico uses to let selectors see namespaces and
// service accounts.
const (
	labelServiceAccount = "projectcalico.org/serviceaccount"
	labelName           = "projectcalico.org/name"
	nsLabelPrefix       = "pcns."
	saLabelPrefix       = "pcsa."
	nsProfilePrefix     = "kns."
	saProfilePrefix     = "ksa."
)

// entitySel is a selector as Calico's rule conversion forms it: an
// endpoint selector, optionally narrowed to a namespace (by name or by a
// namespace selector) and to service accounts. Calico writes the parts
// into one string with "pcns."/"pcsa." prefixed keys; keeping them apart
// gives the same matches without rewriting selector text.
type entitySel struct {
	// nsMode says how the namespace is constrained.
	nsMode    nsMode
	namespace string            // nsOwn
	nsSel     selector.Selector // nsSelector, evaluated on "pcns." labels
	saSel     selector.Selector // nil = no service-account selector
	saNames   []string          // sorted; nil = no names constraint
	sel       selector.Selector // nil = no endpoint selector
	str, id   string
	// hint is a label value every match has, for the index.
	hint kvHint
}

// kvHint says that every item a selector matches has label key set to
// one of vals; the zero value says nothing.
type kvHint struct {
	key  string
	vals []string
}

type nsMode uint8

const (
	nsAny nsMode = iota
	nsOwn
	nsAll    // namespaceSelector all(): anything namespaced
	nsGlobal // namespaceSelector global(): anything not namespaced
	nsSelect
)

// labelView exposes labels under a prefix: Get("env") reads "pcns.env".
type labelView struct {
	m      map[string]string
	prefix string
}

func (v labelView) Get(k string) (string, bool) {
	s, ok := v.m[v.prefix+k]
	return s, ok
}

// matches reports whether an item with the given namespace and
// (effective) labels is selected.
func (e *entitySel) matches(namespace string, labels map[string]string) bool {
	switch e.nsMode {
	case nsOwn:
		if namespace != e.namespace {
			return false
		}
	case nsAll:
		if namespace == "" {
			return false
		}
	case nsGlobal:
		if namespace != "" {
			return false
		}
	case nsSelect:
		if !e.nsSel.EvaluateLabels(labelView{labels, nsLabelPrefix}) {
			return false
		}
	}
	if e.saNames != nil {
		if _, ok := slices.BinarySearch(e.saNames, labels[labelServiceAccount]); !ok {
			return false
		}
	}
	if e.saSel != nil && !e.saSel.EvaluateLabels(labelView{labels, saLabelPrefix}) {
		return false
	}
	return e.sel == nil || e.sel.Evaluate(labels)
}

// newEntitySel builds and names a selector. The ID of a plain endpoint
// selector is the selector's own UniqueID, as Calico's.
func newEntitySel(mode nsMode, namespace string, nsSel, saSel selector.Selector, saNames []string, sel selector.Selector) *entitySel {
	e := &entitySel{nsMode: mode, namespace: namespace, nsSel: nsSel, saSel: saSel, saNames: saNames, sel: sel}
	var parts []string
	switch mode {
	case nsOwn:
		parts = append(parts, "ns=="+namespace)
	case nsAll:
		parts = append(parts, "ns:all()")
	case nsGlobal:
		parts = append(parts, "ns:global()")
	case nsSelect:
		parts = append(parts, "ns:"+nsSel.String())
	}
	if saNames != nil {
		parts = append(parts, "sa in {"+strings.Join(saNames, ",")+"}")
	}
	if saSel != nil {
		parts = append(parts, "sa:"+saSel.String())
	}
	if sel != nil {
		parts = append(parts, sel.String())
	}
	if sel != nil {
		e.hint = requiredKV(sel.String())
	}
	if e.hint.key == "" && mode == nsOwn {
		e.hint = kvHint{key: v3.LabelNamespace, vals: []string{namespace}}
	}
	e.str = strings.Join(parts, " && ")
	switch {
	case len(parts) == 1 && sel != nil:
		e.id = sel.UniqueID()
	case len(parts) == 0:
		e.str = "all()"
		e.id = selector.MustParse("all()").UniqueID()
	default:
		e.id = hashID("s:", e.str)
	}
	return e
}

// hashID returns prefix + base64url(sha224(prefix + s)), Calico's scheme.
func hashID(prefix, s string) string {
	sum := sha256.Sum224([]byte(prefix + s))
	return prefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// parseOpt parses s, returning nil for "".
func parseOpt(s string) (selector.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	return selector.Parse(s)
}

// ruleEntitySel forms the selector of one side of a rule the way Calico's
// GetEntityRuleSelector does; nil means the side has no selector. ns is
// the policy's namespace ("" for global policies and profiles).
func ruleEntitySel(er *v3.EntityRule, ns string) (*entitySel, error) {
	sel, err := parseOpt(er.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	var saSel selector.Selector
	var saNames []string
	if sa := er.ServiceAccounts; sa != nil {
		if saSel, err = parseOpt(sa.Selector); err != nil {
			return nil, fmt.Errorf("serviceAccounts selector: %w", err)
		}
		if len(sa.Names) > 0 {
			saNames = slices.Clone(sa.Names)
			slices.Sort(saNames)
			saNames = slices.Compact(saNames)
		}
	}
	haveSel := sel != nil || saSel != nil || saNames != nil
	mode, nsSel, err := namespaceMode(er.NamespaceSelector, ns)
	if err != nil {
		return nil, err
	}
	// The namespace narrows the rule only when some selector field is
	// used, NotSelector included.
	if mode == nsOwn && !haveSel && er.NotSelector == "" {
		mode = nsAny
	}
	if mode == nsAny && !haveSel {
		return nil, nil
	}
	return newEntitySel(mode, ns, nsSel, saSel, saNames, sel), nil
}

// namespaceMode interprets a namespaceSelector ("" means the policy's
// own namespace, if any).
func namespaceMode(nsSelector, ns string) (nsMode, selector.Selector, error) {
	nsSel, err := parseOpt(nsSelector)
	if err != nil {
		return nsAny, nil, fmt.Errorf("namespaceSelector: %w", err)
	}
	switch {
	case nsSel != nil && nsSel.String() == "all()":
		return nsAll, nil, nil
	case nsSel != nil && nsSel.String() == "global()":
		return nsGlobal, nil, nil
	case nsSel != nil:
		return nsSelect, nsSel, nil
	case ns != "":
		return nsOwn, nil, nil
	}
	return nsAny, nil, nil
}

// policyEntitySel forms the selector of the endpoints a policy applies to.
func policyEntitySel(sel, nsSelector, saSelector, ns string) (*entitySel, error) {
	s, err := parseOpt(sel)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	if s == nil {
		s = selector.MustParse("all()")
	}
	sa, err := parseOpt(saSelector)
	if err != nil {
		return nil, fmt.Errorf("serviceAccountSelector: %w", err)
	}
	mode, nsSel, err := namespaceMode(nsSelector, ns)
	if err != nil {
		return nil, err
	}
	if ns != "" {
		mode, nsSel = nsOwn, nil // a NetworkPolicy never leaves its namespace
	}
	return newEntitySel(mode, ns, nsSel, sa, nil, s), nil
}

// requiredKV finds, in a selector's canonical form, a top-level conjunct
// k == "v" or k in {"v1", ...}. The canonical form writes an AND as
// "(a && b && ...)" and quotes values with " (or ' when the value holds a
// ").
func requiredKV(canon string) kvHint {
	conj := []string{canon}
	if strings.HasPrefix(canon, "(") && strings.HasSuffix(canon, ")") {
		if parts := splitTop(canon[1:len(canon)-1], " && "); len(parts) > 1 {
			conj = parts
		}
	}
	for _, c := range conj {
		if h, ok := leafKV(c); ok {
			return h
		}
	}
	return kvHint{}
}

// splitTop splits s at sep where sep is outside quotes and brackets.
func splitTop(s, sep string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(' || c == '{':
			depth++
		case c == ')' || c == '}':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], sep):
			out = append(out, s[start:i])
			start = i + len(sep)
			i += len(sep) - 1
		}
	}
	return append(out, s[start:])
}

func leafKV(c string) (kvHint, bool) {
	key, rest, ok := strings.Cut(c, " ")
	if !ok || key == "" || strings.ContainsAny(key, "()!\"'") {
		return kvHint{}, false
	}
	if v, ok := strings.CutPrefix(rest, "== "); ok {
		if val, ok := unquote(v); ok {
			return kvHint{key: key, vals: []string{val}}, true
		}
		return kvHint{}, false
	}
	set, ok := strings.CutPrefix(rest, "in {")
	if !ok || !strings.HasSuffix(set, "}") {
		return kvHint{}, false
	}
	var vals []string
	for _, q := range splitTop(set[:len(set)-1], ", ") {
		val, ok := unquote(q)
		if !ok {
			return kvHint{}, false
		}
		vals = append(vals, val)
	}
	return kvHint{key: key, vals: vals}, len(vals) > 0
}

func unquote(q string) (string, bool) {
	if len(q) < 2 || (q[0] != '"' && q[0] != '\'') || q[len(q)-1] != q[0] {
		return "", false
	}
	v := q[1 : len(q)-1]
	if strings.IndexByte(v, q[0]) >= 0 {
		return "", false
	}
	return v, true
}
