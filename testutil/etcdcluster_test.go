package testutil

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEtcdCluster checks the helper itself on a real 3-member cluster:
// proxies and attached namespaces reach it, a killed leader is replaced
// and comes back, a partitioned member is cut off and catches up. (The
// backend's cluster test goes through every fault.)
func TestEtcdCluster(t *testing.T) {
	c := StartEtcdCluster(t, 3)
	ctx := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	proxied, err := c.Proxy(nil, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pcli, err := clientv3.New(clientv3.Config{Endpoints: proxied, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pcli.Close()
	if _, err := pcli.Put(ctx(), "/t/proxied", "x"); err != nil {
		t.Fatalf("put through the proxies: %v", err)
	}
	ns := NewNetNS(t)
	addr, err := c.Attach(ns, "etcd0")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if err := ns.Exec("ping", "-c", "1", "-W", "5", m.IP); err != nil {
			t.Fatalf("attached namespace (%s) cannot reach %s: %v", addr, m.Name, err)
		}
	}

	// Kill the leader: the others elect another.
	leader, err := c.Leader(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx()); err != nil {
		t.Fatal(err)
	}
	if l, err := c.Leader(ctx()); err != nil || l == leader {
		t.Fatalf("after killing %s the leader is %v (%v)", leader.Name, l, err)
	}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx()); err != nil {
		t.Fatal(err)
	}
	if len(c.Reachable()) != 3 {
		t.Fatalf("%d members reachable after the restart", len(c.Reachable()))
	}

	// Partition a follower: the attached namespace no longer reaches it,
	// the others still take writes; healed, it catches up.
	f, err := c.Follower(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Partition(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Exec("ping", "-c", "1", "-W", "1", f.IP); err == nil {
		t.Errorf("partitioned %s still answers", f.Name)
	}
	// clientv3 does not retry a write whose connection broke (the one to
	// the partitioned member may): the test does, as callers must.
	if err := retry(ctx(), func(ctx context.Context) error { _, err := pcli.Put(ctx, "/t/partitioned", "x"); return err }); err != nil {
		t.Fatalf("write with one member partitioned: %v", err)
	}
	if err := f.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx()); err != nil {
		t.Fatal(err)
	}
	// The healed member answers once it has caught up with the leader.
	err = retry(ctx(), func(ctx context.Context) error {
		return f.withClient(ctx, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.Get(ctx, "/t/partitioned")
			if err == nil && len(resp.Kvs) != 1 {
				err = fmt.Errorf("the healed member has %d keys", len(resp.Kvs))
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// retry calls fn until it succeeds or ctx ends, returning its last error.
func retry(ctx context.Context, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
