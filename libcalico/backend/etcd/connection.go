package etcd

import (
	"context"

	"google.golang.org/grpc/connectivity"
)

// AwaitConnection returns once the connection to etcd is up, has failed
// an attempt, or ctx ends. A program about to queue for a host-wide lock
// calls it first, so that the lock is not held while its connection
// comes up.
func (c *Client) AwaitConnection(ctx context.Context) {
	conn := c.cli.ActiveConnection()
	for {
		s := conn.GetState()
		if s == connectivity.Ready || s == connectivity.TransientFailure || s == connectivity.Shutdown {
			return
		}
		if !conn.WaitForStateChange(ctx, s) {
			return
		}
	}
}
