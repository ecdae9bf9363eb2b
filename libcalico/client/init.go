package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// ClusterInformationName is the one ClusterInformation a cluster has.
const ClusterInformationName = "default"

// EnsureInitialized creates clusterinformations/default and tier default
// if absent. Writes call it once per client; it is safe to call again and
// from several hosts at once.
func (c *Client) EnsureInitialized(ctx context.Context) error {
	_, err := c.EnsureInitializedAnd(ctx)
	return err
}

// EnsureInitializedAnd is EnsureInitialized that also reports which of
// rs exist, read in the same round trip.
func (c *Client) EnsureInitializedAnd(ctx context.Context, rs ...v3.Resource) ([]bool, error) {
	if c.initialized.Load() {
		if len(rs) == 0 {
			return nil, nil
		}
		return c.present(ctx, rs)
	}
	guid := make([]byte, 16)
	if _, err := rand.Read(guid); err != nil {
		return nil, err
	}
	ready := true
	ci := v3.NewClusterInformation()
	ci.Name = ClusterInformationName
	ci.Spec.ClusterGUID = hex.EncodeToString(guid)
	ci.Spec.ClusterType = "etcd"
	ci.Spec.CalicoVersion = buildinfo.Version
	ci.Spec.DatastoreReady = &ready

	tier := v3.NewTier()
	tier.Name = DefaultTier

	want := []v3.Resource{ci, tier}
	present, err := c.present(ctx, append(want, rs...))
	if err != nil {
		return nil, err
	}
	for i, r := range want {
		if present[i] {
			continue
		}
		if err := c.createIfAbsent(ctx, r); err != nil {
			return nil, err
		}
	}
	c.initialized.Store(true)
	return present[len(want):], nil
}

// DatastoreReady reports whether ClusterInformation lets components use
// the datastore (see v3.ClusterInformationSpec.Ready). A cluster without
// one is ready: its first writer initialises it. The read is
// serializable where the backend can: an etcd member that lost its
// quorum still answers, from what it has applied.
func (c *Client) DatastoreReady(ctx context.Context) (bool, error) {
	key := model.ResourceKey{Kind: v3.KindClusterInformation, Name: ClusterInformationName}
	var kv *backend.KVPair
	if tx, ok := c.be.(backend.Transactor); ok {
		res, err := tx.Read(ctx, backend.Serializable, []backend.ReadOp{{Key: key}})
		if err != nil {
			return false, fmt.Errorf("reading ClusterInformation %s: %w", ClusterInformationName, err)
		}
		if len(res.Results[0]) > 0 {
			kv = res.Results[0][0]
		}
	} else {
		var err error
		if kv, err = c.be.Get(ctx, key); err != nil && !errors.Is(err, cerrors.ErrNotFound) {
			return false, fmt.Errorf("reading ClusterInformation %s: %w", ClusterInformationName, err)
		}
	}
	if kv == nil {
		return true, nil
	}
	r, err := c.decode(kv)
	if err != nil {
		return false, err
	}
	ci, ok := r.(*v3.ClusterInformation)
	if !ok {
		return false, fmt.Errorf("ClusterInformation %s holds a %T", ClusterInformationName, r)
	}
	return ci.Spec.Ready(), nil
}

// present reports which resources exist, in one round trip when the
// backend can read several keys at once.
func (c *Client) present(ctx context.Context, rs []v3.Resource) ([]bool, error) {
	out := make([]bool, len(rs))
	tx, ok := c.be.(backend.Transactor)
	if !ok {
		return out, nil // createIfAbsent reads each
	}
	ops := make([]backend.ReadOp, len(rs))
	for i, r := range rs {
		ops[i] = backend.ReadOp{Key: KeyFor(r), KeysOnly: true}
	}
	res, err := tx.Read(ctx, backend.Serializable, ops)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		out[i] = len(res.Results[i]) > 0
	}
	return out, nil
}

func (c *Client) createIfAbsent(ctx context.Context, r v3.Resource) error {
	m := r.GetObjectMeta()
	_, err := c.be.Get(ctx, KeyFor(r))
	if err == nil || !errors.Is(err, cerrors.ErrNotFound) {
		return err
	}
	r.Default()
	if err := r.Validate(); err != nil {
		return err
	}
	m.UID = newUID()
	m.CreationTimestamp = v3.Now()
	if _, err := c.write(ctx, r, c.be.Create); err != nil && !errors.Is(err, cerrors.ErrExists) {
		return err
	}
	return nil
}
