package v1convert

import (
	"fmt"
	"strings"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func convertRules(field string, in []rule) ([]v3.Rule, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]v3.Rule, len(in))
	for i, r := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		cr, err := convertRule(f, r)
		if err != nil {
			return nil, err
		}
		out[i] = cr
	}
	return out, nil
}

func convertRule(field string, r rule) (v3.Rule, error) {
	out := v3.Rule{Action: convertAction(r.Action), IPVersion: r.IPVersion}
	if r.Protocol != nil {
		p := protocol(*r.Protocol)
		out.Protocol = &p
	}
	if r.NotProtocol != nil {
		p := protocol(*r.NotProtocol)
		out.NotProtocol = &p
	}
	if r.ICMP != nil && (r.ICMP.Type != nil || r.ICMP.Code != nil) {
		out.ICMP = &v3.ICMPFields{Type: r.ICMP.Type, Code: r.ICMP.Code}
	}
	if r.NotICMP != nil && (r.NotICMP.Type != nil || r.NotICMP.Code != nil) {
		out.NotICMP = &v3.ICMPFields{Type: r.NotICMP.Type, Code: r.NotICMP.Code}
	}
	var err error
	if out.Source, err = convertEntity(field+".source", r.Source); err != nil {
		return v3.Rule{}, err
	}
	if out.Destination, err = convertEntity(field+".destination", r.Destination); err != nil {
		return v3.Rule{}, err
	}
	return out, nil
}

func convertEntity(field string, e entityRule) (v3.EntityRule, error) {
	nets, err := convertNets(field+".nets", e.Nets, e.Net)
	if err != nil {
		return v3.EntityRule{}, err
	}
	notNets, err := convertNets(field+".notNets", e.NotNets, e.NotNet)
	if err != nil {
		return v3.EntityRule{}, err
	}
	return v3.EntityRule{
		Nets:        nets,
		Selector:    mergeTag(convertSelector(e.Selector), e.Tag),
		Ports:       e.Ports,
		NotNets:     notNets,
		NotSelector: mergeTag(convertSelector(e.NotSelector), e.NotTag),
		NotPorts:    e.NotPorts,
	}, nil
}

// convertNets joins the deprecated single net (last, as Calico does) to
// the list and masks each network.
func convertNets(field string, nets []string, single string) ([]string, error) {
	all := nets
	if single != "" {
		all = append(append([]string{}, nets...), single)
	}
	var out []string
	for i, n := range all {
		pf, err := parseNet(n)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), n, "must be a CIDR")
		}
		out = append(out, pf.String())
	}
	return out, nil
}

// convertAction maps v1 actions to v3: "" → Allow, next-tier → Pass, and
// the rest by case-insensitive name; an unknown action is kept for
// validation to report.
func convertAction(a string) v3.Action {
	switch strings.ToLower(a) {
	case "":
		return v3.Allow
	case "next-tier":
		return v3.Pass
	}
	for _, known := range []v3.Action{v3.Allow, v3.Deny, v3.Log, v3.Pass} {
		if strings.EqualFold(a, string(known)) {
			return known
		}
	}
	return v3.Action(a)
}
