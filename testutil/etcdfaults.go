package testutil

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// stopGrace is how long a stopped member may take to exit before it is
// killed.
const stopGrace = 2 * time.Second

// ClusterFault is one fault of the sequence every component is tested
// through (EtcdCluster.Faults).
type ClusterFault struct {
	Name string
	// Quorum says whether a quorum of members stands while the fault lasts.
	Quorum bool
	// Inject breaks the cluster; when a quorum stands it returns once the
	// reachable members have a leader. Heal repairs the cluster and returns
	// once every member is ready.
	Inject, Heal func(context.Context) error
}

// Faults is the sequence every component goes through: the leader killed
// (SIGKILL) and started again; a follower stopped for a while; the leader
// partitioned from everything (peers and clients) and healed; quorum lost
// with two members stopped while the third answers; every member stopped
// and all three started again.
func (c *EtcdCluster) Faults() []ClusterFault {
	var victim *EtcdMember
	pick := func(ctx context.Context, leader bool) (*EtcdMember, error) {
		if leader {
			return c.Leader(ctx)
		}
		return c.Follower(ctx)
	}
	startAll := func(ctx context.Context) error {
		for _, m := range c.Members {
			if err := m.Start(); err != nil {
				return err
			}
		}
		return c.WaitReady(ctx)
	}
	return []ClusterFault{
		{
			Name: "leader killed", Quorum: true,
			Inject: func(ctx context.Context) (err error) {
				if victim, err = pick(ctx, true); err != nil {
					return err
				}
				if err := victim.Kill(); err != nil {
					return err
				}
				return c.WaitReady(ctx)
			},
			Heal: startAll,
		},
		{
			Name: "follower stopped", Quorum: true,
			Inject: func(ctx context.Context) (err error) {
				if victim, err = pick(ctx, false); err != nil {
					return err
				}
				if err := victim.Stop(stopGrace); err != nil {
					return err
				}
				return c.WaitReady(ctx)
			},
			Heal: startAll,
		},
		{
			Name: "leader partitioned", Quorum: true,
			Inject: func(ctx context.Context) (err error) {
				if victim, err = pick(ctx, true); err != nil {
					return err
				}
				if err := victim.Partition(); err != nil {
					return err
				}
				return c.WaitReady(ctx)
			},
			Heal: func(ctx context.Context) error {
				if err := victim.Heal(); err != nil {
					return err
				}
				return c.WaitReady(ctx)
			},
		},
		{
			Name: "quorum lost", Quorum: false,
			Inject: func(context.Context) error {
				return stopAll(c.Members[:len(c.Members)/2+len(c.Members)%2])
			},
			Heal: startAll,
		},
		{
			Name: "all restarted", Quorum: false,
			Inject: func(context.Context) error { return stopAll(c.Members) },
			Heal:   startAll,
		},
	}
}

// stopAll stops members at once.
func stopAll(ms []*EtcdMember) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.Stop(stopGrace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RunFaults runs each of Faults as a subtest: it injects the fault, calls
// during, heals the cluster (also when during failed) and calls after.
// Either callback may be nil. It logs how long each fault lasted.
func (c *EtcdCluster) RunFaults(t *testing.T, during, after func(t *testing.T, f ClusterFault)) {
	t.Helper()
	for _, f := range c.Faults() {
		ok := t.Run(f.Name, func(t *testing.T) {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			if err := f.Inject(ctx); err != nil {
				t.Fatalf("injecting %q: %v", f.Name, err)
			}
			injected := time.Since(start)
			healed := false
			var healing time.Duration
			heal := func() {
				if healed {
					return
				}
				healed = true
				hs := time.Now()
				if err := f.Heal(ctx); err != nil {
					t.Fatalf("healing %q: %v", f.Name, err)
				}
				healing = time.Since(hs)
			}
			defer heal()
			if during != nil {
				during(t, f)
			}
			lasted := time.Since(start)
			heal()
			if after != nil {
				after(t, f)
			}
			t.Logf("%s: injected in %v, lasted %v, healed in %v; %v in all", f.Name, injected.Round(time.Millisecond),
				lasted.Round(time.Millisecond), healing.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		})
		if !ok {
			t.Fatalf("fault %q failed; the later faults would not mean much", f.Name)
		}
	}
}

// String names the fault and whether a quorum stands.
func (f ClusterFault) String() string {
	return fmt.Sprintf("%s (quorum: %v)", f.Name, f.Quorum)
}
