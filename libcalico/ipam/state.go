package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

// hostState is what one request needs to know before it writes, read in a
// single round trip: config, pools, reservations, the node's labels, the
// host's affinities and the request's handle.
type hostState struct {
	host   string
	cfg    Config
	pools  []pool
	labels map[string]string
	res    reservations
	affs   []*backend.KVPair
	handle *handleKV // nil when the request has no handle
	rnd    *rand.Rand
	// scans caches the pool-wide block reads of this request, by pool CIDR.
	scans map[netip.Prefix][]*blockKV
	// prefetched holds the blocks read so far, nil values for blocks
	// found absent.
	prefetched map[netip.Prefix]*backend.KVPair
	// hint is the block the host last assigned from (zero if unknown);
	// lastUsed the one this request assigned from.
	hint, lastUsed netip.Prefix
	// readRev is the revision of the state read; nodeRev the Node's
	// (0: absent). used holds, by IP version, the blocks this request
	// assigned from, as committed. All for the warm path (warm.go).
	readRev, nodeRev int64
	used             map[int][]*blockKV
	// confirmed holds affinities this request confirmed (or found
	// confirmed) after the read, with their revisions.
	confirmed map[model.Key]int64
	// read holds what newHostState decoded, for SaveWarm.
	read [][]*backend.KVPair
}

func revOf(kv *backend.KVPair) int64 {
	if kv == nil {
		return 0
	}
	return kv.Revision
}

func (c *Client) loadHost(ctx context.Context, host, handle string) (*hostState, error) {
	if err := validHost(host); err != nil {
		return nil, err
	}
	ops := []backend.ReadOp{
		{Key: model.IPAMConfigKey{}},
		{Key: model.ResourceKey{Kind: v3.KindNode, Name: host}},
		{List: model.ResourceListOptions{Kind: v3.KindIPPool}},
		{List: model.ResourceListOptions{Kind: v3.KindIPReservation}},
		{List: model.BlockAffinityListOptions{Host: host}},
	}
	if handle != "" {
		ops = append(ops, backend.ReadOp{Key: model.HandleKey{HandleID: handle}})
	}
	hint := c.cache.hint(host)
	if hint.IsValid() {
		ops = append(ops, backend.ReadOp{Key: model.BlockKey{CIDR: hint}})
	}
	read, err := c.tx.Read(ctx, backend.Serializable, ops) // fewer than MaxTxnOps
	if err != nil {
		return nil, fmt.Errorf("reading IPAM state for host %s: %w", host, err)
	}
	res := read.Results
	st, err := c.newHostState(host, res[:hostReads], read.Revision)
	if err != nil {
		return nil, err
	}
	st.hint = hint
	if hint.IsValid() {
		st.prefetched[hint] = one(res[len(res)-1])
	}
	if handle != "" {
		if st.handle, err = decodeHandle(handle, one(res[hostReads])); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// hostReads is the number of reads newHostState decodes: config, Node,
// pools, reservations, the host's affinities, in that order.
const hostReads = 5

// newHostState decodes a host's state from the results of its reads at
// revision rev.
func (c *Client) newHostState(host string, res [][]*backend.KVPair, rev int64) (*hostState, error) {
	st := &hostState{host: host, affs: res[4], rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		scans: map[netip.Prefix][]*blockKV{}, prefetched: map[netip.Prefix]*backend.KVPair{},
		readRev: rev, nodeRev: revOf(one(res[1])), used: map[int][]*blockKV{}, read: res}
	var err error
	if st.cfg, _, err = decodeConfig(one(res[0])); err != nil {
		return nil, err
	}
	if kv := one(res[1]); kv != nil {
		v, err := model.Decode(kv.Key, kv.Value, kv.Revision)
		if err != nil {
			return nil, fmt.Errorf("reading node %s: %w", host, err)
		}
		if n, ok := v.(*v3.Node); ok {
			st.labels = n.Labels
		}
	} else {
		// Calico requires the Node; we use no labels, so only pools
		// selecting all() (the default) apply.
		c.log.WithField("node", host).Debug("no Node resource; pool node selectors see no labels")
	}
	st.pools = c.decodePools(res[2])
	var rs []*v3.IPReservation
	for _, kv := range res[3] {
		if v, err := model.Decode(kv.Key, kv.Value, kv.Revision); err == nil {
			if r, ok := v.(*v3.IPReservation); ok {
				rs = append(rs, r)
			}
		}
	}
	st.res = newReservations(rs)
	return st, nil
}

// remember records the block the request assigned from as the hint for
// the host's next request.
func (c *Client) remember(st *hostState) {
	c.cache.setHint(st.host, st.lastUsed)
}

func validHost(host string) error {
	if _, err := (model.BlockAffinityListOptions{Host: host}).Prefix(); err != nil || host == "" {
		return fmt.Errorf("invalid hostname %q", host)
	}
	return nil
}

// choosePools returns the pools a request of one IP version may use
// (allowed) and the ones that select the node whatever the use
// (selecting), following Calico's determinePools.
func (st *hostState) choosePools(version int, requested []string, use v3.IPPoolAllowedUse) (allowed, selecting []pool, err error) {
	var enabled []pool
	for _, p := range st.pools {
		if !p.Spec.Disabled && p.version() == version {
			enabled = append(enabled, p)
		}
	}
	for _, r := range requested {
		p, ok := findPool(enabled, r)
		if !ok {
			for _, q := range st.pools {
				if q.Name == r || q.Spec.CIDR == r {
					if q.version() != version {
						return nil, nil, fmt.Errorf("requested IPv%d pools include %s, an IPv%d pool", version, r, q.version())
					}
				}
			}
			return nil, nil, fmt.Errorf("the given pool (%s) does not exist, or is not enabled: %w", r, ErrNoQualifiedPool)
		}
		selecting = append(selecting, p)
	}
	if len(requested) == 0 {
		for _, p := range enabled {
			if !p.automatic() {
				continue
			}
			ok, err := p.selectsNode(st.labels)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				selecting = append(selecting, p)
			}
		}
	}
	if len(selecting) == 0 {
		return nil, nil, fmt.Errorf("no configured Calico IPv%d pools for node %s: %w", version, st.host, ErrNoQualifiedPool)
	}
	for _, p := range selecting {
		if p.allows(use) {
			allowed = append(allowed, p)
		}
	}
	if len(allowed) == 0 {
		return nil, nil, fmt.Errorf("%w, no pools match the required use (%s)", ErrNoQualifiedPool, use)
	}
	return allowed, selecting, nil
}

func findPool(pools []pool, nameOrCIDR string) (pool, bool) {
	want, err := netip.ParsePrefix(nameOrCIDR)
	for _, p := range pools {
		if p.Name == nameOrCIDR || (err == nil && p.cidr == want.Masked()) {
			return p, true
		}
	}
	return pool{}, false
}

// affinity is one of the host's block affinities, decoded.
type affinity struct {
	kv    *backend.KVPair
	cidr  netip.Prefix
	state string
}

func decodeAffinity(kv *backend.KVPair) (affinity, error) {
	k, ok := kv.Key.(model.BlockAffinityKey)
	if !ok {
		return affinity{}, fmt.Errorf("key %s is not a block affinity", kv.Key)
	}
	var v model.BlockAffinity
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return affinity{}, fmt.Errorf("decoding %s: %w", kv.Key, err)
	}
	return affinity{kv: kv, cidr: k.CIDR, state: v.State}, nil
}

// affineBlocks splits the host's affinities of one version into those in
// allowed pools and those in enabled pools that no longer select the node
// (to be released when empty, as Calico does).
func (st *hostState) affineBlocks(c *Client, version int, allowed []pool) (usable []affinity, unselected []netip.Prefix) {
	for _, kv := range st.affs {
		k, ok := kv.Key.(model.BlockAffinityKey)
		if !ok {
			continue
		}
		// The state is decoded only for the blocks the request visits.
		a := affinity{kv: kv, cidr: k.CIDR, state: "?"}
		if versionOf(a.cidr.Addr()) != version {
			continue
		}
		if _, ok := poolFor(allowed, a.cidr.Addr()); ok {
			usable = append(usable, a)
			continue
		}
		p, ok := poolFor(st.pools, a.cidr.Addr())
		if !ok || p.Spec.Disabled {
			continue
		}
		if sel, err := p.selectsNode(st.labels); err == nil && !sel {
			unselected = append(unselected, a.cidr)
		}
	}
	return usable, unselected
}

func prefixes(ips []netip.Addr, bits int) []netip.Prefix {
	out := make([]netip.Prefix, len(ips))
	for i, ip := range ips {
		out[i] = netip.PrefixFrom(ip, bits)
	}
	return out
}
