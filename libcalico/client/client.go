// Package client is the typed datastore API: it defaults and validates
// each resource, stamps uid and creationTimestamp on create, stores the
// resource as compact JSON at Calico's key, and reads resourceVersion back
// from the key's revision.
//
//	caller ── IPPools().Create(ctx, pool) ── Default → Validate → cross-checks
//	                                          │
//	                                          ▼
//	                          backend.Client (etcd txn guarded by revision)
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Client is the typed datastore client. It is safe for concurrent use.
type Client struct {
	be          backend.Client
	unmarshal   model.Unmarshal
	initialized atomic.Bool
}

// Option configures a Client.
type Option func(*Client)

// WithUnmarshal decodes stored values with u (see model.Unmarshal).
func WithUnmarshal(u model.Unmarshal) Option { return func(c *Client) { c.unmarshal = u } }

// New wraps a backend.
func New(be backend.Client, opts ...Option) *Client {
	c := &Client{be: be}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NewFromSpec connects to the etcd the spec names; every call is bounded
// by timeout (etcd.DefaultTimeout when zero).
func NewFromSpec(spec *apiconfig.Spec, timeout time.Duration, opts ...Option) (*Client, error) {
	be, err := etcd.New(spec.EtcdConfig(timeout))
	if err != nil {
		return nil, err
	}
	return New(be, opts...), nil
}

// Backend returns the raw datastore, for IPAM and the syncer.
func (c *Client) Backend() backend.Client { return c.be }

// Close releases the datastore connection.
func (c *Client) Close() error { return c.be.Close() }

// KeyFor returns the datastore key of a resource.
func KeyFor(r v3.Resource) model.ResourceKey {
	m := r.GetObjectMeta()
	return model.ResourceKey{Kind: r.GetTypeMeta().Kind, Namespace: m.Namespace, Name: m.Name}
}

// encode writes the stored form: kind and apiVersion set, no resourceVersion.
func encode(r v3.Resource) ([]byte, error) {
	tm := r.GetTypeMeta()
	tm.APIVersion = v3.APIVersion
	m := r.GetObjectMeta()
	rv := m.ResourceVersion
	m.ResourceVersion = ""
	b, err := json.Marshal(r)
	m.ResourceVersion = rv
	return b, err
}

func (c *Client) decode(kv *backend.KVPair) (v3.Resource, error) {
	v, err := model.DecodeWith(c.unmarshal, kv.Key, kv.Value, kv.Revision)
	if err != nil {
		return nil, err
	}
	r, ok := v.(v3.Resource)
	if !ok {
		return nil, fmt.Errorf("key %s does not hold a resource", kv.Key)
	}
	return r, nil
}

// decodeAll decodes a list, in parallel chunks when it is long: decoding,
// not the etcd read, dominates the cost of a large List. Values that do
// not decode are left out and returned in skipped; any other error fails
// the whole list.
func (c *Client) decodeAll(kvs []*backend.KVPair) (_ []v3.Resource, skipped []*cerrors.Corrupt, _ error) {
	out := make([]v3.Resource, len(kvs), len(kvs)+1)
	errs := make([]error, len(kvs))
	const chunk = 512
	workers := min(runtime.GOMAXPROCS(0), (len(kvs)+chunk-1)/chunk)
	if workers <= 1 {
		for i, kv := range kvs {
			out[i], errs[i] = c.decode(kv)
		}
	} else {
		var (
			wg   sync.WaitGroup
			next atomic.Int64
		)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					lo := int(next.Add(chunk)) - chunk
					if lo >= len(kvs) {
						return
					}
					for i := lo; i < min(lo+chunk, len(kvs)); i++ {
						out[i], errs[i] = c.decode(kvs[i])
					}
				}
			}()
		}
		wg.Wait()
	}
	for _, err := range errs {
		var c *cerrors.Corrupt
		switch {
		case err == nil:
		case errors.As(err, &c):
			skipped = append(skipped, c)
		default:
			return nil, nil, err
		}
	}
	if len(skipped) == 0 {
		return out, nil, nil
	}
	good := out[:0]
	for i, r := range out {
		if errs[i] == nil {
			good = append(good, r)
		}
	}
	return good, skipped, nil
}

func parseRevision(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, &cerrors.Validation{Fields: []cerrors.FieldError{{Field: "Metadata.ResourceVersion", Value: rv, Reason: "must be a positive integer revision"}}}
	}
	return n, nil
}

// prepare defaults, validates and cross-checks a resource before a write
// (with k, or a new Checker when k is nil). It works on a copy, so the
// caller's object is never half-changed.
func (c *Client) prepare(ctx context.Context, in v3.Resource, k *Checker) (v3.Resource, error) {
	r, err := validated(in)
	if err != nil {
		return nil, err
	}
	if k == nil {
		k = c.NewChecker(nil)
	}
	if err := k.check(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Create stores a new resource; cerrors.ErrExists if the name is taken.
func (c *Client) Create(ctx context.Context, in v3.Resource) (v3.Resource, error) {
	r, err := c.forCreate(ctx, in, nil)
	if err != nil {
		return nil, err
	}
	if err := c.EnsureInitialized(ctx); err != nil {
		return nil, err
	}
	return c.write(ctx, r, c.be.Create)
}

// CreateOp prepares in for creation inside another transaction (an IPAM
// assignment's, see ipam.Plan): it is checked as Create checks it and
// returned with the ops that store it, guarded to fail if the name is
// taken or, unless this client has seen it initialised, if the cluster
// is not (see EnsureInitialized; guarded rather than read, so it costs no
// round trip). Once they commit at revision rev, Committed(r, rev) makes
// r what Create would have returned.
func (c *Client) CreateOp(ctx context.Context, in v3.Resource) (v3.Resource, []backend.TxnOp, error) {
	r, err := c.forCreate(ctx, in, nil)
	if err != nil {
		return nil, nil, err
	}
	val, err := encode(r)
	if err != nil {
		return nil, nil, err
	}
	ops := []backend.TxnOp{{Action: backend.TxnPut, Key: KeyFor(r), Value: val}}
	if !c.initialized.Load() {
		ci, tier := v3.NewClusterInformation(), v3.NewTier()
		ci.Name, tier.Name = ClusterInformationName, DefaultTier
		ops = append(ops, ExistsOp(ci), ExistsOp(tier))
	}
	return r, ops, nil
}

// Committed completes a resource CreateOp prepared, once its ops
// committed at rev.
func (c *Client) Committed(r v3.Resource, rev int64) {
	r.GetObjectMeta().ResourceVersion = strconv.FormatInt(rev, 10)
	c.initialized.Store(true)
}

// ExistsOp guards, in a transaction, that r exists.
func ExistsOp(r v3.Resource) backend.TxnOp {
	return backend.TxnOp{Action: backend.TxnCheckExists, Key: KeyFor(r)}
}

// forCreate is a checked copy of in with a new uid and creation time.
func (c *Client) forCreate(ctx context.Context, in v3.Resource, k *Checker) (v3.Resource, error) {
	r, err := c.prepare(ctx, in, k)
	if err != nil {
		return nil, err
	}
	m := r.GetObjectMeta()
	if m.ResourceVersion != "" {
		return nil, &cerrors.Validation{Fields: []cerrors.FieldError{{Field: "Metadata.ResourceVersion", Value: m.ResourceVersion, Reason: "must not be set on create"}}}
	}
	m.UID = newUID()
	m.CreationTimestamp = v3.Now()
	return r, nil
}

func (c *Client) write(ctx context.Context, r v3.Resource, op func(context.Context, *backend.KVPair) (*backend.KVPair, error)) (v3.Resource, error) {
	val, err := encode(r)
	if err != nil {
		return nil, err
	}
	rev, err := parseRevision(r.GetObjectMeta().ResourceVersion)
	if err != nil {
		return nil, err
	}
	kv, err := op(ctx, &backend.KVPair{Key: KeyFor(r), Value: val, Revision: rev})
	if err != nil {
		return nil, err
	}
	r.GetObjectMeta().ResourceVersion = strconv.FormatInt(kv.Revision, 10)
	return r, nil
}

// Update replaces an existing resource. With metadata.resourceVersion set
// it fails with cerrors.ErrConflict if the stored one has moved on; uid
// and creationTimestamp are kept from the stored resource.
func (c *Client) Update(ctx context.Context, in v3.Resource) (v3.Resource, error) {
	r, err := c.prepare(ctx, in, nil)
	if err != nil {
		return nil, err
	}
	if err := c.EnsureInitialized(ctx); err != nil {
		return nil, err
	}
	if _, err := parseRevision(r.GetObjectMeta().ResourceVersion); err != nil {
		return nil, err
	}
	cur, err := c.Get(ctx, r.GetTypeMeta().Kind, r.GetObjectMeta().Namespace, r.GetObjectMeta().Name)
	if err != nil {
		return nil, err
	}
	if err := c.checkUpdate(cur, r); err != nil {
		return nil, err
	}
	m, cm := r.GetObjectMeta(), cur.GetObjectMeta()
	if m.UID != "" && m.UID != cm.UID {
		return nil, &cerrors.Conflict{Key: KeyFor(r).String()}
	}
	m.UID, m.CreationTimestamp = cm.UID, cm.CreationTimestamp
	if m.ResourceVersion == "" {
		m.ResourceVersion = cm.ResourceVersion // guard the read-modify-write
	}
	return c.write(ctx, r, c.be.Update)
}

// Apply creates the resource or replaces it whatever its revision,
// keeping uid and creationTimestamp; it retries lost races.
func (c *Client) Apply(ctx context.Context, in v3.Resource) (v3.Resource, error) {
	r := in // the writes copy what they store; in is left as it is
	if in != nil && in.GetObjectMeta().ResourceVersion != "" {
		r = v3.Clone(in)
		r.GetObjectMeta().ResourceVersion = ""
	}
	out, err := c.Create(ctx, r)
	for attempt := 0; errors.Is(err, cerrors.ErrExists); attempt++ {
		out, err = c.Update(ctx, r)
		if (!errors.Is(err, cerrors.ErrConflict) && !errors.Is(err, cerrors.ErrNotFound)) || attempt >= 4 {
			break
		}
		out, err = c.Create(ctx, r)
	}
	return out, err
}

// Delete removes a resource; resourceVersion "" deletes whatever is
// stored. A delete needs no decoding: a stored value that does not decode
// is removed all the same, and the resource returned then holds only its
// kind, name, namespace and the revision it was deleted at.
func (c *Client) Delete(ctx context.Context, kind, namespace, name, resourceVersion string) (v3.Resource, error) {
	if err := c.checkDelete(ctx, kind, namespace, name); err != nil {
		return nil, err
	}
	rev, err := parseRevision(resourceVersion)
	if err != nil {
		return nil, err
	}
	kv, err := c.be.Delete(ctx, model.ResourceKey{Kind: kind, Namespace: namespace, Name: name}, rev)
	if err != nil {
		return nil, err
	}
	r, err := c.decode(kv)
	if errors.Is(err, cerrors.ErrCorrupt) {
		if r, err = v3.New(kind); err == nil {
			m := r.GetObjectMeta()
			m.Name, m.Namespace, m.ResourceVersion = name, namespace, strconv.FormatInt(kv.Revision, 10)
		}
	}
	return r, err
}

// Get reads one resource.
func (c *Client) Get(ctx context.Context, kind, namespace, name string) (v3.Resource, error) {
	if r := synthesized(kind, name); r != nil {
		return r, nil
	}
	kv, err := c.be.Get(ctx, model.ResourceKey{Kind: kind, Namespace: namespace, Name: name})
	if err != nil {
		return nil, err
	}
	return c.decode(kv)
}

// ListOptions narrows a List.
type ListOptions struct {
	Namespace string // "" = all namespaces
	Name      string // "" = every name
}

// List reads every resource of a kind, with the revision it was read at.
//
// A stored value that does not decode does not fail the list, as in
// Calico: List returns the other resources and the revision together
// with a *cerrors.Partial naming each skipped key (errors.Is(err,
// cerrors.ErrCorrupt); cerrors.Skipped separates it from other errors). A
// caller that cannot act on part of a list treats it as any other error.
func (c *Client) List(ctx context.Context, kind string, opts ListOptions) ([]v3.Resource, int64, error) {
	l, err := c.be.List(ctx, model.ResourceListOptions{Kind: kind, Namespace: opts.Namespace, Name: opts.Name})
	if err != nil {
		return nil, 0, err
	}
	out, skipped, err := c.decodeAll(l.KVPairs)
	if err != nil {
		return nil, 0, err
	}
	if r := synthesized(kind, opts.Name); r != nil || (kind == v3.KindProfile && opts.Name == "") {
		out = append(out, defaultAllowProfile())
	}
	return out, l.Revision, cerrors.PartialOf(skipped)
}

// Watch streams raw changes to one kind from revision (see backend.Watch).
func (c *Client) Watch(ctx context.Context, kind string, opts ListOptions, revision int64) (backend.Watcher, error) {
	return c.be.Watch(ctx, model.ResourceListOptions{Kind: kind, Namespace: opts.Namespace, Name: opts.Name}, revision)
}

func newUID() string { return uuid.NewString() }
