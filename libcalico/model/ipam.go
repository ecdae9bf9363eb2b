package model

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Secondary attribute keys Calico sets on allocations.
const (
	AttrPod       = "pod"
	AttrNamespace = "namespace"
	AttrNode      = "node"
	AttrType      = "type"
	AttrTimestamp = "timestamp"
)

// CIDR is a netip.Prefix that reads and writes Calico's "10.0.0.0/26" form.
type CIDR struct{ netip.Prefix }

// MarshalJSON implements json.Marshaler.
func (c CIDR) MarshalJSON() ([]byte, error) { return json.Marshal(c.Prefix.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (c *CIDR) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("invalid CIDR %q: %w", s, err)
	}
	c.Prefix = p
	return nil
}

// AllocationBlock is an IPAM block as Calico stores it.
type AllocationBlock struct {
	CIDR                        CIDR                  `json:"cidr"`
	Affinity                    *string               `json:"affinity"`
	AffinityClaimTime           string                `json:"affinity_claim_time,omitempty"`
	Allocations                 []*int                `json:"allocations"`
	Unallocated                 []int                 `json:"unallocated"`
	Attributes                  []AllocationAttribute `json:"attributes"`
	SequenceNumber              uint64                `json:"sequenceNumber"`
	SequenceNumberForAllocation map[string]uint64     `json:"sequenceNumberForAllocation"`
	Deleted                     bool                  `json:"deleted"`
	HostAffinity                *string               `json:"hostAffinity,omitempty"`
}

// AllocationAttribute is the owner of one or more allocations.
type AllocationAttribute struct {
	HandleID  *string           `json:"handle_id"`
	Secondary map[string]string `json:"secondary"`
	// Alternate is written by newer Calico (KubeVirt live migration); kept
	// so that rewriting such a block does not drop it.
	Alternate map[string]string `json:"alternate,omitempty"`
}

// Host returns the node the block is affine to, or "".
func (b *AllocationBlock) Host() string {
	if b.Affinity != nil && strings.HasPrefix(*b.Affinity, "host:") {
		return strings.TrimPrefix(*b.Affinity, "host:")
	}
	return ""
}

// NumAddresses is the number of addresses the block covers.
func (b *AllocationBlock) NumAddresses() int {
	return 1 << (b.CIDR.Addr().BitLen() - b.CIDR.Bits())
}

// OrdinalOf returns addr's offset in the block.
func (b *AllocationBlock) OrdinalOf(addr netip.Addr) (int, error) {
	if !b.CIDR.Contains(addr) {
		return 0, fmt.Errorf("address %s is not in block %s", addr, b.CIDR)
	}
	base := b.CIDR.Masked().Addr().AsSlice()
	a := addr.AsSlice()
	ord := 0
	for i := len(a) - 4; i < len(a); i++ { // blocks never exceed 2^32 addresses
		ord = ord<<8 | int(a[i]-base[i])
	}
	return ord, nil
}

// AddrAt returns the address at ordinal ord.
func (b *AllocationBlock) AddrAt(ord int) netip.Addr {
	a := b.CIDR.Masked().Addr().AsSlice()
	carry := ord
	for i := len(a) - 1; i >= 0 && carry > 0; i-- {
		sum := int(a[i]) + carry&0xff
		a[i] = byte(sum)
		carry = carry>>8 + sum>>8
	}
	addr, _ := netip.AddrFromSlice(a)
	return addr
}

// Clone returns a deep copy of b.
func (b *AllocationBlock) Clone() *AllocationBlock {
	c := *b
	c.Affinity, c.HostAffinity = clonePtr(b.Affinity), clonePtr(b.HostAffinity)
	c.Allocations = make([]*int, len(b.Allocations))
	for i, a := range b.Allocations {
		c.Allocations[i] = clonePtr(a)
	}
	c.Unallocated = slices.Clone(b.Unallocated)
	c.Attributes = make([]AllocationAttribute, len(b.Attributes))
	for i, a := range b.Attributes {
		c.Attributes[i] = AllocationAttribute{HandleID: clonePtr(a.HandleID), Secondary: maps.Clone(a.Secondary), Alternate: maps.Clone(a.Alternate)}
	}
	c.SequenceNumberForAllocation = maps.Clone(b.SequenceNumberForAllocation)
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// SetSequenceNumberFor records the block's sequence number for ord.
func (b *AllocationBlock) SetSequenceNumberFor(ord int) {
	if b.SequenceNumberForAllocation == nil {
		b.SequenceNumberForAllocation = map[string]uint64{}
	}
	b.SequenceNumberForAllocation[strconv.Itoa(ord)] = b.SequenceNumber
}

// BlockAffinity is a host's claim on a block.
type BlockAffinity struct {
	State   string `json:"state"`
	Deleted bool   `json:"deleted"`
}

// Affinity states.
const (
	AffinityPending         = "pending"
	AffinityConfirmed       = "confirmed"
	AffinityPendingDeletion = "pendingDeletion"
)

// IPAMHandle counts a handle's allocations per block.
type IPAMHandle struct {
	Block   map[string]int `json:"block"`
	Deleted bool           `json:"deleted"`
}

// IPAMConfig is the cluster-wide IPAM configuration.
type IPAMConfig struct {
	StrictAffinity               bool   `json:"strict_affinity,omitempty"`
	AutoAllocateBlocks           bool   `json:"auto_allocate_blocks,omitempty"`
	MaxBlocksPerHost             int    `json:"maxBlocksPerHost,omitempty"`
	KubeVirtVMAddressPersistence string `json:"kubeVirtVMAddressPersistence,omitempty"`
}
