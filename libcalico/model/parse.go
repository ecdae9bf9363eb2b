package model

import (
	"net/netip"
	"strings"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// ParseKey maps an etcd key back to its Key, or returns nil for a key
// outside the layout this package knows.
func ParseKey(path string) Key {
	switch {
	case strings.HasPrefix(path, ResourcesRoot):
		return parseResource(path[len(ResourcesRoot):])
	case strings.HasPrefix(path, IPAMRoot):
		return parseIPAM(strings.Split(path[len(IPAMRoot):], "/"))
	case strings.HasPrefix(path, FelixRoot+"no-region/host/"):
		return parseFelix(strings.Split(path[len(FelixRoot+"no-region/host/"):], "/"))
	}
	return nil
}

func nonEmpty(parts []string) bool {
	for _, p := range parts {
		if p == "" || strings.IndexByte(p, 0) >= 0 {
			return false
		}
	}
	return true
}

// parseResource reads "<plural>/<name>" or "<plural>/<namespace>/<name>",
// as the kind is namespaced. It cuts rather than splits: a list parses
// thousands of these.
func parseResource(path string) Key {
	plural, rest, ok := strings.Cut(path, "/")
	if !ok {
		return nil
	}
	info, ok := v3.LookupPlural(plural)
	if !ok || info.Plural != plural {
		return nil
	}
	first, second, two := strings.Cut(rest, "/")
	switch {
	case info.Namespaced && two && nonEmpty([]string{first, second}) && !strings.Contains(second, "/"):
		return ResourceKey{Kind: info.Kind, Namespace: first, Name: second}
	case !info.Namespaced && !two && nonEmpty([]string{first}):
		return ResourceKey{Kind: info.Kind, Name: first}
	}
	return nil
}

// parseCIDRSegment reads "10.0.0.0-26" as a masked prefix of version v.
func parseCIDRSegment(seg, v string) (netip.Prefix, bool) {
	i := strings.LastIndexByte(seg, '-')
	if i < 0 {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(seg[:i] + "/" + seg[i+1:])
	if err != nil || p != p.Masked() || p.Addr().Zone() != "" {
		return netip.Prefix{}, false
	}
	if (v == "ipv4") != p.Addr().Is4() || (v != "ipv4" && v != "ipv6") {
		return netip.Prefix{}, false
	}
	return p, true
}

func parseIPAM(p []string) Key {
	if !nonEmpty(p) {
		return nil
	}
	switch {
	case len(p) == 1 && p[0] == "config":
		return IPAMConfigKey{}
	case len(p) == 2 && p[0] == "handle":
		return HandleKey{HandleID: p[1]}
	case len(p) == 4 && p[0] == "assignment" && p[2] == "block":
		if c, ok := parseCIDRSegment(p[3], p[1]); ok {
			return BlockKey{CIDR: c}
		}
	case len(p) == 5 && p[0] == "host" && p[3] == "block":
		if c, ok := parseCIDRSegment(p[4], p[2]); ok {
			return BlockAffinityKey{Host: p[1], CIDR: c}
		}
	}
	return nil
}

func parseFelix(p []string) Key {
	if !nonEmpty(p) {
		return nil
	}
	switch {
	case len(p) == 2 && p[1] == "status":
		return FelixStatusKey{Hostname: p[0]}
	case len(p) == 2 && p[1] == "last_reported_status":
		return FelixStatusKey{Hostname: p[0], Last: true}
	case len(p) == 6 && p[1] == "workload" && p[4] == "endpoint":
		return WorkloadEndpointStatusKey{Hostname: p[0], OrchestratorID: p[2], WorkloadID: p[3], EndpointID: p[5]}
	}
	return nil
}
