package ipam

import (
	"errors"
	"fmt"
	"net/netip"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Attribute keys and values Calico sets on allocations.
const (
	AttributePod             = model.AttrPod
	AttributeNamespace       = model.AttrNamespace
	AttributeNode            = model.AttrNode
	AttributeType            = model.AttrType
	AttributeTimestamp       = model.AttrTimestamp
	AttributeTypeIPIP        = "ipipTunnelAddress"
	AttributeTypeVXLAN       = "vxlanTunnelAddress"
	AttributeTypeVXLANV6     = "vxlanV6TunnelAddress"
	AttributeTypeWireguard   = "wireguardTunnelAddress"
	AttributeTypeWireguardV6 = "wireguardV6TunnelAddress"
	// WindowsReservedHandle owns addresses Calico's Windows nodes keep back;
	// a block holding only those counts as empty.
	WindowsReservedHandle = "windows-reserved-ipam-handle"
)

// Errors callers can test with errors.Is.
var (
	// ErrNoQualifiedPool: no enabled pool selects the node for the use.
	ErrNoQualifiedPool = errors.New("cannot find a qualified ippool")
	// ErrBlockLimit: the host would need more blocks than it may have.
	ErrBlockLimit = errors.New("cannot allocate new block due to per host block limit")
	// ErrNoAddresses: fewer addresses were free than requested.
	ErrNoAddresses = errors.New("not enough free addresses")
	// ErrStrictAffinity: no affine block had room, none could be claimed
	// and strict affinity forbids borrowing.
	ErrStrictAffinity = errors.New("no more free affine blocks and strict affinity enabled")
	// ErrNotInPool: an address is outside every configured pool.
	ErrNotInPool = errors.New("the provided IP address is not in a configured pool")
)

// Config is the cluster-wide IPAM configuration (/calico/ipam/v2/config).
type Config struct {
	// StrictAffinity forbids assigning from blocks affine to other hosts.
	StrictAffinity bool
	// AutoAllocateBlocks lets hosts claim new blocks.
	AutoAllocateBlocks bool
	// MaxBlocksPerHost limits the blocks a host may claim (0: no limit);
	// it requires StrictAffinity.
	MaxBlocksPerHost int
}

// DefaultConfig is what applies while no configuration is stored.
var DefaultConfig = Config{AutoAllocateBlocks: true}

// AutoAssignArgs asks for addresses picked by IPAM.
type AutoAssignArgs struct {
	Num4, Num6 int
	// HandleID groups the addresses for ReleaseByHandle; "" for none.
	HandleID string
	// Attrs are stored with each address (AttributePod, ...).
	Attrs map[string]string
	// Hostname is the node the addresses are for; required.
	Hostname string
	// IPv4Pools and IPv6Pools restrict assignment to these pools, by name
	// or CIDR; a named pool is used whatever its nodeSelector, as in
	// Calico, but never when disabled. Empty: every enabled, automatic
	// pool whose nodeSelector matches the node.
	IPv4Pools, IPv6Pools []string
	// MaxBlocksPerHost limits this request further than Config does.
	MaxBlocksPerHost int
	// IntendedUse filters pools by allowedUses; Workload when empty.
	IntendedUse v3.IPPoolAllowedUse
	// ReuseHandle makes the request idempotent per handle: the addresses
	// HandleID already holds count towards Num4 and Num6 and are returned
	// (first, see Assignments.Held), so that a repeat of a request (a CNI
	// ADD retried after a crash) gets what the first one got rather than
	// more. It costs nothing while the handle does not exist: the warm
	// path's transaction requires that, and the full path reads the
	// handle anyway.
	ReuseHandle bool
}

// Assignments reports what one IP version of an AutoAssign got.
type Assignments struct {
	// IPs are the addresses, each with its block's prefix length.
	IPs          []netip.Prefix
	IPVersion    int
	NumRequested int
	// Held is how many of IPs, from the start, the handle held before
	// the request (AutoAssignArgs.ReuseHandle); the rest are new.
	Held int
	// Msgs say why fewer were assigned than requested.
	Msgs []string
}

func (a *Assignments) addMsg(m string) {
	for _, x := range a.Msgs {
		if x == m {
			return
		}
	}
	a.Msgs = append(a.Msgs, m)
}

// Addrs returns the assigned addresses without prefix lengths.
func (a *Assignments) Addrs() []netip.Addr {
	if a == nil {
		return nil
	}
	out := make([]netip.Addr, len(a.IPs))
	for i, p := range a.IPs {
		out[i] = p.Addr()
	}
	return out
}

// PartialFulfillmentError reports, wrapping ErrNoAddresses (and
// ErrStrictAffinity when that was the cause), a shortfall; nil when every
// requested address was assigned.
func (a *Assignments) PartialFulfillmentError() error {
	if a == nil || len(a.IPs) >= a.NumRequested {
		return nil
	}
	msg := fmt.Sprintf("assigned %d out of %d requested IPv%d addresses", len(a.IPs), a.NumRequested, a.IPVersion)
	strict := false
	for _, m := range a.Msgs {
		if m == ErrStrictAffinity.Error() {
			strict = true
		} else {
			msg += ": " + m
		}
	}
	if strict {
		return fmt.Errorf("%s: %w: %w", msg, ErrNoAddresses, ErrStrictAffinity)
	}
	return fmt.Errorf("%s: %w", msg, ErrNoAddresses)
}

// AssignIPArgs asks for one given address.
type AssignIPArgs struct {
	IP       netip.Addr
	HandleID string
	Attrs    map[string]string
	Hostname string
}

// ReleaseOptions names an address to release. A non-empty Handle or a
// SequenceNumber makes the release fail, rather than free someone else's
// address, if the allocation is no longer the one the caller saw.
type ReleaseOptions struct {
	Address        netip.Addr
	Handle         string
	SequenceNumber *uint64
}

// Allocation is one assigned address as stored in its block.
type Allocation struct {
	IP    netip.Addr
	Block netip.Prefix
	// BlockHost is the host the block is affine to ("" when none).
	BlockHost      string
	Handle         string
	Attrs          map[string]string
	SequenceNumber uint64
}
