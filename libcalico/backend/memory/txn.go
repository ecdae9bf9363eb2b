package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
)

var _ backend.Transactor = (*Store)(nil)

// Read implements backend.Transactor under the store lock; every read is
// current, whatever the consistency asked for.
func (s *Store) Read(ctx context.Context, _ backend.Consistency, ops []backend.ReadOp) (*backend.ReadResult, error) {
	if len(ops) > backend.MaxTxnOps {
		return nil, fmt.Errorf("read of %d ops exceeds the limit of %d", len(ops), backend.MaxTxnOps)
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := &backend.ReadResult{Revision: s.rev, Results: make([][]*backend.KVPair, len(ops))}
	for i, op := range ops {
		var found []*entry
		switch {
		case op.Key != nil:
			p, err := keyPath(op.Key)
			if err != nil {
				return nil, err
			}
			if e, ok := s.data[p]; ok {
				found = append(found, e)
			}
		case op.List != nil:
			prefix, err := op.List.Prefix()
			if err != nil {
				return nil, err
			}
			var paths []string
			for p, e := range s.data {
				if strings.HasPrefix(p, prefix) && op.List.Matches(e.key) {
					paths = append(paths, p)
				}
			}
			sort.Strings(paths)
			for _, p := range paths {
				found = append(found, s.data[p])
			}
		default:
			return nil, errors.New("read op names neither a key nor a list")
		}
		for _, e := range found {
			kv := s.kv(e)
			if op.KeysOnly {
				kv.Value = nil
			}
			out.Results[i] = append(out.Results[i], kv)
		}
	}
	return out, nil
}

// Txn implements backend.Transactor under the store lock; as in etcd, the
// writes of one transaction share one revision.
func (s *Store) Txn(ctx context.Context, ops []backend.TxnOp) (*backend.TxnResult, error) {
	if len(ops) > backend.MaxTxnOps {
		return nil, fmt.Errorf("transaction of %d ops exceeds the limit of %d", len(ops), backend.MaxTxnOps)
	}
	paths := make([]string, len(ops))
	for i, op := range ops {
		if op.Action == backend.TxnCheckList {
			prefix, err := op.List.Prefix()
			if err != nil {
				return nil, err
			}
			paths[i] = prefix
			continue
		}
		p, err := keyPath(op.Key)
		if err != nil {
			return nil, err
		}
		if op.Action == backend.TxnDelete && op.Revision == 0 {
			return nil, fmt.Errorf("delete of %s needs a revision", op.Key)
		}
		if op.Action == backend.TxnCheckExists && (op.Revision != 0 || op.Expect != nil) {
			return nil, fmt.Errorf("existence check of %s takes no revision or value", op.Key)
		}
		paths[i] = p
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	ok := true
	for i, op := range ops {
		if op.Action == backend.TxnCheckList {
			ok = !s.modifiedUnder(paths[i], op.Revision)
			if !ok {
				break
			}
			continue
		}
		e, present := s.data[paths[i]]
		if op.Action == backend.TxnCheckExists {
			if ok = present; !ok {
				break
			}
			continue
		}
		if (op.Revision == 0 && present) || (op.Revision != 0 && (!present || e.mod != op.Revision)) ||
			(op.Expect != nil && (!present || !bytes.Equal(e.value, op.Expect))) {
			ok = false
			break
		}
	}
	if !ok {
		out := &backend.TxnResult{Revision: s.rev, Current: make([]*backend.KVPair, len(ops))}
		for i, op := range ops {
			if op.Action == backend.TxnCheckList {
				continue
			}
			if e, present := s.data[paths[i]]; present {
				out.Current[i] = s.kv(e)
			}
		}
		return out, &cerrors.Conflict{Key: ops[0].String()}
	}
	writes := false
	for _, op := range ops {
		writes = writes || op.Action == backend.TxnPut || op.Action == backend.TxnDelete
	}
	if !writes {
		return &backend.TxnResult{Revision: s.rev}, nil
	}
	s.rev++
	for i, op := range ops {
		p, old := paths[i], s.data[paths[i]]
		switch op.Action {
		case backend.TxnPut:
			e := &entry{key: op.Key, value: clone(op.Value), mod: s.rev}
			s.data[p] = e
			ev := backend.WatchEvent{Type: backend.EventAdded, New: s.kv(e), Revision: s.rev}
			if old != nil {
				ev.Type, ev.Old = backend.EventModified, s.kv(old)
			}
			s.publish(p, ev)
		case backend.TxnDelete:
			delete(s.data, p)
			s.publish(p, backend.WatchEvent{Type: backend.EventDeleted, Old: s.kv(old), Revision: s.rev})
		}
	}
	return &backend.TxnResult{Revision: s.rev}, nil
}

// modifiedUnder reports whether any key under prefix was written after rev.
func (s *Store) modifiedUnder(prefix string, rev int64) bool {
	for p, e := range s.data {
		if e.mod > rev && strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}
