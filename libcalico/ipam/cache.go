package ipam

import (
	"net/netip"
	"sync"
)

// Cache holds what Clients learn about hosts for their next requests:
// per host, the block it last assigned from (a hint, read with the first
// read and tried first) and, after a request served from one confirmed
// affine block per IP version, the state the warm path serves the next
// one from in one round trip (warm.go). Both are guesses that a request
// checks against the datastore: a stale Cache costs a round trip, never a
// wrong assignment.
//
// The caller owns it: a Client without one (Options.Cache nil) keeps
// nothing between calls. A long-lived process passes one Cache to its
// Client (Clients may share one); a short-lived one, as the CNI plugin,
// carries it across processes with Client.SaveWarm, LoadWarm, Hint and
// SetHint. It is safe for concurrent use.
type Cache struct {
	hints sync.Map // host → netip.Prefix
	warm  sync.Map // host → *warmHost
}

// NewCache returns an empty Cache.
func NewCache() *Cache { return &Cache{} }

// The methods below do nothing on a nil Cache.

func (k *Cache) hint(host string) netip.Prefix {
	if k == nil {
		return netip.Prefix{}
	}
	if v, ok := k.hints.Load(host); ok {
		return v.(netip.Prefix)
	}
	return netip.Prefix{}
}

func (k *Cache) setHint(host string, p netip.Prefix) {
	if k != nil && p.IsValid() {
		k.hints.Store(host, p.Masked())
	}
}

func (k *Cache) warmOf(host string) *warmHost {
	if k == nil {
		return nil
	}
	if v, ok := k.warm.Load(host); ok {
		return v.(*warmHost)
	}
	return nil
}

func (k *Cache) putWarm(host string, w *warmHost) {
	if k != nil {
		k.warm.Store(host, w)
	}
}

// dropWarm forgets host's state if it is still old (any state: old nil).
func (k *Cache) dropWarm(host string, old *warmHost) {
	switch {
	case k == nil:
	case old == nil:
		k.warm.Delete(host)
	default:
		k.warm.CompareAndDelete(host, old)
	}
}

// swapWarm replaces host's state by next if it is still old.
func (k *Cache) swapWarm(host string, old, next *warmHost) {
	if k != nil {
		k.warm.CompareAndSwap(host, old, next)
	}
}

func (k *Cache) eachWarm(f func(host string, w *warmHost)) {
	if k != nil {
		k.warm.Range(func(host, v any) bool {
			f(host.(string), v.(*warmHost))
			return true
		})
	}
}

func (k *Cache) clearWarm() {
	if k != nil {
		k.warm.Clear()
	}
}
