// Package etcd implements backend.Client over etcd v3 with Calico's key
// layout: Create and Update are single-key transactions guarded by the
// key's version or mod revision, so concurrent writers never lose data.
//
// New never talks to etcd: it starts the connection in the background and
// returns. Every call is bounded by the client's timeout (a write that
// time left with an unknown outcome, by twice that: retry.go) and fails
// with a cerrors.Unavailable naming the endpoints:
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
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
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
	// Dialer, when set, makes the client's connections to etcd (tests
	// reach members inside network namespaces this way); net.Dialer's
	// DialContext when nil.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
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
	prober        prober
	// dial makes the endpoint probes' connections (conn.go).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
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
		user: cfg.Username, health: newConnHealth(), ident: newIdentity(cfg.Endpoints),
		dial: (&net.Dialer{}).DialContext}
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
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               quietLogger(),
	}
	if cfg.Username != "" && cfg.Password != "" { // as clientv3: both or no auth
		c.auth = newAuthenticator(cfg.Username, cfg.Password)
		cc.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.auth.unary)}
	}
	// Come back within a few seconds of etcd, rather than gRPC's default
	// of up to two minutes: a member back from a restart is used at once,
	// and clients cut off together return spread over a second or so.
	cc.DialOptions = append(cc.DialOptions, grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           grpcbackoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
		MinConnectTimeout: 5 * time.Second,
	}))
	if cfg.Dialer != nil {
		c.dial = cfg.Dialer
		cc.DialOptions = append(cc.DialOptions, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return cfg.Dialer(ctx, "tcp", addr)
		}))
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
	if errors.Is(err, rpctypes.ErrNoLeader) {
		return &cerrors.Unavailable{Endpoints: c.endpoints, Err: fmt.Errorf("%s: no etcd member with a leader answered within %v (quorum lost?)", op, c.timeout)}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, context.Canceled) {
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

// Create implements backend.Client. A second attempt (retry.go) that
// finds the key holding exactly the value written reports the first
// attempt's success.
func (c *Client) Create(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := path(kv.Key)
	if err != nil {
		return nil, err
	}
	var rev int64
	var outcome error
	err = c.write(ctx, func(actx context.Context, retried bool) error {
		opts, err := c.putOpts(actx, kv)
		if err != nil {
			return err
		}
		st := c.ident.start()
		resp, err := c.cli.Txn(actx).
			If(clientv3.Compare(clientv3.Version(p), "=", 0)).
			Then(clientv3.OpPut(p, string(kv.Value), opts...)).
			Else(readBack(p, retried)).
			Commit()
		if err != nil {
			return err
		}
		c.ident.observe(resp.Header, st, true)
		switch cur := current(resp); {
		case resp.Succeeded:
			rev = resp.Header.Revision
		case retried && cur != nil && bytes.Equal(cur.Value, kv.Value):
			rev = cur.ModRevision
		default:
			outcome = &cerrors.Exists{Key: kv.Key.String()}
		}
		return nil
	})
	if err != nil {
		return nil, c.wrap(ctx, "create "+p, err)
	}
	if outcome != nil {
		return nil, outcome
	}
	return stored(kv, rev), nil
}

// readBack is a guarded write's else branch: the key, with its value
// when the write is a second attempt (to tell the first one's success).
func readBack(p string, withValue bool) clientv3.Op {
	if withValue {
		return clientv3.OpGet(p)
	}
	return clientv3.OpGet(p, clientv3.WithKeysOnly())
}

// current is the key an else branch read back (nil when absent, or when
// the transaction succeeded).
func current(resp *clientv3.TxnResponse) *mvccpb.KeyValue {
	if resp.Succeeded || len(resp.Responses) != 1 {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		return kvs[0]
	}
	return nil
}

// Update implements backend.Client. A second attempt of a guarded update
// that finds the key holding exactly the value written reports the first
// attempt's success.
func (c *Client) Update(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := path(kv.Key)
	if err != nil {
		return nil, err
	}
	cmp := clientv3.Compare(clientv3.Version(p), ">", 0)
	if kv.Revision != 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(p), "=", kv.Revision)
	}
	var rev int64
	var outcome error
	err = c.write(ctx, func(actx context.Context, retried bool) error {
		opts, err := c.putOpts(actx, kv)
		if err != nil {
			return err
		}
		st := c.ident.start()
		resp, err := c.cli.Txn(actx).If(cmp).
			Then(clientv3.OpPut(p, string(kv.Value), opts...)).
			Else(readBack(p, retried)).
			Commit()
		if err != nil {
			return err
		}
		c.ident.observe(resp.Header, st, true)
		switch cur := current(resp); {
		case resp.Succeeded:
			rev = resp.Header.Revision
		case cur == nil:
			outcome = &cerrors.NotFound{Key: kv.Key.String()}
		case retried && bytes.Equal(cur.Value, kv.Value):
			rev = cur.ModRevision
		default:
			outcome = &cerrors.Conflict{Key: kv.Key.String(), Revision: kv.Revision}
		}
		return nil
	})
	if err != nil {
		return nil, c.wrap(ctx, "update "+p, err)
	}
	if outcome != nil {
		return nil, outcome
	}
	return stored(kv, rev), nil
}

// Apply implements backend.Client.
func (c *Client) Apply(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	p, err := path(kv.Key)
	if err != nil {
		return nil, err
	}
	var rev int64
	err = c.write(ctx, func(actx context.Context, _ bool) error {
		opts, err := c.putOpts(actx, kv)
		if err != nil {
			return err
		}
		st := c.ident.start()
		resp, err := c.cli.Put(actx, p, string(kv.Value), opts...)
		if err != nil {
			return err
		}
		c.ident.observe(resp.Header, st, true)
		rev = resp.Header.Revision
		return nil
	})
	if err != nil {
		return nil, c.wrap(ctx, "apply "+p, err)
	}
	return stored(kv, rev), nil
}

// Delete implements backend.Client. A second attempt of a guarded delete
// that finds the key gone reports the first attempt's success, with the
// value the key had at the revision given.
func (c *Client) Delete(ctx context.Context, key model.Key, revision int64) (*backend.KVPair, error) {
	p, err := path(key)
	if err != nil {
		return nil, err
	}
	cmp := clientv3.Compare(clientv3.Version(p), ">", 0)
	if revision != 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(p), "=", revision)
	}
	var prev *backend.KVPair
	var outcome error
	err = c.write(ctx, func(actx context.Context, retried bool) error {
		st := c.ident.start()
		resp, err := c.cli.Txn(actx).If(cmp).
			Then(clientv3.OpDelete(p, clientv3.WithPrevKV())).
			Else(readBack(p, false)).
			Commit()
		if err != nil {
			return err
		}
		c.ident.observe(resp.Header, st, true)
		switch {
		case resp.Succeeded:
			kvs := resp.Responses[0].GetResponseDeleteRange().PrevKvs
			if len(kvs) == 0 {
				outcome = &cerrors.NotFound{Key: key.String()}
				return nil
			}
			prev = &backend.KVPair{Key: key, Value: kvs[0].Value, Revision: kvs[0].ModRevision}
		case current(resp) != nil:
			outcome = &cerrors.Conflict{Key: key.String(), Revision: revision}
		case retried && revision != 0:
			// Gone: most likely by the first attempt. What it deleted is
			// the value at the revision it was given.
			old, err := c.cli.Get(actx, p, clientv3.WithRev(revision))
			if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
				return err
			}
			if err != nil || len(old.Kvs) == 0 || old.Kvs[0].ModRevision != revision {
				outcome = &cerrors.NotFound{Key: key.String()}
				return nil
			}
			prev = &backend.KVPair{Key: key, Value: old.Kvs[0].Value, Revision: revision}
		default:
			outcome = &cerrors.NotFound{Key: key.String()}
		}
		return nil
	})
	if err != nil {
		return nil, c.wrap(ctx, "delete "+p, err)
	}
	if outcome != nil {
		return nil, outcome
	}
	return prev, nil
}

// Get implements backend.Client.
func (c *Client) Get(ctx context.Context, key model.Key) (*backend.KVPair, error) {
	p, err := path(key)
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.call(leaderCtx(ctx))
	defer cancel()
	var resp *clientv3.GetResponse
	err = attempts(cctx, func(actx context.Context, _ bool) (err error) {
		st := c.ident.start()
		if resp, err = c.cli.Get(actx, p); err == nil {
			c.ident.observe(resp.Header, st, true)
		}
		return err
	})
	if err != nil {
		return nil, c.wrap(ctx, "get "+p, err)
	}
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
	cctx, cancel := c.call(leaderCtx(ctx))
	defer cancel()
	var resp *clientv3.GetResponse
	err = attempts(cctx, func(actx context.Context, _ bool) (err error) {
		st := c.ident.start()
		if resp, err = c.cli.Get(actx, prefix, clientv3.WithPrefix()); err == nil {
			c.ident.observe(resp.Header, st, true)
		}
		return err
	})
	if err != nil {
		return nil, c.wrap(ctx, "list "+prefix, err)
	}
	out := &backend.KVList{Revision: resp.Header.Revision}
	out.KVPairs, out.Foreign = matching(resp.Kvs, opts)
	return out, nil
}

// matching returns the pairs of kvs whose keys parse and match opts, and
// how many do not.
func matching(kvs []*mvccpb.KeyValue, opts model.ListOptions) (_ []*backend.KVPair, foreign int) {
	out := make([]*backend.KVPair, 0, len(kvs))
	pairs := make([]backend.KVPair, 0, len(kvs)) // one allocation for all
	for _, kv := range kvs {
		k := model.ParseKey(string(kv.Key))
		if k == nil || !opts.Matches(k) {
			foreign++
			continue
		}
		pairs = append(pairs, backend.KVPair{Key: k, Value: kv.Value, Revision: kv.ModRevision})
		out = append(out, &pairs[len(pairs)-1])
	}
	return out, foreign
}
