package kubeconv

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// orchestratorTerm is the term every pod selector starts with, so that it
// matches only Kubernetes pods.
const orchestratorTerm = v3.LabelOrchestrator + " == '" + v3.OrchestratorKubernetes + "'"

// podSelector converts a pod selector as Calico does: the orchestrator
// term, then the matchLabels terms sorted by key, then the
// matchExpressions terms in order, joined by " && ". A nil selector gives
// the orchestrator term alone.
func podSelector(s *metav1.LabelSelector) (string, error) {
	terms, err := selectorTerms(s)
	if err != nil {
		return "", err
	}
	return strings.Join(append([]string{orchestratorTerm}, terms...), " && "), nil
}

// namespaceSelector converts a namespace selector as Calico does: nil is
// "" (the policy's own namespace) and a selector with no terms is "all()"
// (every namespace).
func namespaceSelector(s *metav1.LabelSelector) (string, error) {
	if s == nil {
		return "", nil
	}
	if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
		return "all()", nil
	}
	terms, err := selectorTerms(s)
	if err != nil {
		return "", err
	}
	return strings.Join(terms, " && "), nil
}

// selectorTerms returns the Calico terms of s. Keys and values are checked
// as the API server checks them, since Calico quotes them as they are: a
// quote in a value would change the selector's meaning. An operator Calico
// does not know is an error where Calico would drop the term and so select
// more than the Kubernetes selector does.
func selectorTerms(s *metav1.LabelSelector) ([]string, error) {
	if s == nil {
		return nil, nil
	}
	var terms []string
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := s.MatchLabels[k]
		if err := checkLabel(k, v); err != nil {
			return nil, fmt.Errorf("matchLabels: %w", err)
		}
		terms = append(terms, fmt.Sprintf("%s == '%s'", k, v))
	}
	for i, e := range s.MatchExpressions {
		if !validLabelKey(e.Key) {
			return nil, fmt.Errorf("matchExpressions[%d]: invalid label key %q", i, e.Key)
		}
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			for _, v := range e.Values {
				if !validLabelValue(v) {
					return nil, fmt.Errorf("matchExpressions[%d]: invalid label value %q", i, v)
				}
			}
			op := "in"
			if e.Operator == metav1.LabelSelectorOpNotIn {
				op = "not in"
			}
			terms = append(terms, fmt.Sprintf("%s %s { '%s' }", e.Key, op, strings.Join(e.Values, "', '")))
		case metav1.LabelSelectorOpExists:
			terms = append(terms, fmt.Sprintf("has(%s)", e.Key))
		case metav1.LabelSelectorOpDoesNotExist:
			terms = append(terms, fmt.Sprintf("! has(%s)", e.Key))
		default:
			return nil, fmt.Errorf("matchExpressions[%d]: unknown operator %q", i, e.Operator)
		}
	}
	return terms, nil
}

func checkLabel(k, v string) error {
	if !validLabelKey(k) {
		return fmt.Errorf("invalid label key %q", k)
	}
	if !validLabelValue(v) {
		return fmt.Errorf("invalid label value %q for key %q", v, k)
	}
	return nil
}

var (
	labelNameRe  = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValueRe = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	portNameRe   = regexp.MustCompile(`^[a-z0-9-]{1,15}$`)
)

// validLabelKey is Kubernetes' IsQualifiedName: an optional DNS subdomain
// prefix and "/", then a name of at most 63 characters.
func validLabelKey(k string) bool {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if len(prefix) > 253 || !dnsSubdomain.MatchString(prefix) {
			return false
		}
	}
	return len(name) <= 63 && labelNameRe.MatchString(name)
}

// validLabelValue is Kubernetes' IsValidLabelValue.
func validLabelValue(v string) bool {
	return len(v) <= 63 && labelValueRe.MatchString(v)
}

// validPortName is Kubernetes' IsValidPortName (an IANA service name), the
// check Calico applies to named ports.
func validPortName(s string) bool {
	if !portNameRe.MatchString(s) || strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
		return false
	}
	return strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz")
}
