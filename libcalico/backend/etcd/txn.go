package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

var _ backend.Transactor = (*Client)(nil)

// Read implements backend.Transactor with one etcd transaction of gets.
func (c *Client) Read(ctx context.Context, consistency backend.Consistency, ops []backend.ReadOp) (*backend.ReadResult, error) {
	if len(ops) > backend.MaxTxnOps {
		return nil, fmt.Errorf("read of %d ops exceeds the limit of %d", len(ops), backend.MaxTxnOps)
	}
	gets := make([]clientv3.Op, len(ops))
	for i, op := range ops {
		var opts []clientv3.OpOption
		if op.KeysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		if consistency == backend.Serializable {
			// A read-only txn whose gets are all serializable is served
			// without a linearizable read barrier.
			opts = append(opts, clientv3.WithSerializable())
		}
		switch {
		case op.Key != nil:
			p, err := path(op.Key)
			if err != nil {
				return nil, err
			}
			gets[i] = clientv3.OpGet(p, opts...)
		case op.List != nil:
			prefix, err := op.List.Prefix()
			if err != nil {
				return nil, err
			}
			gets[i] = clientv3.OpGet(prefix, append(opts, clientv3.WithPrefix())...)
		default:
			return nil, errors.New("read op names neither a key nor a list")
		}
	}
	// A serializable read may be served by a member without a leader.
	rctx := ctx
	if consistency != backend.Serializable {
		rctx = leaderCtx(ctx)
	}
	cctx, cancel := c.call(rctx)
	defer cancel()
	var resp *clientv3.TxnResponse
	err := attempts(cctx, func(actx context.Context, _ bool) (err error) {
		st := c.ident.start()
		if resp, err = c.cli.Txn(actx).Then(gets...).Commit(); err == nil {
			c.ident.observe(resp.Header, st, consistency != backend.Serializable)
		}
		return err
	})
	if err != nil {
		return nil, c.wrap(ctx, "read", err)
	}
	out := &backend.ReadResult{Revision: resp.Header.Revision, Results: make([][]*backend.KVPair, len(ops))}
	for i, op := range ops {
		for _, kv := range resp.Responses[i].GetResponseRange().Kvs {
			k := op.Key
			if k == nil {
				if k = model.ParseKey(string(kv.Key)); k == nil || !op.List.Matches(k) {
					continue
				}
			}
			out.Results[i] = append(out.Results[i], &backend.KVPair{Key: k, Value: kv.Value, Revision: kv.ModRevision})
		}
	}
	return out, nil
}

// Txn implements backend.Transactor with one guarded etcd transaction
// whose else branch reads the current values back.
func (c *Client) Txn(ctx context.Context, ops []backend.TxnOp) (*backend.TxnResult, error) {
	if len(ops) > backend.MaxTxnOps {
		return nil, fmt.Errorf("transaction of %d ops exceeds the limit of %d", len(ops), backend.MaxTxnOps)
	}
	cmps := make([]clientv3.Cmp, 0, len(ops))
	var thens []clientv3.Op
	elses := make([]clientv3.Op, 0, len(ops))
	for _, op := range ops {
		if op.Action == backend.TxnCheckList {
			prefix, err := op.List.Prefix()
			if err != nil {
				return nil, err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(prefix), "<", op.Revision+1).WithPrefix())
			elses = append(elses, clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()))
			continue
		}
		p, err := path(op.Key)
		if err != nil {
			return nil, err
		}
		if op.Action == backend.TxnCheckExists {
			if op.Revision != 0 || op.Expect != nil {
				return nil, fmt.Errorf("existence check of %s takes no revision or value", op.Key)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(p), ">", 0))
			elses = append(elses, clientv3.OpGet(p))
			continue
		}
		if op.Revision == 0 {
			if op.Action == backend.TxnDelete {
				return nil, fmt.Errorf("delete of %s needs a revision", op.Key)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.Version(p), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p), "=", op.Revision))
		}
		if op.Expect != nil {
			cmps = append(cmps, clientv3.Compare(clientv3.Value(p), "=", string(op.Expect)))
		}
		switch op.Action {
		case backend.TxnPut:
			thens = append(thens, clientv3.OpPut(p, string(op.Value)))
		case backend.TxnDelete:
			thens = append(thens, clientv3.OpDelete(p))
		}
		elses = append(elses, clientv3.OpGet(p))
	}
	var resp *clientv3.TxnResponse
	var retried bool
	err := c.write(ctx, func(actx context.Context, again bool) (err error) {
		st := c.ident.start()
		retried = again
		if resp, err = c.cli.Txn(actx).If(cmps...).Then(thens...).Else(elses...).Commit(); err == nil {
			c.ident.observe(resp.Header, st, true)
		}
		return err
	})
	if err != nil {
		return nil, c.wrap(ctx, "transaction", err)
	}
	out := &backend.TxnResult{Revision: resp.Header.Revision}
	if resp.Succeeded {
		return out, nil
	}
	out.Current = make([]*backend.KVPair, len(ops))
	for i, op := range ops {
		if op.Action == backend.TxnCheckList {
			continue
		}
		if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
			out.Current[i] = &backend.KVPair{Key: op.Key, Value: kvs[0].Value, Revision: kvs[0].ModRevision}
		}
	}
	if retried {
		if rev, ok := committedBefore(ops, out.Current); ok {
			return &backend.TxnResult{Revision: rev}, nil
		}
	}
	return out, &cerrors.Conflict{Key: ops[0].String()}
}

// committedBefore tells, from the values a second attempt's else branch
// read, whether the first attempt was committed: every key it puts holds
// exactly its value (all at one revision, returned) and every key it
// deletes is gone. Checks say nothing either way; a transaction of checks
// and deletes only is not told apart from someone else's deletes, and is
// reported as the conflict it now is.
func committedBefore(ops []backend.TxnOp, cur []*backend.KVPair) (int64, bool) {
	var rev int64
	for i, op := range ops {
		switch op.Action {
		case backend.TxnPut:
			if cur[i] == nil || !bytes.Equal(cur[i].Value, op.Value) || (rev != 0 && cur[i].Revision != rev) {
				return 0, false
			}
			rev = cur[i].Revision
		case backend.TxnDelete:
			if cur[i] != nil {
				return 0, false
			}
		}
	}
	return rev, rev != 0
}
