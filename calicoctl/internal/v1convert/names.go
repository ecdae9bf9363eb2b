package v1convert

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

var (
	nonNameChar               = regexp.MustCompile("[^-.a-z0-9]+")
	dotDashSeq                = regexp.MustCompile("[.-]*[.][.-]*")
	trailingLeadingDotsDashes = regexp.MustCompile("^[.-]*(.*?)[.-]*$")
)

// normalizeName lower-cases, turns '/' into '.', any other character
// outside [-.a-z0-9] into '-', collapses runs of [.-] holding a '.' into
// one '.', and trims leading and trailing dots and dashes.
func normalizeName(name string) string {
	name = strings.ToLower(name)
	name = strings.ReplaceAll(name, "/", ".")
	name = nonNameChar.ReplaceAllString(name, "-")
	name = dotDashSeq.ReplaceAllString(name, ".")
	return trailingLeadingDotsDashes.FindStringSubmatch(name)[1]
}

// convertName normalizes a name and, when that changed it, appends the
// first 8 hex digits of the original's SHA-1 so distinct names stay
// distinct.
func convertName(v1Name string) string { return qualifiedName(v1Name, normalizeName(v1Name)) }

// convertNameNoDots is convertName with dots turned into dashes.
func convertNameNoDots(v1Name string) string {
	return qualifiedName(v1Name, strings.ReplaceAll(normalizeName(v1Name), ".", "-"))
}

func qualifiedName(orig, final string) string {
	if orig == final {
		return orig
	}
	h := sha1.Sum([]byte(orig))
	return fmt.Sprintf("%s-%s", final, hex.EncodeToString(h[:])[:8])
}

// convertProfileName renames the Kubernetes namespace profiles "k8s_ns.X"
// to "kns.X".
func convertProfileName(in string) string {
	if rest, ok := strings.CutPrefix(in, "k8s_ns."); ok {
		return convertName("kns." + rest)
	}
	return convertName(in)
}

// cidrToName writes a CIDR as a resource name: 10.0.0.0/16 → 10-0-0-0-16.
func cidrToName(p netip.Prefix) string {
	n := strings.Replace(p.String(), ".", "-", 3)
	n = strings.Replace(n, ":", "-", 7)
	return strings.Replace(n, "/", "-", 1)
}

// ipToName writes an IP as a name: 1-2-3-4, or eight expanded v6 groups.
func ipToName(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return strings.ReplaceAll(a.Unmap().String(), ".", "-")
	}
	return strings.ReplaceAll(a.StringExpanded(), ":", "-")
}

// convertSelector renames the v1 namespace label in a selector.
func convertSelector(sel string) string {
	return strings.ReplaceAll(sel, "calico/k8s_ns", "projectcalico.org/namespace")
}

// mergeTag folds a v1 tag into a selector: tags became labels with an
// empty value.
func mergeTag(sel, tag string) string {
	switch {
	case tag == "":
		return sel
	case sel == "":
		return tag + " == ''"
	default:
		return fmt.Sprintf("(%s) && %s == ''", sel, tag)
	}
}
