package etcd

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
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

// write runs a write's attempts within the call's time, and settles a
// write whose outcome that time left unknown.
//
// A write sent while the connection was up and never answered may yet be
// committed, after its caller was told it failed: an address assigned
// after the CNI DEL that followed found nothing to release, leaked for
// ever. So when the call's time ends that way, write goes on, detached
// from ctx, for up to one more timeout, until an attempt is answered.
// Every attempt is guarded, and a second one (retried) finds the first
// committed or commits itself, so an answered attempt tells the outcome;
// and once one is answered, a stray earlier attempt can no longer commit
// (its guard fails). Only a write etcd stays silent on for both timeouts
// is left unknown, and reported as failed; so is one whose caller
// cancelled ctx (a daemon shutting down is not held up).
func (c *Client) write(ctx context.Context, attempt func(ctx context.Context, retried bool) error) error {
	cctx, cancel := c.call(leaderCtx(ctx))
	defer cancel()
	unsure := false
	err := attempts(cctx, func(actx context.Context, retried bool) error {
		sent := c.cli.ActiveConnection().GetState() == connectivity.Ready
		err := attempt(actx, retried)
		unsure = unsure || (sent && unanswered(err))
		return err
	})
	if err == nil || !unsure || errors.Is(ctx.Err(), context.Canceled) {
		return err
	}
	// Past ctx's deadline, but not past its cancellation.
	sctx, scancel := c.call(leaderCtx(context.WithoutCancel(ctx)))
	defer scancel()
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			scancel()
		}
	})
	defer stop()
	if attempts(sctx, func(actx context.Context, _ bool) error { return attempt(actx, true) }) != nil {
		return err
	}
	return nil
}

// unanswered reports whether err leaves a sent write's outcome unknown:
// the connection broke, the member gave up waiting for the commit or lost
// its leadership, or the call's time ended first. A member without a
// leader refuses a write before proposing it.
func unanswered(err error) bool {
	switch {
	case err == nil || errors.Is(err, rpctypes.ErrNoLeader):
		return false
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
		return true
	}
	return false
}
