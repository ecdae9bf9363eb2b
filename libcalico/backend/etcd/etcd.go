// Package etcd implements backend.Client over etcd v3 with Calico's key
// layout: Create and Update are single-key transactions guarded by the
// key's version or mod revision, so concurrent writers never lose data.
//
// New never talks to etcd: it starts the connection in the background and
// returns. Every call is bounded by the client's timeout and fails with a
// cerrors.Unavailable naming the endpoints:
//   - while etcd is down or slow, after the timeout, with gRPC's last
//     connection error when there is one;
//   - at once when the connection cannot come up for a reason waiting will
//     not cure (a certificate refused by either side, TLS spoken to a plain
//     port or the reverse: conn.go), or when etcd refuses the username and
//     password.
//
// A username and password are exchanged for a token by the first call
// that needs one, within its own timeout, and the token is renewed when
// etcd rejects it (auth.go).
//
// The client also follows, from its responses' headers, which etcd it
// talks to, and notices when that etcd is restored from a snapshot or
// replaced (reset.go): watches open at that moment end with
// cerrors.ErrDatastoreReset, and Resets reports it.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// DefaultTimeout bounds each call when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Config says how to reach etcd.
type Config struct {
	Endpoints  []string
	KeyFile    string
	CertFile   string
	CACertFile string
	Username   string
	Password   string
	// Timeout bounds every call; DefaultTimeout when zero.
	Timeout time.Duration
	// WatchProbeInterval is how long a watch may see no event before it
	// checks that etcd still answers; a failed check ends the watch with
	// cerrors.ErrUnavailable, so a single-member outage is not silent.
	// DefaultWatchProbeInterval when zero.
	WatchProbeInterval time.Duration
}

// DefaultWatchProbeInterval is the idle time before a watch probes etcd.
const DefaultWatchProbeInterval = 10 * time.Second

// Client is the etcd backend.
type Client struct {
	cli           *clientv3.Client
	endpoints     []string
	timeout       time.Duration
	probeInterval time.Duration
	user          string
	tls           *tls.Config    // nil for plain connections
	auth          *authenticator // nil without a username
	health        *connHealth
	ident         *identity
}

var _ backend.Client = (*Client)(nil)

// New starts connecting in the background: it fails only on bad
// configuration, never because etcd is down (calls then fail with
// cerrors.Unavailable).
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints configured")
	}
	c := &Client{endpoints: cfg.Endpoints, timeout: cfg.Timeout, probeInterval: cfg.WatchProbeInterval,
		user: cfg.Username, health: newConnHealth(), ident: newIdentity(cfg.Endpoints)}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.probeInterval <= 0 {
		c.probeInterval = DefaultWatchProbeInterval
	}
	// The username and password are not given to clientv3, whose New
	// would block on fetching a token; the interceptor fetches it.
	cc := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               quietLogger(),
	}
	if cfg.Username != "" && cfg.Password != "" { // as clientv3: both or no auth
		c.auth = newAuthenticator(cfg.Username, cfg.Password)
		cc.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.auth.unary)}
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CACertFile != "" {
		if (cfg.CertFile == "") != (cfg.KeyFile == "") {
			return nil, errors.New("etcd client certificate and key must be given together")
		}
		info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CACertFile}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("loading etcd TLS files: %w", err)
		}
		cc.TLS, c.tls = tc, tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("creating etcd client for %v: %w", cfg.Endpoints, err)
	}
	c.cli = cli
	// Dial now, in the background, rather than on the first call: a CNI
	// plugin does its kernel work meanwhile. Connect itself builds the
	// resolver and balancer (about a millisecond cold), so it too runs
	// in the background.
	go c.watchConn(cli.ActiveConnection())
	return c, nil
}

// Raw returns the underlying etcd client, for benchmarks and tools.
func (c *Client) Raw() *clientv3.Client { return c.cli }

// Close implements backend.Client.
func (c *Client) Close() error { return c.cli.Close() }

// call bounds a request by the client's timeout, and ends it at once if
// the connection turns out not to be able to come up (connHealth).
func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	stop := context.AfterFunc(c.health.tripCtx(), cancel)
	return cctx, func() {
		stop()
		cancel()
	}
}

// wrap turns transport failures into cerrors.Unavailable; a caller's own
// cancellation is returned as is.
func (c *Client) wrap(parent context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if parent.Err() != nil {
		return fmt.Errorf("%s: %w", op, parent.Err())
	}
	if errors.Is(err, context.Canceled) {
		// Only a connection fault cancels a call whose caller did not.
		if f := c.health.latestFault(); f != nil {
			return &cerrors.Unavailable{Endpoints: c.endpoints, Err: fmt.Errorf("%s: %w", op, f)}
		}
	}
	if errors.Is(err, rpctypes.ErrAuthFailed) {
		return &cerrors.Unavailable{Endpoints: c.endpoints, Err: fmt.Errorf("%s: etcd refused user %q: %w", op, c.user, err)}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, context.Canceled) {
		if last := c.health.last(); last != nil {
			return &cerrors.Unavailable{Endpoints: c.endpoints, Err: fmt.Errorf("%s: no answer within %v (last connection error: %v)", op, c.timeout, last)}
		}
		return &cerrors.Unavailable{Endpoints: c.endpoints, Err: fmt.Errorf("%s: no answer within %v", op, c.timeout)}
	}
	if s, ok := status.FromError(err); ok && (s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded) {
		return &cerrors.Unavailable{Endpoints: c.endpoints, Err: fmt.Errorf("%s: %s", op, s.Message())}
	}
	return fmt.Errorf("%s: %w", op, err)
}

func path(k model.Key) (string, error) {
	if k == nil {
		return "", errors.New("nil key")
	}
	p, err := k.Path()
	if err != nil {
		return "", fmt.Errorf("key %s: %w", k, err)
	}
	return p, nil
}

func (c *Client) putOpts(ctx context.Context, kv *backend.KVPair) ([]clientv3.OpOption, error) {
	if kv.TTL <= 0 {
		return nil, nil
	}
	secs := int64((kv.TTL + time.Second - 1) / time.Second)
	st := c.ident.start()
	lease, err := c.cli.Grant(ctx, secs)
	if err != nil {
		return nil, err
	}
	c.ident.observe(lease.ResponseHeader, st, true)
	return []clientv3.OpOption{clientv3.WithLease(lease.ID)}, nil
}

func stored(kv *backend.KVPair, rev int64) *backend.KVPair {
	out := *kv
	out.Revision = rev
	return &out
}

// Create implements backend.Client.
func (c *Client) Create(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := path(kv.Key)
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	opts, err := c.putOpts(cctx, kv)
	if err != nil {
		return nil, c.wrap(ctx, "create "+p, err)
	}
	st := c.ident.start()
	resp, err := c.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.Version(p), "=", 0)).
		Then(clientv3.OpPut(p, string(kv.Value), opts...)).
		Commit()
	if err != nil {
		return nil, c.wrap(ctx, "create "+p, err)
	}
	c.ident.observe(resp.Header, st, true)
	if !resp.Succeeded {
		return nil, &cerrors.Exists{Key: kv.Key.String()}
	}
	return stored(kv, resp.Header.Revision), nil
}

// Update implements backend.Client.
func (c *Client) Update(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := path(kv.Key)
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	opts, err := c.putOpts(cctx, kv)
	if err != nil {
		return nil, c.wrap(ctx, "update "+p, err)
	}
	cmp := clientv3.Compare(clientv3.Version(p), ">", 0)
	if kv.Revision != 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(p), "=", kv.Revision)
	}
	st := c.ident.start()
	resp, err := c.cli.Txn(cctx).If(cmp).
		Then(clientv3.OpPut(p, string(kv.Value), opts...)).
		Else(clientv3.OpGet(p, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return nil, c.wrap(ctx, "update "+p, err)
	}
	c.ident.observe(resp.Header, st, true)
	if !resp.Succeeded {
		return nil, c.failure(kv.Key, kv.Revision, resp)
	}
	return stored(kv, resp.Header.Revision), nil
}

// failure explains a failed guarded txn whose Else read the key.
func (c *Client) failure(k model.Key, rev int64, resp *clientv3.TxnResponse) error {
	if len(resp.Responses) == 1 && len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return &cerrors.NotFound{Key: k.String()}
	}
	return &cerrors.Conflict{Key: k.String(), Revision: rev}
}

// Apply implements backend.Client.
func (c *Client) Apply(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := path(kv.Key)
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	opts, err := c.putOpts(cctx, kv)
	if err != nil {
		return nil, c.wrap(ctx, "apply "+p, err)
	}
	st := c.ident.start()
	resp, err := c.cli.Put(cctx, p, string(kv.Value), opts...)
	if err != nil {
		return nil, c.wrap(ctx, "apply "+p, err)
	}
	c.ident.observe(resp.Header, st, true)
	return stored(kv, resp.Header.Revision), nil
}

// Delete implements backend.Client.
func (c *Client) Delete(ctx context.Context, key model.Key, revision int64) (*backend.KVPair, error) {
	p, err := path(key)
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	cmp := clientv3.Compare(clientv3.Version(p), ">", 0)
	if revision != 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(p), "=", revision)
	}
	st := c.ident.start()
	resp, err := c.cli.Txn(cctx).If(cmp).
		Then(clientv3.OpDelete(p, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(p, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return nil, c.wrap(ctx, "delete "+p, err)
	}
	c.ident.observe(resp.Header, st, true)
	if !resp.Succeeded {
		return nil, c.failure(key, revision, resp)
	}
	prev := resp.Responses[0].GetResponseDeleteRange().PrevKvs
	if len(prev) == 0 {
		return nil, &cerrors.NotFound{Key: key.String()}
	}
	return &backend.KVPair{Key: key, Value: prev[0].Value, Revision: prev[0].ModRevision}, nil
}

// Get implements backend.Client.
func (c *Client) Get(ctx context.Context, key model.Key) (*backend.KVPair, error) {
	p, err := path(key)
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	st := c.ident.start()
	resp, err := c.cli.Get(cctx, p)
	if err != nil {
		return nil, c.wrap(ctx, "get "+p, err)
	}
	c.ident.observe(resp.Header, st, true)
	if len(resp.Kvs) == 0 {
		return nil, &cerrors.NotFound{Key: key.String()}
	}
	return &backend.KVPair{Key: key, Value: resp.Kvs[0].Value, Revision: resp.Kvs[0].ModRevision}, nil
}

// List implements backend.Client.
func (c *Client) List(ctx context.Context, opts model.ListOptions) (*backend.KVList, error) {
	prefix, err := opts.Prefix()
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	st := c.ident.start()
	resp, err := c.cli.Get(cctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, c.wrap(ctx, "list "+prefix, err)
	}
	c.ident.observe(resp.Header, st, true)
	out := &backend.KVList{Revision: resp.Header.Revision, KVPairs: make([]*backend.KVPair, 0, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		k := model.ParseKey(string(kv.Key))
		if k == nil || !opts.Matches(k) {
			continue
		}
		out.KVPairs = append(out.KVPairs, &backend.KVPair{Key: k, Value: kv.Value, Revision: kv.ModRevision})
	}
	return out, nil
}
