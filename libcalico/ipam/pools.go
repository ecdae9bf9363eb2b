package ipam

import (
	"fmt"
	"hash/fnv"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/selector"
)

// pool is an IPPool with its CIDR parsed and defaults applied.
type pool struct {
	*v3.IPPool
	cidr      netip.Prefix
	blockSize int
}

func newPool(p *v3.IPPool) (pool, error) {
	p.Default()
	cidr, err := netip.ParsePrefix(p.Spec.CIDR)
	if err != nil {
		return pool{}, fmt.Errorf("pool %s has invalid CIDR %q: %w", p.Name, p.Spec.CIDR, err)
	}
	return pool{IPPool: p, cidr: cidr.Masked(), blockSize: p.Spec.BlockSize}, nil
}

func (p pool) version() int {
	if p.cidr.Addr().Is4() {
		return 4
	}
	return 6
}

// numBlocks is how many blocks the pool holds, capped at 1<<62.
func (p pool) numBlocks() uint64 {
	bits := p.blockSize - p.cidr.Bits()
	if bits < 0 {
		return 0
	}
	return 1 << min(bits, 62)
}

// blockAt returns the i-th block of the pool.
func (p pool) blockAt(i uint64) netip.Prefix {
	base := new(big.Int).SetBytes(p.cidr.Addr().AsSlice())
	off := new(big.Int).Lsh(new(big.Int).SetUint64(i), uint(p.cidr.Addr().BitLen()-p.blockSize))
	raw := base.Add(base, off).FillBytes(make([]byte, p.cidr.Addr().BitLen()/8))
	a, _ := netip.AddrFromSlice(raw)
	return netip.PrefixFrom(a, p.blockSize)
}

// blockFor returns the pool's block containing addr.
func (p pool) blockFor(addr netip.Addr) netip.Prefix {
	return netip.PrefixFrom(addr, p.blockSize).Masked()
}

// selectsNode reports whether the pool's nodeSelector matches labels.
func (p pool) selectsNode(labels map[string]string) (bool, error) {
	if p.Spec.NodeSelector == "" {
		return true, nil
	}
	sel, err := selector.Parse(p.Spec.NodeSelector)
	if err != nil {
		return false, fmt.Errorf("pool %s: %w", p.Name, err)
	}
	return sel.Evaluate(labels), nil
}

func (p pool) allows(use v3.IPPoolAllowedUse) bool { return slices.Contains(p.Spec.AllowedUses, use) }

func (p pool) automatic() bool {
	return p.Spec.AssignmentMode == nil || *p.Spec.AssignmentMode == v3.AssignmentModeAutomatic
}

// poolFor returns the pool (enabled or not) containing addr.
func poolFor(pools []pool, addr netip.Addr) (pool, bool) {
	for _, p := range pools {
		if p.cidr.Contains(addr) {
			return p, true
		}
	}
	return pool{}, false
}

// hostSeed makes a host start its search for a free block at the same
// place every time, so that concurrent requests on one host converge on
// one block instead of each claiming its own (as Calico does).
func hostSeed(host string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(host))
	return h.Sum64()
}

// candidates returns up to n block indexes of the pool to probe: a run of
// runLen from the host's seeded start, then uniformly random ones. Random
// probing finds a free block in O(1) expected probes whatever the number of
// blocks, as long as the pool is not nearly full.
func (p pool) candidates(host string, n, runLen int, rnd *rand.Rand) []uint64 {
	total := p.numBlocks()
	if total == 0 {
		return nil
	}
	if total <= uint64(n) {
		out := make([]uint64, total)
		start := hostSeed(host) % total
		for i := range out {
			out[i] = (start + uint64(i)) % total
		}
		return out
	}
	seen := map[uint64]bool{}
	out := make([]uint64, 0, n)
	start := hostSeed(host) % total
	for i := 0; i < runLen && len(out) < n; i++ {
		idx := (start + uint64(i)) % total
		seen[idx] = true
		out = append(out, idx)
	}
	for len(out) < n {
		idx := rnd.Uint64N(total)
		if !seen[idx] {
			seen[idx] = true
			out = append(out, idx)
		}
	}
	return out
}

// poolBlocks lists the block keys of one pool: the etcd prefix is the
// longest textual prefix every block of the pool shares, and Matches
// drops the blocks of other pools that share it. It reads no more than
// the pool's /8 (IPv4) or /16 (IPv6), never the whole cluster's blocks
// when the pool is aligned on an octet or hextet.
type poolBlocks struct{ cidr netip.Prefix }

// Prefix implements model.ListOptions.
func (o poolBlocks) Prefix() (string, error) {
	base, err := model.BlockListOptions{IPVersion: versionOf(o.cidr.Addr())}.Prefix()
	if err != nil {
		return "", err
	}
	return base + textPrefix(o.cidr), nil
}

// Matches implements model.ListOptions.
func (o poolBlocks) Matches(k model.Key) bool {
	bk, ok := k.(model.BlockKey)
	return ok && o.cidr.Overlaps(bk.CIDR)
}

// textPrefix is a string every address of cidr starts with when printed.
func textPrefix(cidr netip.Prefix) string {
	a := cidr.Addr()
	if a.Is4() {
		b := a.As4()
		s := ""
		for i := 0; i < cidr.Bits()/8; i++ {
			s += fmt.Sprintf("%d.", b[i])
		}
		return s
	}
	// IPv6 text compresses zero runs, so only a non-zero first hextet
	// fixed by the prefix is safe to match on.
	b := a.As16()
	if cidr.Bits() >= 16 && (b[0] != 0 || b[1] != 0) {
		return fmt.Sprintf("%x:", uint16(b[0])<<8|uint16(b[1]))
	}
	return ""
}

func versionOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// reservations are the addresses IPReservations keep out of assignment.
type reservations []netip.Prefix

func newReservations(rs []*v3.IPReservation) reservations {
	var out reservations
	for _, r := range rs {
		for _, c := range r.Spec.ReservedCIDRs {
			if p, err := v3.ParseCIDR(c); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func (r reservations) contains(a netip.Addr) bool {
	for _, p := range r {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// coversAll reports whether every address of block is reserved by one entry.
func (r reservations) coversAll(block netip.Prefix) bool {
	for _, p := range r {
		if p.Bits() <= block.Bits() && p.Contains(block.Addr()) {
			return true
		}
	}
	return false
}

func (r reservations) touches(block netip.Prefix) bool {
	for _, p := range r {
		if p.Overlaps(block) {
			return true
		}
	}
	return false
}
