// Package keyqueue is the reconcile loop every controller runs: a queue
// of keys (client-go's rate-limited workqueue, so a key queued many times
// is synced once), workers calling a sync function for each key, retries
// with exponential backoff, and a periodic resync.
package keyqueue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/util/workqueue"
)

// Queue holds keys waiting to be synced.
type Queue[K comparable] struct {
	q   workqueue.TypedRateLimitingInterface[K]
	log *logrus.Entry
	// observe, when set, hears how long each sync took.
	observe func(time.Duration)
}

// New returns a queue whose failed keys are retried after base, doubling
// up to max. observe may be nil.
func New[K comparable](name string, base, max time.Duration, log *logrus.Entry, observe func(time.Duration)) *Queue[K] {
	rl := workqueue.NewTypedItemExponentialFailureRateLimiter[K](base, max)
	return &Queue[K]{
		q:   workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[K]{Name: name}),
		log: log, observe: observe,
	}
}

// Add queues k.
func (q *Queue[K]) Add(k K) { q.q.Add(k) }

// AddAfter queues k once d has passed.
func (q *Queue[K]) AddAfter(k K, d time.Duration) { q.q.AddAfter(k, d) }

// Len is the number of keys waiting.
func (q *Queue[K]) Len() int { return q.q.Len() }

// Run syncs keys with syncKey on workers goroutines until ctx ends, then shuts the
// queue down. A key whose sync fails is retried with backoff. Every
// resyncEvery (0: never) it calls resync, which queues keys again.
func (q *Queue[K]) Run(ctx context.Context, workers int, syncKey func(context.Context, K) error, resyncEvery time.Duration, resync func()) {
	var wg sync.WaitGroup
	if resyncEvery > 0 {
		wg.Go(func() {
			t := time.NewTicker(resyncEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					resync()
				}
			}
		})
	}
	for range max(workers, 1) {
		wg.Go(func() {
			for q.next(ctx, syncKey) {
			}
		})
	}
	<-ctx.Done()
	q.q.ShutDown()
	wg.Wait()
}

func (q *Queue[K]) next(ctx context.Context, syncKey func(context.Context, K) error) bool {
	k, quit := q.q.Get()
	if quit {
		return false
	}
	defer q.q.Done(k)
	start := time.Now()
	err := syncKey(ctx, k)
	if q.observe != nil {
		q.observe(time.Since(start))
	}
	if err == nil {
		q.q.Forget(k)
	} else if ctx.Err() == nil {
		q.log.WithError(err).WithField("key", fmt.Sprint(k)).Warn("reconcile failed; will retry")
		q.q.AddRateLimited(k)
	}
	return true
}
