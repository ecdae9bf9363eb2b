package etcd

import (
	"context"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/proto"
)

// Prime does what protobuf does on the first use of the etcd messages a
// transaction sends and receives (it builds their descriptors and
// codecs: about 2 ms on a slow machine, each process once). A
// short-lived program calls it while its connection comes up, so that
// the first request does not pay for it.
func (c *Client) Prime() {
	key := []byte("/calico")
	req := &etcdserverpb.TxnRequest{
		Compare: []*etcdserverpb.Compare{{Key: key, Target: etcdserverpb.Compare_MOD,
			TargetUnion: &etcdserverpb.Compare_ModRevision{ModRevision: 1}}},
		Success: []*etcdserverpb.RequestOp{{Request: &etcdserverpb.RequestOp_RequestPut{
			RequestPut: &etcdserverpb.PutRequest{Key: key, Value: key}}}},
		Failure: []*etcdserverpb.RequestOp{{Request: &etcdserverpb.RequestOp_RequestRange{
			RequestRange: &etcdserverpb.RangeRequest{Key: key}}}},
	}
	resp := &etcdserverpb.TxnResponse{
		Header: &etcdserverpb.ResponseHeader{Revision: 1},
		Responses: []*etcdserverpb.ResponseOp{
			{Response: &etcdserverpb.ResponseOp_ResponsePut{ResponsePut: &etcdserverpb.PutResponse{}}},
			{Response: &etcdserverpb.ResponseOp_ResponseRange{ResponseRange: &etcdserverpb.RangeResponse{
				Kvs: []*mvccpb.KeyValue{{Key: key, Value: key, ModRevision: 1}}}}},
		},
	}
	for _, m := range []proto.Message{req, resp} {
		if b, err := proto.Marshal(m); err == nil {
			_ = proto.Unmarshal(b, m.ProtoReflect().New().Interface())
		}
	}
}

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
