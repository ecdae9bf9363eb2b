package calc

import (
	"testing"

	"github.com/calico-etcd/calico/felix/calc/calctest"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// convertRules sizes its output by ruleVariants.
func TestRuleVariantsCountsConvertedRules(t *testing.T) {
	num := v3.Port{MinPort: 80, MaxPort: 80}
	a, b := v3.NamedPort("a"), v3.NamedPort("b")
	for _, c := range []struct{ src, dst []v3.Port }{
		{nil, nil},
		{[]v3.Port{num}, nil},
		{nil, []v3.Port{a}},
		{nil, []v3.Port{a, num}},
		{[]v3.Port{a, b}, []v3.Port{num, a, b}},
		{[]v3.Port{num, num}, []v3.Port{b}},
	} {
		r := v3.Rule{Action: v3.Allow, Protocol: calctest.TCP(),
			Source: v3.EntityRule{Ports: c.src}, Destination: v3.EntityRule{Ports: c.dst}}
		got, err := convertRule(nil, &r, "", map[string]setRef{})
		if err != nil {
			t.Fatal(err)
		}
		if want := ruleVariants(&r); len(got) != want {
			t.Errorf("src %v dst %v: %d rules, ruleVariants says %d", c.src, c.dst, len(got), want)
		}
	}
}
