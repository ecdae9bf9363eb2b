package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Swap deletes dels and creates adds in one transaction: all of it
// happens or none of it. Each of dels is deleted only at its
// resourceVersion (it must be set); each of adds must not exist yet. The
// adds are defaulted, validated and cross-checked as Create checks them,
// but against the datastore as it will be after the swap: an IPPool is
// checked for overlap with the stored pools other than dels and with the
// other adds, so one pool can be replaced by smaller pools that cover it
// (calicoctl ipam split). It returns the adds as stored. A guard that no
// longer holds (a deleted resource changed, an added one appeared) gives
// an error matching cerrors.ErrConflict.
func (c *Client) Swap(ctx context.Context, dels, adds []v3.Resource) ([]v3.Resource, error) {
	tx, ok := c.be.(backend.Transactor)
	if !ok {
		return nil, errors.New("the datastore cannot write several resources in one transaction")
	}
	if n := len(dels) + len(adds) + 2; n > backend.MaxTxnOps {
		return nil, fmt.Errorf("%d resources are too many for one transaction (at most %d)", len(dels)+len(adds), backend.MaxTxnOps-2)
	}
	gone := map[model.ResourceKey]bool{}
	var ops []backend.TxnOp
	for _, d := range dels {
		rev, err := parseRevision(d.GetObjectMeta().ResourceVersion)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			return nil, &cerrors.Validation{Fields: []cerrors.FieldError{{Field: "Metadata.ResourceVersion", Value: "",
				Reason: "must be set on a resource to delete in a swap"}}}
		}
		k := KeyFor(d)
		if err := c.checkDelete(ctx, k.Kind, k.Namespace, k.Name); err != nil {
			return nil, err
		}
		gone[k] = true
		ops = append(ops, backend.TxnOp{Action: backend.TxnDelete, Key: k, Revision: rev})
	}
	out := make([]v3.Resource, 0, len(adds))
	// Checked against the datastore as it will be: without dels, with
	// the adds before each.
	k := c.NewChecker(nil)
	k.gone = gone
	for _, in := range adds {
		r, err := c.forCreate(ctx, in, k)
		if err != nil {
			return nil, err
		}
		if gone[KeyFor(r)] {
			return nil, fmt.Errorf("%s is both deleted and created", KeyFor(r))
		}
		val, err := encode(r)
		if err != nil {
			return nil, err
		}
		ops = append(ops, backend.TxnOp{Action: backend.TxnPut, Key: KeyFor(r), Value: val})
		out = append(out, r)
	}
	if err := c.EnsureInitialized(ctx); err != nil {
		return nil, err
	}
	res, err := tx.Txn(ctx, ops)
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		r.GetObjectMeta().ResourceVersion = strconv.FormatInt(res.Revision, 10)
	}
	return out, nil
}
