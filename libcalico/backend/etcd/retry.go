package etcd

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Calls across a cluster's faults.
//
// With several members, one of them dying, restarting or being cut off
// must cost a call time, not fail it. Every call asks for a member with a
// leader (clientv3.WithRequireLeader), so a member cut off from its
// quorum refuses it at once rather than holding it until its own
// timeout. clientv3 sends a refused or broken read again, to another
// member; a write it never sends twice (at most once), as it cannot know
// whether the first was committed: the connection to the member broke
// after it was sent, or the member answered "request timed out" or
// "leader changed". This client does send such writes again, while the
// call's time lasts, and makes that safe: every write is a guarded
// transaction whose else branch reads its keys back, so that a second
// attempt refused because of the first finds exactly the values it
// writes, and reports the first one's success (see verified).
//
// Between attempts it waits a few tens of milliseconds, jittered, so that
// many clients refused by the same member do not come back in step.

// retryable reports whether err says the request may not have reached a
// member with a leader, or its outcome is unknown: worth another attempt.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unavailable
}

// attempts runs attempt until it returns an error that is not retryable
// (nil included) or ctx ends; retried tells an attempt that an earlier one
// may have been committed. It returns the last attempt's error, or when
// that is only ctx's end, the one before (which says more: "no leader").
func attempts(ctx context.Context, attempt func(ctx context.Context, retried bool) error) error {
	pause := 20 * time.Millisecond
	var prev error
	for n := 0; ; n++ {
		err := attempt(ctx, n > 0)
		if ctx.Err() != nil && prev != nil && err != nil && (errors.Is(err, ctx.Err()) || status.Code(err) == codes.DeadlineExceeded) {
			return prev
		}
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
		prev = err
		t := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, 400*time.Millisecond)
	}
}

// leaderCtx asks for a member with a leader.
func leaderCtx(ctx context.Context) context.Context { return clientv3.WithRequireLeader(ctx) }
