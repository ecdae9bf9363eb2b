package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/defaultpools"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/syncer"
	"github.com/calico-etcd/calico/libcalico/tunneladdr"
)

// This file holds calico-node's start-up duties that confd carries out
// besides registering the Node: the default IP pools (once, at start) and
// this node's tunnel addresses (at start and whenever an IP pool or this
// Node changes).

// ensurePools creates the default pools cfg asks for, retrying while the
// datastore is unavailable.
func ensurePools(ctx context.Context, c *client.Client, cfg Config, log *logrus.Entry) error {
	if cfg.DefaultPools.Empty() {
		return nil
	}
	backoff := 500 * time.Millisecond
	for {
		_, err := defaultpools.Ensure(ctx, c, cfg.DefaultPools, log.WithField("component", "default-pools"))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cfg.OneTime || errors.Is(err, cerrors.ErrValidation) {
			return fmt.Errorf("default IP pools: %w", err)
		}
		log.WithError(err).Warn("Cannot create the default IP pools yet; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// tunnels keeps this node's tunnel addresses in line with the IP pools:
// it reconciles after the first complete sync, whenever an IP pool or
// this Node changes, every resync interval, and after a failure (with
// backoff).
type tunnels struct {
	alloc  tunneladdr.Allocator
	node   string
	log    *logrus.Entry
	kick   chan struct{}
	mu     sync.Mutex
	synced bool
}

var _ syncer.Callbacks = (*tunnels)(nil)

func newTunnels(c *client.Client, node string, log *logrus.Entry) (*tunnels, error) {
	ic, err := ipam.New(c.Backend(), log, ipam.Options{})
	if err != nil {
		return nil, fmt.Errorf("IPAM client for tunnel addresses: %w", err)
	}
	return &tunnels{alloc: tunneladdr.Allocator{Client: c, IPAM: ic, Log: log}, node: node, log: log,
		kick: make(chan struct{}, 1)}, nil
}

// OnStatusUpdated implements syncer.Callbacks.
func (t *tunnels) OnStatusUpdated(st syncer.Status) {
	if st != syncer.InSync {
		return
	}
	t.mu.Lock()
	t.synced = true
	t.mu.Unlock()
	t.poke()
}

// OnUpdates implements syncer.Callbacks.
func (t *tunnels) OnUpdates(ups []syncer.Update) {
	t.mu.Lock()
	synced := t.synced
	t.mu.Unlock()
	if !synced {
		return
	}
	for _, u := range ups {
		k, ok := u.Key.(model.ResourceKey)
		if ok && (k.Kind == v3.KindIPPool || (k.Kind == v3.KindNode && k.Name == t.node)) {
			t.poke()
			return
		}
	}
}

func (t *tunnels) poke() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// once reconciles once (OneTime mode); a node that is not registered
// has no tunnel addresses to reconcile.
func (t *tunnels) once(ctx context.Context) error {
	_, err := t.alloc.Reconcile(ctx, t.node)
	if errors.Is(err, cerrors.ErrNotFound) {
		t.log.WithError(err).Info("No Node for this host; no tunnel addresses")
		return nil
	}
	return err
}

// run reconciles until ctx ends.
func (t *tunnels) run(ctx context.Context, resync time.Duration) {
	tick := time.NewTicker(resync)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := 500 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		case <-tick.C:
			t.mu.Lock()
			synced := t.synced
			t.mu.Unlock()
			if !synced {
				continue
			}
		case <-retry.C:
		}
		_, err := t.alloc.Reconcile(ctx, t.node)
		switch {
		case err == nil:
			backoff = 500 * time.Millisecond
			retry.Stop()
		case ctx.Err() != nil:
			return
		case errors.Is(err, cerrors.ErrNotFound):
			// Not registered (yet): its creation will kick us.
			t.log.WithError(err).Info("No Node for this host yet; tunnel addresses wait for it")
		default:
			t.log.WithError(err).Warn("Cannot update this node's tunnel addresses; retrying")
			retry.Reset(backoff)
			backoff = min(2*backoff, 10*time.Second)
		}
	}
}

// fanout passes the syncer's output to several consumers in turn.
type fanout []syncer.Callbacks

func (f fanout) OnStatusUpdated(st syncer.Status) {
	for _, c := range f {
		c.OnStatusUpdated(st)
	}
}

func (f fanout) OnUpdates(ups []syncer.Update) {
	for _, c := range f {
		c.OnUpdates(ups)
	}
}
