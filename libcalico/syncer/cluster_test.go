package syncer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/testutil"
)

// TestClusterFaults follows a 3-member cluster through its faults with
// three syncers, each with its own client, while a writer keeps changing
// pools and blocks: after each fault every syncer ends InSync with exactly
// the cluster's contents, and keeps to the Callbacks contract throughout.
func TestClusterFaults(t *testing.T) {
	cl := testutil.StartEtcdCluster(t, 3)
	newBackend := func() backend.Client {
		c, err := etcd.New(etcd.Config{Endpoints: cl.ClientURLs(), Dialer: cl.DialContext, Timeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	writer := newBackend()
	put(t, writer, poolKey("base"), poolJSON(t, "base", "10.0.0.0/16"))
	var recs []*recorder
	for range 3 {
		r := newRecorder()
		start(t, newBackend(), twoPrefixes, r)
		r.waitStatus(t, 0, InSync)
		recs = append(recs, r)
	}

	// The writer changes something every 50 ms, whatever the cluster's
	// state; failed writes are simply not counted.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	writes, failed := 0, 0
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			var err error
			switch i % 3 {
			case 0:
				_, err = writer.Apply(ctx, &backend.KVPair{Key: poolKey(fmt.Sprintf("p%d", i%7)), Value: poolJSON(t, "p", fmt.Sprintf("10.%d.0.0/16", i%200))})
			case 1:
				_, err = writer.Apply(ctx, &backend.KVPair{Key: blockKey(fmt.Sprintf("10.1.%d.0/26", i%5)), Value: blockJSON(t, fmt.Sprintf("10.1.%d.0/26", i%5), fmt.Sprintf("n%d", i))})
			case 2:
				_, err = writer.Delete(ctx, poolKey(fmt.Sprintf("p%d", (i+3)%7)), 0)
			}
			mu.Lock()
			if err == nil {
				writes++
			} else {
				failed++
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	})
	defer func() { stop(); wg.Wait() }()

	cl.RunFaults(t, nil, func(t *testing.T, f testutil.ClusterFault) {
		// One more write after healing, then every syncer must show the
		// cluster's contents exactly.
		eventually(t, "write after healing", func() error {
			_, err := writer.Apply(context.Background(), &backend.KVPair{Key: poolKey("after"), Value: poolJSON(t, "after", "10.9.0.0/16")})
			return err
		})
		time.Sleep(200 * time.Millisecond)
		want := contents(t, writer, poolOpts, blockOpts)
		for i, r := range recs {
			r.waitFor(t, fmt.Sprintf("syncer %d to show the cluster's contents", i), func() bool {
				return equalRevs(r.revisions(), contents(t, writer, poolOpts, blockOpts))
			})
			ss := r.statusesSince(0)
			if ss[len(ss)-1] != InSync {
				t.Errorf("syncer %d ends %v", i, ss[len(ss)-1])
			}
			r.check(t)
		}
		mu.Lock()
		t.Logf("%d writes so far (%d failed), %d keys", writes, failed, len(want))
		mu.Unlock()
	})

	// A compaction on top: every syncer relists and stays exact.
	ctx2, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Compact(ctx2); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		r.waitFor(t, fmt.Sprintf("syncer %d after compaction", i), func() bool {
			return equalRevs(r.revisions(), contents(t, writer, poolOpts, blockOpts))
		})
	}
}
