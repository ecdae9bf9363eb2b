package etcd

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

// authenticator gets and renews the token of a username and password.
// clientv3 would fetch the token inside clientv3.New, which then blocks
// (with no bound at all unless a dial timeout is set) while etcd is down;
// here it is fetched when the first call needs it, so New never blocks.
//
// The Authenticate request runs on its own deadline (authTimeout), not the
// call's: etcd checks the password with bcrypt, which on a loaded host can
// take longer than a short call timeout, and a request given up with each
// call would never finish. Calls wait for it within their own deadline, and
// later calls join the one in flight.
type authenticator struct {
	user, pass string

	mu       sync.Mutex
	tok      string
	have     bool // tok is known; "" when etcd has auth disabled
	inflight *authAttempt
}

// authAttempt is one Authenticate request; done is closed when it ends.
type authAttempt struct {
	done chan struct{}
	tok  string
	err  error
}

// authTimeout bounds one Authenticate request.
const authTimeout = 30 * time.Second

func newAuthenticator(user, pass string) *authenticator {
	return &authenticator{user: user, pass: pass}
}

// token returns the current token, authenticating first if there is none
// or if it is stale (rejected by etcd).
func (a *authenticator) token(ctx context.Context, cc grpc.ClientConnInterface, stale *string) (string, error) {
	a.mu.Lock()
	if a.have && (stale == nil || a.tok != *stale) {
		t := a.tok
		a.mu.Unlock()
		return t, nil
	}
	at := a.inflight
	if at == nil {
		at = &authAttempt{done: make(chan struct{})}
		a.inflight = at
		go a.authenticate(at, cc)
	}
	a.mu.Unlock()
	select {
	case <-at.done:
		return at.tok, at.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// authenticate runs attempt at and records its token.
func (a *authenticator) authenticate(at *authAttempt, cc grpc.ClientConnInterface) {
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	resp, err := pb.NewAuthClient(cc).Authenticate(ctx, &pb.AuthenticateRequest{Name: a.user, Password: a.pass}, grpc.WaitForReady(true))
	switch {
	case err == nil:
		at.tok = resp.Token
	case errors.Is(rpctypes.Error(err), rpctypes.ErrAuthNotEnabled):
	default:
		at.err = err
	}
	a.mu.Lock()
	if at.err == nil {
		a.tok, a.have = at.tok, true
	}
	a.inflight = nil
	a.mu.Unlock()
	close(at.done)
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
