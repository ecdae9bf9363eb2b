package acceptance

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// etcdGate is a gRPC proxy in front of etcd that cuts etcd off at an exact
// point of a plugin's request sequence: the first write (Put, or a Txn's
// put) to a key under a prefix is refused, and so is every call after it,
// as if etcd had died just then, until Open. Timing-based faults (stop
// etcd when a veth appears) race with the plugin's concurrent steps; this
// does not.
type etcdGate struct {
	l       net.Listener
	cc      *grpc.ClientConn
	srv     *grpc.Server
	mu      sync.Mutex
	prefix  string
	closed  bool
	tripped chan struct{}
}

// newEtcdGate listens in the host namespace and forwards to h's etcd.
func newEtcdGate(t *testing.T, h *hostEnv, prefix string) *etcdGate {
	t.Helper()
	l, err := h.listenIn("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(strings.TrimPrefix(h.etcd.Endpoint, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(_ context.Context, addr string) (net.Conn, error) { return h.dialIn("tcp", addr) }))
	if err != nil {
		t.Fatal(err)
	}
	g := &etcdGate{l: l, cc: cc, prefix: prefix, tripped: make(chan struct{})}
	g.srv = grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(g.handle))
	go func() { _ = g.srv.Serve(l) }()
	t.Cleanup(func() { g.srv.Stop(); cc.Close() })
	return g
}

func (g *etcdGate) Endpoint() string { return "http://" + g.l.Addr().String() }

// Open lets calls through again.
func (g *etcdGate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = false
}

// Tripped is closed once the gate has cut etcd off.
func (g *etcdGate) Tripped() <-chan struct{} { return g.tripped }

// admit reports whether a request may pass, closing the gate when it is
// the write it waits for.
func (g *etcdGate) admit(method string, req []byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	var keys [][]byte
	switch method {
	case "/etcdserverpb.KV/Put":
		var p etcdpb.PutRequest
		if proto.Unmarshal(req, &p) == nil {
			keys = append(keys, p.Key)
		}
	case "/etcdserverpb.KV/Txn":
		var tx etcdpb.TxnRequest
		if proto.Unmarshal(req, &tx) == nil {
			for _, op := range tx.Success {
				if p := op.GetRequestPut(); p != nil {
					keys = append(keys, p.Key)
				}
			}
		}
	}
	for _, k := range keys {
		if g.prefix != "" && strings.HasPrefix(string(k), g.prefix) {
			g.closed, g.prefix = true, ""
			close(g.tripped)
			return false
		}
	}
	return true
}

// handle forwards any call, message by message, unless the gate refuses it.
func (g *etcdGate) handle(_ any, in grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(in)
	ctx, cancel := context.WithCancel(in.Context())
	defer cancel()
	out, err := g.cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	fwdErr := make(chan error, 1)
	go func() {
		for {
			var m []byte
			if err := in.RecvMsg(&m); err != nil {
				_ = out.CloseSend()
				fwdErr <- nil
				return
			}
			if !g.admit(method, m) {
				fwdErr <- status.Error(codes.Unavailable, "etcd cut off by the test")
				return
			}
			if err := out.SendMsg(&m); err != nil {
				fwdErr <- nil
				return
			}
		}
	}()
	replies := make(chan error, 1)
	go func() {
		for {
			var m []byte
			if err := out.RecvMsg(&m); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				replies <- err
				return
			}
			if err := in.SendMsg(&m); err != nil {
				replies <- err
				return
			}
		}
	}()
	select {
	case err := <-fwdErr:
		if err != nil {
			return err
		}
		return <-replies
	case err := <-replies:
		return err
	}
}

// rawCodec passes messages through as bytes. It calls itself "proto" so
// that the content type etcd sees is unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
