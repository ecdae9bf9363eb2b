package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
)

// Plan is an AutoAssign decided but not yet written. A caller whose own
// writes belong with the addresses (the CNI plugin's WorkloadEndpoint,
// which names them) plans, builds those writes from the planned
// addresses, and commits both in one transaction: one round trip, and
// both stored or neither.
//
//	plan, err := c.Plan(ctx, args)       // no I/O
//	v4, v6 := plan.IPs()                 // nil, nil: decided only as written
//	res, err := plan.Commit(ctx, ops...) // res.WithOps: ops written too
//
// Only a host's cached state (see warm.go) lets a plan decide without
// reading the datastore. Without one, Commit decides as it writes, as
// AutoAssign does, and writes no ops: the caller writes them after.
type Plan struct {
	c    *Client
	args AutoAssignArgs
	// warm is the one-transaction assignment; nil when Commit must take
	// the full path.
	warm *warmPlan
}

// Committed is what Plan.Commit wrote.
type Committed struct {
	// V4 and V6 are the addresses per version, as AutoAssign returns
	// them.
	V4, V6 *Assignments
	// WithOps reports whether the caller's ops were written in the
	// assignment's transaction, at Revision. When false they were not
	// written at all.
	WithOps  bool
	Revision int64
}

// Plan decides an assignment of args.Num4 IPv4 and args.Num6 IPv6
// addresses to args.Hostname (see AutoAssign) without writing it, and
// without reading the datastore: from the host's cached state when there
// is one that can serve args, else not at all (IPs then returns nothing
// and Commit decides). It fails only on invalid args.
func (c *Client) Plan(_ context.Context, args AutoAssignArgs) (*Plan, error) {
	if args.Num4 < 0 || args.Num6 < 0 {
		return nil, fmt.Errorf("invalid request for %d IPv4 and %d IPv6 addresses", args.Num4, args.Num6)
	}
	if args.IntendedUse == "" {
		args.IntendedUse = v3.IPPoolAllowedUseWorkload
	}
	if args.IntendedUse == v3.IPPoolAllowedUseLoadBalancer {
		return nil, errors.New("LoadBalancer assignment is not supported")
	}
	return &Plan{c: c, args: args, warm: c.planWarm(args)}, nil
}

// IPs returns the addresses Commit writes unless something moved in the
// datastore meanwhile, each with its block's prefix length; nil, nil
// when the plan could not decide them without reading (Commit then
// decides, and writes no ops).
func (p *Plan) IPs() (v4, v6 []netip.Prefix) {
	if p.warm == nil {
		return nil, nil
	}
	return slices.Clone(p.warm.out[4].IPs), slices.Clone(p.warm.out[6].IPs)
}

// Commit writes the assignment. When IPs returned addresses, ops are
// written in the same transaction, guarded as they say; if the
// transaction fails only on their guards, the planned assignment is
// written on its own, and if the datastore moved under the plan (another
// writer of the block, the pool, the node, a reservation, or the handle
// exists) the full path assigns afresh, perhaps other addresses. In both
// cases ops are not written and Committed.WithOps is false.
//
// On error, as AutoAssign, Commit returns what it assigned (or, when the
// one transaction's outcome is unknown, what it planned), for the caller
// to release.
func (p *Plan) Commit(ctx context.Context, ops ...backend.TxnOp) (*Committed, error) {
	if p.warm != nil {
		res, done, err := p.c.commitWarm(ctx, p.args, p.warm, ops)
		if done {
			return res, err
		}
	}
	v4, v6, err := p.c.assignFull(ctx, p.args)
	return &Committed{V4: v4, V6: v6}, err
}
