package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Defaults of Options.
const (
	DefaultMaxAttempts = 100
	DefaultMaxBackoff  = 50 * time.Millisecond
	// EmptyBlockMinReclaimAge is how long after its claim another host's
	// empty block may be taken over (Calico's value), so that two hosts
	// cannot keep stealing a block from each other.
	EmptyBlockMinReclaimAge = time.Minute
)

// Options tune a Client; the zero value gives the defaults.
type Options struct {
	// MaxAttempts bounds the tries of one revision-checked write.
	MaxAttempts int
	// MaxBackoff caps the random wait between tries.
	MaxBackoff time.Duration
	// ReclaimAge overrides EmptyBlockMinReclaimAge (tests).
	ReclaimAge time.Duration
	// Now overrides the clock (tests).
	Now func() time.Time
	// Cache, when set, keeps what the Client learns of hosts for their
	// next requests (see Cache); nil keeps nothing between calls.
	Cache *Cache
}

// Client is Calico block IPAM over a datastore. Its only state is the
// Cache its caller may give it (Options.Cache), so any number of Clients,
// in any number of processes and hosts, may share one etcd (with each
// other and with Calico itself).
type Client struct {
	be    backend.Client
	tx    backend.Transactor
	log   *logrus.Entry
	opts  Options
	cache *Cache // nil: none
}

// Hint returns the block the client will try first for host, if any
// (none without a Cache).
func (c *Client) Hint(host string) netip.Prefix { return c.cache.hint(host) }

// SetHint makes p the block to try first for host's next request, as if
// this client had last assigned from it: a short-lived process passes on
// what the previous one learnt. A wrong hint costs nothing but a read.
// Without a Cache it does nothing.
func (c *Client) SetHint(host string, p netip.Prefix) { c.cache.setHint(host, p) }

// Transactor is the datastore c reads and writes, for a caller that
// reads IPAM's keys together with others at one revision (package
// ipamcheck).
func (c *Client) Transactor() backend.Transactor { return c.tx }

// New returns a Client over be, which must implement backend.Transactor
// (the etcd and memory backends do).
func New(be backend.Client, log *logrus.Entry, opts Options) (*Client, error) {
	tx, ok := be.(backend.Transactor)
	if !ok {
		return nil, fmt.Errorf("datastore %T cannot run transactions, which IPAM needs", be)
	}
	if log == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		log = logrus.NewEntry(l)
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.ReclaimAge <= 0 {
		opts.ReclaimAge = EmptyBlockMinReclaimAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{be: be, tx: tx, log: log, opts: opts, cache: opts.Cache}, nil
}

// ErrMaxAttempts means a write kept losing revision races.
var ErrMaxAttempts = errors.New("max retries hit - excessive concurrent IPAM requests")

// backoff paces the retries of a revision-checked write. The first retry
// goes at once, with the values the failed transaction returned; later
// ones wait a random time that grows with attempt, after which those
// values are stale: backoff reports that it slept so the caller reads
// afresh.
func (c *Client) backoff(ctx context.Context, attempt int) (slept bool, err error) {
	if attempt < 2 {
		return false, ctx.Err()
	}
	ceil := min(c.opts.MaxBackoff, time.Millisecond<<min(attempt-2, 16))
	t := time.NewTimer(rand.N(ceil) + time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return true, nil
	}
}

// fetchBlockHandle reads a block (nil when absent) and, when id is not
// "", a handle, in one round trip.
func (c *Client) fetchBlockHandle(ctx context.Context, cidr netip.Prefix, id string) (*blockKV, *handleKV, error) {
	ops := []backend.ReadOp{{Key: model.BlockKey{CIDR: cidr}}}
	if id != "" {
		ops = append(ops, backend.ReadOp{Key: model.HandleKey{HandleID: id}})
	}
	res, err := c.read(ctx, ops)
	if err != nil {
		return nil, nil, fmt.Errorf("reading block %s: %w", cidr, err)
	}
	var bk *blockKV
	if kv := one(res[0]); kv != nil {
		if bk, err = decodeBlock(kv); err != nil {
			return nil, nil, err
		}
	}
	var h *handleKV
	if id != "" {
		if h, err = decodeHandle(id, one(res[1])); err != nil {
			return nil, nil, err
		}
	}
	return bk, h, nil
}

// read is a linearizable Transactor.Read split into calls of at most
// MaxTxnOps ops.
func (c *Client) read(ctx context.Context, ops []backend.ReadOp) ([][]*backend.KVPair, error) {
	return c.readAt(ctx, backend.Linearizable, ops)
}

// readStale is read at serializable consistency, for the reads of the
// assignment path: everything written on their basis is revision-guarded,
// so a stale value costs a retry, while not waiting for writes in flight
// roughly halves an assignment's latency under load.
func (c *Client) readStale(ctx context.Context, ops []backend.ReadOp) ([][]*backend.KVPair, error) {
	return c.readAt(ctx, backend.Serializable, ops)
}

func (c *Client) readAt(ctx context.Context, cons backend.Consistency, ops []backend.ReadOp) ([][]*backend.KVPair, error) {
	out := make([][]*backend.KVPair, 0, len(ops))
	for len(ops) > 0 {
		n := min(len(ops), backend.MaxTxnOps)
		res, err := c.tx.Read(ctx, cons, ops[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, res.Results...)
		ops = ops[n:]
	}
	return out, nil
}

func one(kvs []*backend.KVPair) *backend.KVPair {
	if len(kvs) == 0 {
		return nil
	}
	return kvs[0]
}

// getKV reads one key; nil when absent.
func (c *Client) getKV(ctx context.Context, k model.Key) (*backend.KVPair, error) {
	res, err := c.read(ctx, []backend.ReadOp{{Key: k}})
	if err != nil {
		return nil, err
	}
	return one(res[0]), nil
}

// txn runs one transaction; on a guard failure it returns the current
// values and an error matching cerrors.ErrConflict.
func (c *Client) txn(ctx context.Context, ops ...backend.TxnOp) (*backend.TxnResult, error) {
	return c.tx.Txn(ctx, ops)
}

func isConflict(err error) bool { return errors.Is(err, cerrors.ErrConflict) }

// blockKV is a stored block, decoded.
type blockKV struct {
	cidr netip.Prefix
	rev  int64
	b    *model.AllocationBlock
}

// decodeBlock decodes a stored block; a value that does not decode, or
// whose allocations do not fit its CIDR, gives a *cerrors.Corrupt.
func decodeBlock(kv *backend.KVPair) (*blockKV, error) {
	k, ok := kv.Key.(model.BlockKey)
	if !ok {
		return nil, fmt.Errorf("key %s is not a block", kv.Key)
	}
	var b model.AllocationBlock
	if err := json.Unmarshal(kv.Value, &b); err != nil {
		return nil, model.Corrupt(k, err)
	}
	if len(b.Allocations) != b.NumAddresses() {
		return nil, model.Corrupt(k, fmt.Errorf("block %s has %d allocation slots for %d addresses", k.CIDR, len(b.Allocations), b.NumAddresses()))
	}
	return &blockKV{cidr: k.CIDR, rev: kv.Revision, b: &b}, nil
}

// handleKV is a stored handle, decoded; rev 0 when it does not exist yet.
type handleKV struct {
	id  string
	rev int64
	h   model.IPAMHandle
}

func decodeHandle(id string, kv *backend.KVPair) (*handleKV, error) {
	out := &handleKV{id: id, h: model.IPAMHandle{Block: map[string]int{}}}
	if kv == nil {
		return out, nil
	}
	if err := json.Unmarshal(kv.Value, &out.h); err != nil {
		return nil, model.Corrupt(kv.Key, err)
	}
	if out.h.Block == nil {
		out.h.Block = map[string]int{}
	}
	out.rev = kv.Revision
	return out, nil
}

func (h *handleKV) clone() *handleKV {
	c := *h
	c.h.Block = maps.Clone(h.h.Block)
	return &c
}

// add changes the handle's count for block by delta, dropping entries
// that reach zero (or below, for data another writer left inconsistent).
func (h *handleKV) add(block netip.Prefix, delta int) {
	k := block.String()
	if n := h.h.Block[k] + delta; n > 0 {
		h.h.Block[k] = n
	} else {
		delete(h.h.Block, k)
	}
}

// op returns the txn op that stores the handle, or deletes it once empty.
func (h *handleKV) op() (backend.TxnOp, error) {
	k := model.HandleKey{HandleID: h.id}
	if len(h.h.Block) == 0 {
		if h.rev == 0 {
			return backend.TxnOp{Action: backend.TxnCheck, Key: k}, nil
		}
		return backend.TxnOp{Action: backend.TxnDelete, Key: k, Revision: h.rev}, nil
	}
	v, err := json.Marshal(&h.h)
	return backend.TxnOp{Action: backend.TxnPut, Key: k, Revision: h.rev, Value: v}, err
}

// SetHandleCounts stores counts (addresses per block CIDR) as handle id,
// guarded by rev, the handle's revision as the caller read it; rev 0
// means the handle must not exist. Empty counts delete the handle. A
// handle that changed since gives an error matching cerrors.ErrConflict.
// It is for repairs (package ipamcheck): IPAM's own writes keep every
// handle equal to its allocations.
func (c *Client) SetHandleCounts(ctx context.Context, id string, rev int64, counts map[string]int) error {
	h := &handleKV{id: id, rev: rev, h: model.IPAMHandle{Block: counts}}
	op, err := h.op()
	if err != nil {
		return err
	}
	_, err = c.txn(ctx, op)
	return err
}

// blockOp returns the txn op that stores b (bumping its sequence number)
// or, when del, deletes it.
func blockOp(bk *blockKV, del bool) (backend.TxnOp, error) {
	k := model.BlockKey{CIDR: bk.cidr}
	if del {
		return backend.TxnOp{Action: backend.TxnDelete, Key: k, Revision: bk.rev}, nil
	}
	bk.b.SequenceNumber++
	v, err := json.Marshal(bk.b)
	return backend.TxnOp{Action: backend.TxnPut, Key: k, Revision: bk.rev, Value: v}, err
}

// decodePools turns a list of IPPool pairs into pools, skipping bad ones.
func (c *Client) decodePools(kvs []*backend.KVPair) []pool {
	var out []pool
	for _, kv := range kvs {
		v, err := model.Decode(kv.Key, kv.Value, kv.Revision)
		if err != nil {
			c.log.WithError(err).Warn("skipping unreadable IP pool")
			continue
		}
		p, ok := v.(*v3.IPPool)
		if !ok {
			continue
		}
		pl, err := newPool(p)
		if err != nil {
			c.log.WithError(err).Warn("skipping IP pool")
			continue
		}
		out = append(out, pl)
	}
	return out
}
