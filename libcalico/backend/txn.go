package backend

import (
	"context"

	"github.com/calico-etcd/calico/libcalico/model"
)

// MaxTxnOps bounds the reads of one Transactor.Read and the ops of one
// Transactor.Txn (etcd's default --max-txn-ops).
const MaxTxnOps = 128

// ReadOp names one thing a Transactor.Read fetches: a single Key, or every
// key a List matches.
type ReadOp struct {
	Key  model.Key
	List model.ListOptions
	// KeysOnly returns revisions without values (Value is nil).
	KeysOnly bool
}

// ReadResult holds what each ReadOp found, all at one Revision.
type ReadResult struct {
	Revision int64
	// Results[i] is what ReadOp i found: nothing (key absent), one pair,
	// or a list in key order.
	Results [][]*KVPair
}

// TxnAction is what a TxnOp does once every guard of its Txn holds.
type TxnAction int

// Txn actions.
const (
	// TxnCheck only guards the key.
	TxnCheck TxnAction = iota
	// TxnPut stores Value at Key.
	TxnPut
	// TxnDelete removes Key.
	TxnDelete
	// TxnCheckList guards every key under List's prefix instead of one
	// key: none may have been modified (or created) after Revision. Its
	// Current after a guard failure is nil.
	TxnCheckList
	// TxnCheckExists guards that Key exists, at any revision (Revision
	// must be 0).
	TxnCheckExists
)

// TxnOp is one guarded step of a Transactor.Txn.
type TxnOp struct {
	Action TxnAction
	Key    model.Key
	// Revision guards Key: 0 means the key must be absent, anything else
	// that its modification revision equals Revision. A TxnDelete needs a
	// non-zero Revision.
	Revision int64
	// Value is stored by TxnPut.
	Value []byte
	// Expect, when set, also guards Key's value: it must equal Expect
	// byte for byte. Revisions say the key is unchanged only while the
	// store's history is the one they were read in (not after a restore
	// from backup); the value says so whatever happened.
	Expect []byte
	// List names the keys a TxnCheckList guards.
	List model.ListOptions
}

// String names what the op guards, for errors.
func (op TxnOp) String() string {
	if op.Action == TxnCheckList {
		if p, err := op.List.Prefix(); err == nil {
			return p + "*"
		}
		return "list"
	}
	if op.Key == nil {
		return "<nil>"
	}
	return op.Key.String()
}

// TxnResult describes a Txn.
type TxnResult struct {
	// Revision is the datastore revision of the commit, which is the new
	// modification revision of every key the Txn wrote (on success), or
	// of the read behind Current (on a guard failure).
	Revision int64
	// Current holds, after a guard failure, the stored value of each op's
	// key (nil when absent), so the caller can retry without reading again.
	Current []*KVPair
}

// Consistency says how fresh a Transactor.Read must be.
type Consistency int

// Consistency levels.
const (
	// Linearizable reads see every write acknowledged before them.
	Linearizable Consistency = iota
	// Serializable reads may miss the latest writes (etcd answers from the
	// member's applied state without waiting for writes in flight); for
	// callers whose writes are all revision-guarded, so that staleness
	// costs at most a retry.
	Serializable
)

// Transactor is implemented by backends that can read many keys at one
// revision and commit several guarded writes atomically, each in a single
// round trip. IPAM uses it so that a block and its handle change together.
type Transactor interface {
	// Read performs every op at one revision; at most MaxTxnOps ops.
	Read(ctx context.Context, c Consistency, ops []ReadOp) (*ReadResult, error)
	// Txn applies every op if and only if every guard holds. When a guard
	// fails it writes nothing and returns a result with Current filled in
	// and an error matching cerrors.ErrConflict. At most MaxTxnOps ops,
	// each key at most once.
	Txn(ctx context.Context, ops []TxnOp) (*TxnResult, error)
}
