package etcd

import (
	"fmt"
	"strings"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
)

var _ backend.ResetNotifier = (*Client)(nil)

// identity follows, from the headers of the client's responses, which
// etcd it talks to, and notices when that etcd is replaced or restored
// from a snapshot: a header from another cluster, or a linearizable answer
// at a revision lower than one already seen (every revision in a header
// is committed, so a later linearizable read cannot be below it). Each
// such reset starts a new epoch.
type identity struct {
	endpoints string

	mu      sync.Mutex
	cluster uint64 // 0 until the first header
	maxRev  int64  // highest revision seen in this epoch
	epoch   uint64
	next    chan struct{} // closed when the next epoch starts
	cause   error
}

func newIdentity(endpoints []string) *identity {
	return &identity{endpoints: strings.Join(endpoints, ","), next: make(chan struct{})}
}

// stamp is what a request remembers of the identity when it is sent.
type stamp struct {
	rev   int64
	epoch uint64
}

// start returns the stamp for a request about to be sent.
func (id *identity) start() stamp {
	id.mu.Lock()
	defer id.mu.Unlock()
	return stamp{rev: id.maxRev, epoch: id.epoch}
}

// observe records a response header. For a linearizable response (every
// read and write but serializable reads and watch responses), a revision
// below st.rev means the store went back in time. The answer to a
// request sent before the latest reset is ignored.
func (id *identity) observe(h *pb.ResponseHeader, st stamp, linearizable bool) {
	if h == nil || h.ClusterId == 0 {
		return
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	switch {
	case st.epoch != id.epoch:
		// Sent before the latest reset: its answer may be the old
		// store's, so it neither raises the mark nor contradicts it.
		return
	case id.cluster == 0:
		id.cluster = h.ClusterId
	case h.ClusterId != id.cluster:
		id.reset(h, fmt.Errorf("etcd at %s answered as cluster %x, not cluster %x as before (replaced, or restored from a snapshot): %w",
			id.endpoints, h.ClusterId, id.cluster, cerrors.ErrDatastoreReset))
		return
	case linearizable && h.Revision < st.rev:
		id.reset(h, fmt.Errorf("etcd at %s answered at revision %d, below revision %d seen before (restored from a snapshot): %w",
			id.endpoints, h.Revision, st.rev, cerrors.ErrDatastoreReset))
		return
	}
	id.maxRev = max(id.maxRev, h.Revision)
}

// reset starts a new epoch at h. Called with mu held.
func (id *identity) reset(h *pb.ResponseHeader, cause error) {
	id.cluster, id.maxRev = h.ClusterId, h.Revision
	id.epoch++
	id.cause = cause
	close(id.next)
	id.next = make(chan struct{})
}

func (id *identity) resets() (uint64, <-chan struct{}, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.epoch, id.next, id.cause
}

// Resets implements backend.ResetNotifier: a reset is noticed when any
// call or watch of this client sees a header from another etcd cluster, or
// a linearizable answer below a revision already seen. Every watch open
// at a reset ends with the cause.
func (c *Client) Resets() (uint64, <-chan struct{}, error) { return c.ident.resets() }
