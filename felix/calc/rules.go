package calc

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/calico-etcd/calico/felix/dpapi"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/selector"
)

// ruleOwner identifies the policy or profile rules belong to, for rule IDs.
type ruleOwner string

// convertRules turns v3 rules into dataplane rules and collects the IP sets
// they use. ns is the policy's namespace ("" for global policies and
// profiles). A rule that cannot be converted is dropped and reported in
// the returned errors; the others stay.
func convertRules(owner ruleOwner, dir string, rules []v3.Rule, ns string, sets map[string]setRef) ([]dpapi.Rule, []error) {
	n := 0
	for i := range rules {
		n += ruleVariants(&rules[i])
	}
	out := make([]dpapi.Rule, 0, n)
	var errs []error
	for i := range rules {
		first := len(out)
		var err error
		if out, err = convertRule(out, &rules[i], ns, sets); err != nil {
			errs = append(errs, fmt.Errorf("%s rule %d: %w", dir, i, err))
			continue
		}
		rs := out[first:]
		base := ruleID(owner, dir, i, &rules[i])
		for j := range rs {
			rs[j].ID = base
			if len(rs) > 1 {
				rs[j].ID = subID(base, j)
			}
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, errs
}

// ruleID is stable for the same owner, direction, position and content.
func ruleID(owner ruleOwner, dir string, idx int, r *v3.Rule) string {
	b, _ := json.Marshal(r)
	h := sha256.New224()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", owner, dir, idx)
	h.Write(b)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))[:16]
}

func subID(base string, j int) string {
	sum := sha256.Sum224([]byte(base + "/" + strconv.Itoa(j)))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:16]
}

// convertRule appends one rule, converted, to out (or returns out as it
// was, and an error). A rule whose ports include named ports becomes
// several dataplane rules (numeric ports, then one per named port
// combination), since one dataplane rule ANDs its conditions.
func convertRule(out []dpapi.Rule, r *v3.Rule, ns string, sets map[string]setRef) ([]dpapi.Rule, error) {
	if r.Source.Services != nil || r.Destination.Services != nil {
		return out, fmt.Errorf("service matches are not supported")
	}
	base := dpapi.Rule{Action: dpapi.Action(r.Action)}
	if r.Metadata != nil && len(r.Metadata.Annotations) > 0 {
		for k, v := range r.Metadata.Annotations {
			base.Annotations = append(base.Annotations, k+"="+v)
		}
		slices.Sort(base.Annotations)
	}
	switch r.Action {
	case v3.Allow, v3.Deny, v3.Pass, v3.Log:
	default:
		return out, fmt.Errorf("unknown action %q", r.Action)
	}
	if r.IPVersion != nil {
		base.IPVersion = *r.IPVersion
	}
	proto := ""
	if r.Protocol != nil {
		proto = protoString(*r.Protocol)
		base.Protocol = proto
	}
	if r.NotProtocol != nil {
		base.NotProtocol = protoString(*r.NotProtocol)
	}
	if r.ICMP != nil {
		base.ICMPType, base.ICMPCode = r.ICMP.Type, r.ICMP.Code
	}
	if r.NotICMP != nil {
		base.NotICMPType, base.NotICMPCode = r.NotICMP.Type, r.NotICMP.Code
	}
	var err error
	if base.SrcNets, err = parseNets(r.Source.Nets); err != nil {
		return out, err
	}
	if base.NotSrcNets, err = parseNets(r.Source.NotNets); err != nil {
		return out, err
	}
	if base.DstNets, err = parseNets(r.Destination.Nets); err != nil {
		return out, err
	}
	if base.NotDstNets, err = parseNets(r.Destination.NotNets); err != nil {
		return out, err
	}

	src, err := sideSels(&r.Source, ns)
	if err != nil {
		return out, fmt.Errorf("source: %w", err)
	}
	dst, err := sideSels(&r.Destination, ns)
	if err != nil {
		return out, fmt.Errorf("destination: %w", err)
	}
	if src.not != nil {
		base.NotSrcIPSets = []string{addSet(sets, selSet(src.not))}
	}
	if dst.not != nil {
		base.NotDstIPSets = []string{addSet(sets, selSet(dst.not))}
	}
	var numSrc, numDst []dpapi.PortRange
	var namedSrc, namedDst []string
	numSrc, namedSrc = splitPorts(r.Source.Ports)
	numDst, namedDst = splitPorts(r.Destination.Ports)
	notSrc, notNamedSrc := splitPorts(r.Source.NotPorts)
	notDst, notNamedDst := splitPorts(r.Destination.NotPorts)
	base.NotSrcPorts, base.NotDstPorts = notSrc, notDst
	for _, n := range notNamedSrc {
		base.NotSrcNamedPortIPSets = append(base.NotSrcNamedPortIPSets, addSet(sets, namedPortSet(orAll(src.sel), proto, n)))
	}
	for _, n := range notNamedDst {
		base.NotDstNamedPortIPSets = append(base.NotDstNamedPortIPSets, addSet(sets, namedPortSet(orAll(dst.sel), proto, n)))
	}

	// Each side is either "selector set + numeric ports" or "one named
	// port set" (which already holds the selector).
	type side struct {
		ports []dpapi.PortRange
		sets  []string
		named []string
	}
	variants := func(s sels, num []dpapi.PortRange, named []string) []side {
		var out []side
		if len(num) > 0 || len(named) == 0 {
			v := side{ports: num}
			if s.sel != nil {
				v.sets = []string{addSet(sets, selSet(s.sel))}
			}
			out = append(out, v)
		}
		for _, n := range named {
			out = append(out, side{named: []string{addSet(sets, namedPortSet(orAll(s.sel), proto, n))}})
		}
		return out
	}
	for _, sv := range variants(src, numSrc, namedSrc) {
		for _, dv := range variants(dst, numDst, namedDst) {
			rr := base
			rr.SrcPorts, rr.SrcIPSets, rr.SrcNamedPortIPSets = sv.ports, sv.sets, sv.named
			rr.DstPorts, rr.DstIPSets, rr.DstNamedPortIPSets = dv.ports, dv.sets, dv.named
			out = append(out, rr)
		}
	}
	return out, nil
}

type sels struct{ sel, not *entitySel }

func sideSels(er *v3.EntityRule, ns string) (sels, error) {
	sel, err := ruleEntitySel(er, ns)
	if err != nil {
		return sels{}, err
	}
	var not *entitySel
	if er.NotSelector != "" {
		s, err := selector.Parse(er.NotSelector)
		if err != nil {
			return sels{}, fmt.Errorf("notSelector: %w", err)
		}
		not = newEntitySel(nsAny, "", nil, nil, nil, s)
	}
	return sels{sel: sel, not: not}, nil
}

var allSel = newEntitySel(nsAny, "", nil, nil, nil, selector.MustParse("all()"))

func orAll(s *entitySel) *entitySel {
	if s == nil {
		return allSel
	}
	return s
}

func addSet(sets map[string]setRef, r setRef) string {
	if _, ok := sets[r.id]; !ok {
		sets[r.id] = r
	}
	return r.id
}

// ruleVariants is how many dataplane rules convertRule makes of r.
func ruleVariants(r *v3.Rule) int {
	side := func(ports []v3.Port) int {
		named := 0
		for _, p := range ports {
			if p.PortName != "" {
				named++
			}
		}
		if named < len(ports) || named == 0 {
			return named + 1
		}
		return named
	}
	return side(r.Source.Ports) * side(r.Destination.Ports)
}

func splitPorts(ports []v3.Port) (num []dpapi.PortRange, named []string) {
	for _, p := range ports {
		if p.PortName != "" {
			named = append(named, p.PortName)
			continue
		}
		num = append(num, dpapi.PortRange{Min: p.MinPort, Max: p.MaxPort})
	}
	return num, named
}

func parseNets(nets []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range nets {
		p, err := parseNet(n)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parseNet reads a CIDR or a bare address (as a host prefix), masked.
func parseNet(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid net %q", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid net %q", s)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// protoString gives the dataplane's protocol spelling: a lower-case name
// or a number.
func protoString(p v3.Protocol) string {
	if n, err := p.NumValue(); err == nil {
		switch n {
		case 1:
			return "icmp"
		case 6:
			return "tcp"
		case 17:
			return "udp"
		case 58:
			return "icmpv6"
		case 132:
			return "sctp"
		case 136:
			return "udplite"
		}
		return strconv.Itoa(int(n))
	}
	return strings.ToLower(p.StrVal)
}
