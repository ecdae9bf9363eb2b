package etcd

import (
	"context"
	"errors"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

// authenticator gets and renews the token of a username and password.
// clientv3 would fetch the token inside clientv3.New, which then blocks
// (with no bound at all unless a dial timeout is set) while etcd is down;
// here it is fetched by the first call that needs it, within that call's
// own timeout, so New never blocks.
type authenticator struct {
	user, pass string
	sem        chan struct{} // one Authenticate at a time

	mu   sync.Mutex
	tok  string
	have bool // tok is known; "" when etcd has auth disabled
}

func newAuthenticator(user, pass string) *authenticator {
	return &authenticator{user: user, pass: pass, sem: make(chan struct{}, 1)}
}

// token returns the current token, authenticating first if there is none
// or if it is stale (rejected by etcd).
func (a *authenticator) token(ctx context.Context, cc grpc.ClientConnInterface, stale *string) (string, error) {
	current := func() (string, bool) {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.tok, a.have && (stale == nil || a.tok != *stale)
	}
	if t, ok := current(); ok {
		return t, nil
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-a.sem }()
	if t, ok := current(); ok {
		return t, nil
	}
	resp, err := pb.NewAuthClient(cc).Authenticate(ctx, &pb.AuthenticateRequest{Name: a.user, Password: a.pass}, grpc.WaitForReady(true))
	tok := ""
	switch {
	case err == nil:
		tok = resp.Token
	case errors.Is(rpctypes.Error(err), rpctypes.ErrAuthNotEnabled):
	default:
		return "", err
	}
	a.mu.Lock()
	a.tok, a.have = tok, true
	a.mu.Unlock()
	return tok, nil
}

// unary is a gRPC interceptor, run for each attempt of each call: it adds
// the token, and renews it once if etcd rejects it.
func (a *authenticator) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method == authenticateMethod || ctx.Value(noAuth{}) != nil {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	tok, err := a.token(ctx, cc, nil)
	if err != nil {
		return err
	}
	err = invoker(withToken(ctx, tok), method, req, reply, cc, opts...)
	if !tokenRejected(err) {
		return err
	}
	if tok, err = a.token(ctx, cc, &tok); err != nil {
		return err
	}
	return invoker(withToken(ctx, tok), method, req, reply, cc, opts...)
}

// forget drops tok after etcd rejected it (on a watch, which the
// interceptor does not see), so that the next call authenticates again.
func (a *authenticator) forget(tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok == tok {
		a.tok, a.have = "", false
	}
}

// noAuth marks a context whose calls need no token (the connection probe).
type noAuth struct{}

func withToken(ctx context.Context, tok string) context.Context {
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok)
}

func tokenRejected(err error) bool {
	if err == nil {
		return false
	}
	err = rpctypes.Error(err)
	return errors.Is(err, rpctypes.ErrInvalidAuthToken) || errors.Is(err, rpctypes.ErrUserEmpty) ||
		errors.Is(err, rpctypes.ErrAuthOldRevision)
}
