package v3

import "strconv"

// IPReservation lists addresses that Calico IPAM must not hand out. It
// blocks new allocations only; existing ones are left alone.
type IPReservation struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`

	Spec IPReservationSpec `json:"spec,omitempty"`
}

// IPReservationSpec is the specification of an IPReservation.
type IPReservationSpec struct {
	// ReservedCIDRs holds CIDRs and/or bare IP addresses.
	ReservedCIDRs []string `json:"reservedCIDRs,omitempty"`
}

// NewIPReservation returns an empty IPReservation with its type metadata set.
func NewIPReservation() *IPReservation {
	return &IPReservation{TypeMeta: TypeMeta{Kind: KindIPReservation, APIVersion: APIVersion}}
}

// Default sets only missing type metadata: Calico defaults no IPReservation field.
func (r *IPReservation) Default() { infraTypeMeta(&r.TypeMeta, KindIPReservation) }

// Validate checks that every reserved entry is a CIDR or an IP address.
func (r *IPReservation) Validate() error {
	v := newValidator()
	v.meta(KindIPReservation, &r.ObjectMeta, false)
	seen := make(map[string]bool, len(r.Spec.ReservedCIDRs))
	for i, c := range r.Spec.ReservedCIDRs {
		field := "IPReservation.Spec.ReservedCIDRs[" + strconv.Itoa(i) + "]"
		if _, err := ParseCIDR(c); err != nil {
			v.add(field, c, "must be a valid CIDR or IP address")
			continue
		}
		if seen[c] {
			v.add(field, c, "duplicate entry")
		}
		seen[c] = true
	}
	return v.err()
}
