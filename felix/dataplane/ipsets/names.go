// Package ipsets converges the kernel's IP sets to the ones felix's rules
// need, with `ipset restore`: it creates sets, adds and deletes members
// (deltas only), rewrites a set whose header is wrong through a temporary set
// and a swap, and destroys sets it owns that are no longer wanted once the
// rules that used them are gone. It resyncs against `ipset save` on demand.
//
// Names follow Calico: "cali40" (IPv4) or "cali60" (IPv6) followed by the
// set's ID, e.g. cali40s:<hash> for a selector set, cali40all-ipam-pools,
// hashed down to ipset's 31 characters when longer.
package ipsets

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

// MaxNameLength is ipset's limit on set names.
const MaxNameLength = 31

// IDs of the sets felix makes itself (not from calc's State.IPSets).
const (
	AllPoolsID  = "all-ipam-pools"
	MasqPoolsID = "masq-ipam-pools"
	AllHostsID  = "all-hosts-net"
)

// Set types.
const (
	TypeNet    = "hash:net"
	TypeIPPort = "hash:ip,port"
)

// OwnedPrefixes are the name prefixes of sets this package manages:
// main sets and temporary sets, both families.
var OwnedPrefixes = []string{"cali40", "cali60", "cali4t", "cali6t"}

// Name returns the kernel name of the set with this ID for an IP version.
func Name(ipVersion int, id string) string {
	prefix := "cali40"
	if ipVersion == 6 {
		prefix = "cali60"
	}
	return iptables.LengthLimitedName(prefix, id, MaxNameLength)
}

func family(ipVersion int) string {
	if ipVersion == 6 {
		return "inet6"
	}
	return "inet"
}

// Set is a desired kernel IP set. A Manager keeps its own copy of the
// members it wrote, so Members may change once ApplyUpdates returns, but
// only under a new *Set (as Converter patches a set): the Manager tells
// versions apart by the *Set.
type Set struct {
	Name    string
	Type    string // TypeNet or TypeIPPort
	Family  string // "inet" or "inet6"
	Members map[string]struct{}
	// delta, when set, is how Members differ from an earlier Set's: a
	// Manager that last wrote that Set writes these and diffs nothing.
	delta *delta
}

// delta is a Set's members less those of the Set it came from.
type delta struct {
	from       *Set
	adds, dels []string // sorted
}

// SortedMembers returns the members in order.
func (s *Set) SortedMembers() []string {
	out := make([]string, 0, len(s.Members))
	for m := range s.Members {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

func newSet(name, typ, fam string) *Set {
	return &Set{Name: name, Type: typ, Family: fam, Members: map[string]struct{}{}}
}

// FromState returns the sets one IP version needs: every set of
// s.IPSets (members of that version only) and the pool and host sets.
func FromState(s *dpapi.State, ipVersion int) map[string]*Set {
	return new(Converter).FromState(s, ipVersion)
}

// Converter is FromState with memory. A *dpapi.IPSet it converted in the
// previous call for the same IP version gives the same *Set again, without
// re-parsing its members (calc never modifies a set it handed out), and
// the Manager skips a set it already wrote from that *Set. A new version
// of a set (same ID, members sorted, as calc makes them) is patched from
// the last one by the members that changed, which it carries as its
// delta: the members map is updated in place, under a new *Set, so a
// change costs what changed, not the set's size.
type Converter struct {
	last  [2]map[string]converted // by IP version 4, 6; by set ID
	spare [2]map[string]converted // the one before last, emptied for the next call
	// outs are the maps FromState returns, used in turn per IP version.
	outs [2][2]map[string]*Set
	flip [2]int
}

// NameOf is Name(ipVersion, id), from the last FromState's sets when it
// had that one (no hashing).
func (c *Converter) NameOf(ipVersion int, id string) string {
	slot := 0
	if ipVersion == 6 {
		slot = 1
	}
	if cv, ok := c.last[slot][id]; ok {
		return cv.set.Name
	}
	return Name(ipVersion, id)
}

// converted is a calc set and its kernel form.
type converted struct {
	src *dpapi.IPSet
	set *Set
	// oneToOne: each kernel member comes from exactly one member of src,
	// so removing a member from src removes its kernel form.
	oneToOne bool
	// sorted: src's members are in order.
	sorted bool
}

// FromState is the package's FromState, reusing unchanged sets. The map
// it returns is the caller's to change until the second call after for
// the same IP version, which empties and reuses it.
func (c *Converter) FromState(s *dpapi.State, ipVersion int) map[string]*Set {
	fam := family(ipVersion)
	slot := 0
	if ipVersion == 6 {
		slot = 1
	}
	prev, next := c.last[slot], c.spare[slot]
	if next == nil {
		next = make(map[string]converted, len(s.IPSets))
	}
	c.last[slot] = next
	defer func() { clear(prev); c.spare[slot] = prev }()
	for _, cv := range prev {
		cv.set.delta = nil // used by the Apply after the call that made it, if at all
	}
	out := c.outs[slot][c.flip[slot]]
	if out == nil {
		out = make(map[string]*Set, len(s.IPSets)+3)
		c.outs[slot][c.flip[slot]] = out
	}
	clear(out)
	c.flip[slot] ^= 1
	for id, set := range s.IPSets {
		if set == nil {
			continue
		}
		if id == "" {
			id = set.ID
		}
		cv, ok := prev[id]
		switch {
		case ok && cv.src == set:
		case ok && cv.oneToOne && cv.sorted && cv.src.Type == set.Type:
			cv = patch(cv, set, id, ipVersion, fam)
		default:
			cv = convert(id, set, ipVersion, fam)
		}
		next[id] = cv
		out[cv.set.Name] = cv.set
	}
	all := newSet(Name(ipVersion, AllPoolsID), TypeNet, fam)
	masq := newSet(Name(ipVersion, MasqPoolsID), TypeNet, fam)
	for _, p := range s.Pools {
		if p == nil || !p.CIDR.IsValid() || familyOf(p.CIDR.Addr()) != ipVersion {
			continue
		}
		for _, c := range CanonicalMembers(TypeNet, ipVersion, p.CIDR.String()) {
			all.Members[c] = struct{}{}
			if p.NATOutgoing {
				masq.Members[c] = struct{}{}
			}
		}
	}
	hosts := newSet(Name(ipVersion, AllHostsID), TypeNet, fam)
	for _, h := range s.Hosts {
		if h == nil {
			continue
		}
		p := h.IPv4
		if ipVersion == 6 {
			p = h.IPv6
		}
		if p.IsValid() && familyOf(p.Addr()) == ipVersion {
			hosts.Members[p.Addr().String()] = struct{}{}
		}
	}
	out[all.Name], out[masq.Name], out[hosts.Name] = all, masq, hosts
	return out
}

// convert makes the kernel set of one calc set for one IP version.
func convert(id string, set *dpapi.IPSet, ipVersion int, fam string) converted {
	typ := TypeNet
	if set.Type == dpapi.IPSetIPPort {
		typ = TypeIPPort
	}
	ks := &Set{Name: Name(ipVersion, id), Type: typ, Family: fam, Members: make(map[string]struct{}, len(set.Members))}
	n := 0
	var canon []string
	for _, m := range set.Members {
		canon = appendCanonical(canon[:0], typ, ipVersion, m)
		for _, c := range canon {
			ks.Members[c] = struct{}{}
			n++
		}
	}
	return converted{src: set, set: ks, oneToOne: n == len(ks.Members), sorted: slices.IsSorted(set.Members)}
}

// patch converts set, a new version of cv.src, from cv by the members
// that changed, updating cv's members in place (only the Converter reads
// them). It converts afresh when the members are not sorted or two would
// share a kernel form.
func patch(cv converted, set *dpapi.IPSet, id string, ipVersion int, fam string) converted {
	if !slices.IsSorted(set.Members) {
		return convert(id, set, ipVersion, fam)
	}
	typ := cv.set.Type
	added, removed := sortedDiff(cv.src.Members, set.Members)
	d := &delta{from: cv.set}
	for _, m := range removed {
		d.dels = appendCanonical(d.dels, typ, ipVersion, m)
	}
	for _, m := range added {
		d.adds = appendCanonical(d.adds, typ, ipVersion, m)
	}
	members := cv.set.Members
	for _, k := range d.dels {
		delete(members, k)
	}
	for _, k := range d.adds {
		if _, dup := members[k]; dup {
			return convert(id, set, ipVersion, fam) // the patched map is dropped
		}
		members[k] = struct{}{}
	}
	slices.Sort(d.adds)
	slices.Sort(d.dels)
	return converted{src: set, oneToOne: true, sorted: true,
		set: &Set{Name: cv.set.Name, Type: typ, Family: fam, Members: members, delta: d}}
}

// sortedDiff returns the members of sorted b not in sorted a, and those
// of a not in b.
func sortedDiff(a, b []string) (added, removed []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			removed = append(removed, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			added = append(added, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}

func familyOf(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return 4
	}
	return 6
}

// CanonicalMembers returns member m in the form `ipset save` prints it, if
// it belongs to ipVersion: host prefixes as bare addresses, and /0 split in
// two halves (hash:net cannot hold /0). It returns nil for other versions
// and for members it cannot parse.
func CanonicalMembers(typ string, ipVersion int, m string) []string {
	return appendCanonical(nil, typ, ipVersion, m)
}

// isCanonical reports whether text, which parsed as a (unmapped), is
// already the form `ipset save` prints. Dotted quads parse only in that
// form, so only IPv6 text is formatted again to compare.
func isCanonical(a netip.Addr, text string) bool {
	if !strings.Contains(text, ":") {
		return a.Is4()
	}
	return a.Is6() && !a.Is4In6() && a.String() == text
}

// appendCanonical is CanonicalMembers appending to dst. A member already
// in kernel form, or an address with its full-length suffix, is returned
// as (part of) m itself.
func appendCanonical(dst []string, typ string, ipVersion int, m string) []string {
	m = strings.TrimSpace(m)
	if typ == TypeIPPort {
		addr, port, ok := strings.Cut(m, ",")
		if !ok {
			return dst
		}
		a, err := netip.ParseAddr(addr)
		if err != nil || familyOf(a) != ipVersion {
			return dst
		}
		if !isCanonical(a, addr) || strings.ToLower(port) != port {
			return append(dst, a.Unmap().String()+","+strings.ToLower(port))
		}
		return append(dst, m)
	}
	var p netip.Prefix
	if strings.Contains(m, "/") {
		var err error
		if p, err = netip.ParsePrefix(m); err != nil {
			return dst
		}
	} else {
		a, err := netip.ParseAddr(m)
		if err != nil {
			return dst
		}
		a = a.Unmap()
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if familyOf(p.Addr()) != ipVersion {
		return dst
	}
	p = p.Masked()
	switch {
	case p.Bits() == p.Addr().BitLen():
		if addr, _, _ := strings.Cut(m, "/"); isCanonical(p.Addr(), addr) {
			return append(dst, addr)
		}
		return append(dst, p.Addr().String())
	case p.Bits() == 0:
		if ipVersion == 4 {
			return append(dst, "0.0.0.0/1", "128.0.0.0/1")
		}
		return append(dst, "::/1", "8000::/1")
	}
	if s := p.String(); s != m {
		return append(dst, s)
	}
	return append(dst, m)
}
