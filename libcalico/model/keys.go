// Package model maps datastore objects to Calico's etcd v3 key layout and
// holds the IPAM value types stored beside the v3 resources.
package model

import (
	"fmt"
	"net/netip"
	"strings"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// Key roots of Calico's layout.
const (
	ResourcesRoot = "/calico/resources/v3/" + v3.Group + "/"
	IPAMRoot      = "/calico/ipam/v2/"
	FelixRoot     = "/calico/felix/v2/"
	// Root holds everything this project reads or writes.
	Root = "/calico/"
)

// Key identifies one object in the datastore.
type Key interface {
	// Path returns the etcd key; it fails when a component is empty or
	// could escape its place in the layout (contains '/').
	Path() (string, error)
	String() string
}

// ListOptions selects a set of keys by prefix plus an optional filter.
type ListOptions interface {
	// Prefix is the etcd prefix every matching key starts with.
	Prefix() (string, error)
	// Matches reports whether a parsed key under Prefix belongs to the list.
	Matches(k Key) bool
}

func segment(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s must not be empty", what)
	}
	if strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("%s %q must not contain '/' or NUL", what, s)
	}
	return nil
}

// ResourceKey names a v3 resource.
type ResourceKey struct {
	Kind      string
	Namespace string // only for namespaced kinds
	Name      string
}

// Path implements Key.
func (k ResourceKey) Path() (string, error) {
	info, ok := v3.LookupKind(k.Kind)
	if !ok {
		return "", fmt.Errorf("unknown kind %q", k.Kind)
	}
	if err := segment("name", k.Name); err != nil {
		return "", err
	}
	if !info.Namespaced {
		if k.Namespace != "" {
			return "", fmt.Errorf("kind %s is not namespaced", k.Kind)
		}
		return ResourcesRoot + info.Plural + "/" + k.Name, nil
	}
	if err := segment("namespace", k.Namespace); err != nil {
		return "", err
	}
	return ResourcesRoot + info.Plural + "/" + k.Namespace + "/" + k.Name, nil
}

func (k ResourceKey) String() string {
	if k.Namespace != "" {
		return fmt.Sprintf("%s(%s/%s)", k.Kind, k.Namespace, k.Name)
	}
	return fmt.Sprintf("%s(%s)", k.Kind, k.Name)
}

// ResourceListOptions lists one kind, optionally in one namespace or by name.
type ResourceListOptions struct {
	Kind      string
	Namespace string // "" = all namespaces
	Name      string // "" = all names
}

// Prefix implements ListOptions.
func (o ResourceListOptions) Prefix() (string, error) {
	info, ok := v3.LookupKind(o.Kind)
	if !ok {
		return "", fmt.Errorf("unknown kind %q", o.Kind)
	}
	p := ResourcesRoot + info.Plural + "/"
	if info.Namespaced && o.Namespace != "" {
		if err := segment("namespace", o.Namespace); err != nil {
			return "", err
		}
		p += o.Namespace + "/"
	}
	return p, nil
}

// Matches implements ListOptions.
func (o ResourceListOptions) Matches(k Key) bool {
	rk, ok := k.(ResourceKey)
	if !ok || rk.Kind != o.Kind {
		return false
	}
	if o.Namespace != "" && rk.Namespace != o.Namespace {
		return false
	}
	return o.Name == "" || rk.Name == o.Name
}

func cidrSegment(p netip.Prefix) string {
	return strings.Replace(p.String(), "/", "-", 1)
}

func ipVersion(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

func validBlockCIDR(p netip.Prefix) error {
	if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return fmt.Errorf("invalid block CIDR %v", p)
	}
	return nil
}

// BlockKey names an IPAM allocation block.
type BlockKey struct{ CIDR netip.Prefix }

// Path implements Key.
func (k BlockKey) Path() (string, error) {
	if err := validBlockCIDR(k.CIDR); err != nil {
		return "", err
	}
	return fmt.Sprintf("%sassignment/ipv%d/block/%s", IPAMRoot, ipVersion(k.CIDR), cidrSegment(k.CIDR.Masked())), nil
}

func (k BlockKey) String() string { return fmt.Sprintf("Block(%s)", k.CIDR) }

// BlockListOptions lists blocks of one IP version (0 = both).
type BlockListOptions struct{ IPVersion int }

// Prefix implements ListOptions.
func (o BlockListOptions) Prefix() (string, error) {
	switch o.IPVersion {
	case 0:
		return IPAMRoot + "assignment/", nil
	case 4, 6:
		return fmt.Sprintf("%sassignment/ipv%d/block/", IPAMRoot, o.IPVersion), nil
	}
	return "", fmt.Errorf("invalid IP version %d", o.IPVersion)
}

// Matches implements ListOptions.
func (o BlockListOptions) Matches(k Key) bool {
	bk, ok := k.(BlockKey)
	return ok && (o.IPVersion == 0 || ipVersion(bk.CIDR) == o.IPVersion)
}

// BlockAffinityKey names a host's claim on a block.
type BlockAffinityKey struct {
	Host string
	CIDR netip.Prefix
}

// Path implements Key.
func (k BlockAffinityKey) Path() (string, error) {
	if err := segment("host", k.Host); err != nil {
		return "", err
	}
	if err := validBlockCIDR(k.CIDR); err != nil {
		return "", err
	}
	return fmt.Sprintf("%shost/%s/ipv%d/block/%s", IPAMRoot, k.Host, ipVersion(k.CIDR), cidrSegment(k.CIDR.Masked())), nil
}

func (k BlockAffinityKey) String() string {
	return fmt.Sprintf("BlockAffinity(%s, %s)", k.Host, k.CIDR)
}

// BlockAffinityListOptions lists affinities of one host ("" = all) and IP
// version (0 = both).
type BlockAffinityListOptions struct {
	Host      string
	IPVersion int
}

// Prefix implements ListOptions.
func (o BlockAffinityListOptions) Prefix() (string, error) {
	if o.Host == "" {
		return IPAMRoot + "host/", nil
	}
	if err := segment("host", o.Host); err != nil {
		return "", err
	}
	if o.IPVersion == 4 || o.IPVersion == 6 {
		return fmt.Sprintf("%shost/%s/ipv%d/block/", IPAMRoot, o.Host, o.IPVersion), nil
	}
	return IPAMRoot + "host/" + o.Host + "/", nil
}

// Matches implements ListOptions.
func (o BlockAffinityListOptions) Matches(k Key) bool {
	ak, ok := k.(BlockAffinityKey)
	if !ok || (o.Host != "" && ak.Host != o.Host) {
		return false
	}
	return o.IPVersion == 0 || ipVersion(ak.CIDR) == o.IPVersion
}

// HandleKey names an IPAM handle.
type HandleKey struct{ HandleID string }

// Path implements Key.
func (k HandleKey) Path() (string, error) {
	if err := segment("handle", k.HandleID); err != nil {
		return "", err
	}
	return IPAMRoot + "handle/" + k.HandleID, nil
}

func (k HandleKey) String() string { return "Handle(" + k.HandleID + ")" }

// HandleListOptions lists every handle.
type HandleListOptions struct{}

// Prefix implements ListOptions.
func (HandleListOptions) Prefix() (string, error) { return IPAMRoot + "handle/", nil }

// Matches implements ListOptions.
func (HandleListOptions) Matches(k Key) bool { _, ok := k.(HandleKey); return ok }

// IPAMConfigKey names the cluster's IPAM configuration.
type IPAMConfigKey struct{}

// Path implements Key.
func (IPAMConfigKey) Path() (string, error) { return IPAMRoot + "config", nil }
func (IPAMConfigKey) String() string        { return "IPAMConfig" }

// FelixStatusKey names a felix status report: status (the live,
// lease-backed one) or last_reported_status.
type FelixStatusKey struct {
	Hostname string
	Last     bool
}

// Path implements Key.
func (k FelixStatusKey) Path() (string, error) {
	if err := segment("hostname", k.Hostname); err != nil {
		return "", err
	}
	leaf := "status"
	if k.Last {
		leaf = "last_reported_status"
	}
	return FelixRoot + "no-region/host/" + k.Hostname + "/" + leaf, nil
}

func (k FelixStatusKey) String() string {
	return fmt.Sprintf("FelixStatus(%s, last=%v)", k.Hostname, k.Last)
}

// WorkloadEndpointStatusKey names felix's report on one local endpoint.
type WorkloadEndpointStatusKey struct {
	Hostname       string
	OrchestratorID string
	WorkloadID     string
	EndpointID     string
}

// Path implements Key.
func (k WorkloadEndpointStatusKey) Path() (string, error) {
	for _, s := range [][2]string{{"hostname", k.Hostname}, {"orchestrator", k.OrchestratorID}, {"workload", k.WorkloadID}, {"endpoint", k.EndpointID}} {
		if err := segment(s[0], s[1]); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%sno-region/host/%s/workload/%s/%s/endpoint/%s", FelixRoot, k.Hostname, k.OrchestratorID, k.WorkloadID, k.EndpointID), nil
}

func (k WorkloadEndpointStatusKey) String() string {
	return fmt.Sprintf("WorkloadEndpointStatus(%s/%s/%s/%s)", k.Hostname, k.OrchestratorID, k.WorkloadID, k.EndpointID)
}

// FelixStatusListOptions lists felix status keys of one host ("" = all).
type FelixStatusListOptions struct{ Hostname string }

// Prefix implements ListOptions.
func (o FelixStatusListOptions) Prefix() (string, error) {
	if o.Hostname == "" {
		return FelixRoot + "no-region/host/", nil
	}
	if err := segment("hostname", o.Hostname); err != nil {
		return "", err
	}
	return FelixRoot + "no-region/host/" + o.Hostname + "/", nil
}

// Matches implements ListOptions.
func (o FelixStatusListOptions) Matches(k Key) bool {
	switch k := k.(type) {
	case FelixStatusKey:
		return o.Hostname == "" || k.Hostname == o.Hostname
	case WorkloadEndpointStatusKey:
		return o.Hostname == "" || k.Hostname == o.Hostname
	}
	return false
}

// PrefixListOptions lists every key this package can parse under a raw
// prefix; the syncer uses it to watch whole trees.
type PrefixListOptions struct{ Path string }

// Prefix implements ListOptions.
func (o PrefixListOptions) Prefix() (string, error) {
	if !strings.HasPrefix(o.Path, Root) {
		return "", fmt.Errorf("prefix %q is outside %s", o.Path, Root)
	}
	return o.Path, nil
}

// Matches implements ListOptions.
func (o PrefixListOptions) Matches(k Key) bool { return k != nil }
