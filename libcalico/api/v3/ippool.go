package v3

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/calico-etcd/calico/libcalico/cerrors"
)

// IPPool is a range of addresses from which Calico IPAM assigns endpoint IPs.
type IPPool struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`

	Spec IPPoolSpec `json:"spec,omitempty"`
	// Status is written by newer Calico versions; kept so it round-trips.
	Status *IPPoolStatus `json:"status,omitempty"`
}

// IPPoolSpec is the specification of an IPPool.
type IPPoolSpec struct {
	CIDR              string             `json:"cidr"`
	VXLANMode         VXLANMode          `json:"vxlanMode,omitempty"`
	IPIPMode          IPIPMode           `json:"ipipMode,omitempty"`
	NATOutgoing       bool               `json:"natOutgoing,omitempty"`
	Disabled          bool               `json:"disabled,omitempty"`
	DisableBGPExport  bool               `json:"disableBGPExport,omitempty"`
	BlockSize         int                `json:"blockSize,omitempty"`
	NodeSelector      string             `json:"nodeSelector,omitempty"`
	NamespaceSelector string             `json:"namespaceSelector,omitempty"`
	AllowedUses       []IPPoolAllowedUse `json:"allowedUses,omitempty"`
	AssignmentMode    *AssignmentMode    `json:"assignmentMode,omitempty"`
}

// IPPoolStatus carries the pool's conditions.
type IPPoolStatus struct {
	Conditions []IPPoolCondition `json:"conditions,omitempty"`
}

// IPPoolCondition is Kubernetes' metav1.Condition.
type IPPoolCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
	LastTransitionTime Time   `json:"lastTransitionTime"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
}

// IPPoolAllowedUse says what addresses from a pool may be used for.
type IPPoolAllowedUse string

// Allowed uses.
const (
	IPPoolAllowedUseWorkload     IPPoolAllowedUse = "Workload"
	IPPoolAllowedUseTunnel       IPPoolAllowedUse = "Tunnel"
	IPPoolAllowedUseLoadBalancer IPPoolAllowedUse = "LoadBalancer"
)

// VXLANMode says when traffic to a pool is VXLAN-encapsulated.
type VXLANMode string

// VXLAN modes.
const (
	VXLANModeNever       VXLANMode = "Never"
	VXLANModeAlways      VXLANMode = "Always"
	VXLANModeCrossSubnet VXLANMode = "CrossSubnet"
)

// IPIPMode says when traffic to a pool is IP-in-IP encapsulated.
type IPIPMode string

// IPIP modes.
const (
	IPIPModeNever       IPIPMode = "Never"
	IPIPModeAlways      IPIPMode = "Always"
	IPIPModeCrossSubnet IPIPMode = "CrossSubnet"
)

// AssignmentMode says whether IPAM may pick a pool on its own.
type AssignmentMode string

// Assignment modes.
const (
	AssignmentModeAutomatic AssignmentMode = "Automatic"
	AssignmentModeManual    AssignmentMode = "Manual"
)

// Default block sizes.
const (
	DefaultBlockSizeV4 = 26
	DefaultBlockSizeV6 = 122
)

var (
	linkLocalV4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocalV6 = netip.MustParsePrefix("fe80::/10")
)

// NewIPPool returns an empty IPPool with its type metadata set.
func NewIPPool() *IPPool {
	return &IPPool{TypeMeta: TypeMeta{Kind: KindIPPool, APIVersion: APIVersion}}
}

// parsePoolCIDR parses a pool CIDR; unlike rule nets a prefix length is required.
func parsePoolCIDR(s string) (raw netip.Prefix, ok bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}

// poolBlockSize returns the block size, or the default for the pool's family when unset.
func poolBlockSize(spec *IPPoolSpec, is4 bool) int {
	switch {
	case spec.BlockSize != 0:
		return spec.BlockSize
	case is4:
		return DefaultBlockSizeV4
	default:
		return DefaultBlockSizeV6
	}
}

// Default fills missing type metadata and Calico's IPPool defaults: block
// size 26/122, nodeSelector all(), IPIP and VXLAN Never, allowed uses
// Workload+Tunnel, assignment mode Automatic. A strictly masked CIDR is rewritten in canonical form.
func (p *IPPool) Default() {
	infraTypeMeta(&p.TypeMeta, KindIPPool)
	s := &p.Spec
	if raw, ok := parsePoolCIDR(s.CIDR); ok {
		if raw.Masked() == raw {
			s.CIDR = raw.String()
		}
		s.BlockSize = poolBlockSize(s, raw.Addr().Is4())
	}
	if s.NodeSelector == "" {
		s.NodeSelector = "all()"
	}
	if s.IPIPMode == "" {
		s.IPIPMode = IPIPModeNever
	}
	if s.VXLANMode == "" {
		s.VXLANMode = VXLANModeNever
	}
	if len(s.AllowedUses) == 0 {
		s.AllowedUses = []IPPoolAllowedUse{IPPoolAllowedUseWorkload, IPPoolAllowedUseTunnel}
	}
	if s.AssignmentMode == nil {
		s.AssignmentMode = ptrTo(AssignmentModeAutomatic)
	}
}

// Validate checks the pool on its own. Unset fields are judged by their defaults.
func (p *IPPool) Validate() error {
	v := newValidator()
	v.meta(KindIPPool, &p.ObjectMeta, false)
	validateIPPoolSpec(v, &p.Spec)
	return v.err()
}

func validateIPPoolSpec(v *validator, s *IPPoolSpec) {
	const f = "IPPool.Spec."
	if s.IPIPMode != "" {
		v.oneOf(f+"IPIPMode", string(s.IPIPMode), string(IPIPModeNever), string(IPIPModeAlways), string(IPIPModeCrossSubnet))
	}
	if s.VXLANMode != "" {
		v.oneOf(f+"VXLANMode", string(s.VXLANMode), string(VXLANModeNever), string(VXLANModeAlways), string(VXLANModeCrossSubnet))
	}
	if s.NodeSelector != "" {
		v.selector(f+"NodeSelector", s.NodeSelector)
	}
	if s.NamespaceSelector != "" {
		v.selector(f+"NamespaceSelector", s.NamespaceSelector)
	}
	if s.AssignmentMode != nil {
		v.oneOf(f+"AssignmentMode", string(*s.AssignmentMode), string(AssignmentModeAutomatic), string(AssignmentModeManual))
	}
	validateAllowedUses(v, s)
	ipip := s.IPIPMode != "" && s.IPIPMode != IPIPModeNever
	vxlan := s.VXLANMode != "" && s.VXLANMode != VXLANModeNever
	if ipip && vxlan {
		v.add(f+"VXLANMode", s.VXLANMode, "Cannot enable both VXLAN and IPIP on the same IPPool")
	}

	if s.CIDR == "" {
		v.add(f+"CIDR", s.CIDR, "IPPool CIDR must be specified")
		return
	}
	raw, ok := parsePoolCIDR(s.CIDR)
	if !ok {
		v.add(f+"CIDR", s.CIDR, "IPPool CIDR must be a valid subnet")
		return
	}
	is4 := raw.Addr().Is4()
	bs := poolBlockSize(s, is4)
	if is4 && (bs > 32 || bs < 20) {
		v.add(f+"BlockSize", bs, "IPv4 block size must be between 20 and 32")
	} else if !is4 && (bs > 128 || bs < 116) {
		v.add(f+"BlockSize", bs, "IPv6 block size must be between 116 and 128")
	}
	if !s.Disabled && raw.Bits() > bs {
		v.add(f+"CIDR", s.CIDR, "IP pool size is too small for use with Calico IPAM. It must be equal to or greater than the block size.")
	}
	if !is4 && ipip {
		v.add(f+"IPIPMode", s.IPIPMode, "IPIP is not supported on an IPv6 IP pool")
	}
	if raw.Masked() != raw {
		v.add(f+"CIDR", s.CIDR, "IPPool CIDR is not strictly masked")
	}
	if is4 && raw.Overlaps(linkLocalV4) {
		v.add(f+"CIDR", s.CIDR, "IPPool CIDR overlaps with IPv4 Link Local range 169.254.0.0/16")
	}
	if !is4 && raw.Overlaps(linkLocalV6) {
		v.add(f+"CIDR", s.CIDR, "IPPool CIDR overlaps with IPv6 Link Local range fe80::/10")
	}
}

func validateAllowedUses(v *validator, s *IPPoolSpec) {
	const f = "IPPool.Spec.AllowedUses"
	lb := false
	for _, u := range s.AllowedUses {
		switch u {
		case IPPoolAllowedUseWorkload, IPPoolAllowedUseTunnel:
		case IPPoolAllowedUseLoadBalancer:
			lb = true
		default:
			v.add(f, u, "unknown use: "+string(u))
		}
	}
	if !lb {
		return
	}
	if len(s.AllowedUses) > 1 {
		v.add(f, s.AllowedUses, "LoadBalancer cannot be combined with other allowed uses")
	}
	if (s.IPIPMode != "" && s.IPIPMode != IPIPModeNever) || (s.VXLANMode != "" && s.VXLANMode != VXLANModeNever) {
		v.add(f, s.AllowedUses, "IPIP and VXLAN must be Never on a LoadBalancer IPPool")
	}
}

// ValidateIPPoolUpdate checks the rules that involve the stored pool: the
// CIDR and block size may not change (a canonical rewrite of the same
// network is allowed) and a LoadBalancer pool stays one.
func ValidateIPPoolUpdate(old, new *IPPool) error {
	if old == nil || new == nil {
		return nil
	}
	v := newValidator()
	if !poolCIDRChangeOK(old.Spec.CIDR, new.Spec.CIDR) {
		v.add("IPPool.Spec.CIDR", new.Spec.CIDR, "IPPool CIDR cannot be modified")
	} else if raw, ok := parsePoolCIDR(new.Spec.CIDR); ok {
		is4 := raw.Addr().Is4()
		if poolBlockSize(&old.Spec, is4) != poolBlockSize(&new.Spec, is4) {
			v.add("IPPool.Spec.BlockSize", poolBlockSize(&new.Spec, is4), "IPPool BlockSize cannot be modified")
		}
	}
	if slices.Contains(old.Spec.AllowedUses, IPPoolAllowedUseLoadBalancer) {
		for _, u := range new.Spec.AllowedUses {
			if u != IPPoolAllowedUseLoadBalancer {
				// Calico's wording, typo included.
				v.add("IPPool.Spec.AllowedUses", new.Spec.AllowedUses, "IPPool allowed use cannot be changed from LoadBalacer to Workload or Tunnel")
				break
			}
		}
	}
	return v.err()
}

// poolCIDRChangeOK allows an identical CIDR, or the canonical form of the same network.
func poolCIDRChangeOK(oldCIDR, newCIDR string) bool {
	if oldCIDR == newCIDR {
		return true
	}
	o, err1 := netip.ParsePrefix(oldCIDR)
	n, err2 := netip.ParsePrefix(newCIDR)
	if err1 != nil || err2 != nil {
		return false
	}
	return o.Masked() == n.Masked() && newCIDR == n.Masked().String()
}

// CheckPoolOverlap reports p's CIDR overlapping any pool in existing, other
// than one with p's name. Pools with unparsable CIDRs are skipped.
func CheckPoolOverlap(p *IPPool, existing []*IPPool) error {
	if p == nil {
		return nil
	}
	mine, ok := parsePoolCIDR(p.Spec.CIDR)
	if !ok {
		return nil
	}
	errs := &cerrors.Validation{}
	for _, other := range existing {
		if other == nil || other.Name == p.Name {
			continue
		}
		theirs, ok := parsePoolCIDR(other.Spec.CIDR)
		if !ok || !mine.Masked().Overlaps(theirs.Masked()) {
			continue
		}
		errs.Add("IPPool.Spec.CIDR", p.Spec.CIDR,
			fmt.Sprintf("IPPool(%s) CIDR overlaps with IPPool(%s) CIDR %s", p.Name, other.Name, other.Spec.CIDR))
	}
	return errs.Err()
}
