package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// connHealth is what the client knows of its gRPC connection while it is
// not up. gRPC keeps every call waiting for the connection until the
// call's deadline, which is right while etcd is down or restarting, but
// not when the connection cannot come up for a reason that waiting will
// not cure: a certificate refused by either side, or TLS spoken to a plain
// port or the reverse. Such a fault trips every waiting call (through
// trip) and every call made until the connection is up again, so that each
// fails at once saying what is wrong.
type connHealth struct {
	mu      sync.Mutex
	lastErr error // the last connection error; nil while up
	fault   error // the latest fault found (kept for the calls it tripped)
	tripped bool  // fault applies now: trip is cancelled
	trip    context.Context
	untrip  context.CancelFunc
}

func newConnHealth() *connHealth {
	h := &connHealth{}
	h.trip, h.untrip = context.WithCancel(context.Background())
	return h
}

// tripCtx is cancelled when a fault is found (already, while one applies).
func (h *connHealth) tripCtx() context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.trip
}

func (h *connHealth) setFault(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr, h.fault = err, err
	if !h.tripped {
		h.tripped = true
		h.untrip()
	}
}

// setErr records a connection error that waiting may cure (nil: the
// connection is up), ending any fault.
func (h *connHealth) setErr(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	if h.tripped {
		h.tripped = false
		h.trip, h.untrip = context.WithCancel(context.Background())
	}
}

func (h *connHealth) last() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr
}

func (h *connHealth) latestFault() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fault
}

// rediagnoseInterval is how often a connection that stays down is looked
// at again (gRPC keeps it in TransientFailure between attempts).
const rediagnoseInterval = time.Second

// watchConn connects conn and follows its state until it shuts down.
// It costs a healthy client nothing but this goroutine.
func (c *Client) watchConn(conn *grpc.ClientConn) {
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Shutdown:
			return
		case connectivity.Ready:
			c.health.setErr(nil)
		case connectivity.TransientFailure:
			c.diagnose(conn)
		}
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if s == connectivity.TransientFailure {
			ctx, cancel = context.WithTimeout(ctx, rediagnoseInterval)
		}
		conn.WaitForStateChange(ctx, s)
		cancel()
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

// diagnose learns why conn is down: a call that does not wait for the
// connection fails at once with gRPC's last connection error, without
// leaving the process.
func (c *Client) diagnose(conn *grpc.ClientConn) {
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), noAuth{}, true), c.timeout)
	defer cancel()
	err := conn.Invoke(ctx, "/etcdserverpb.Maintenance/Status", &pb.StatusRequest{}, &pb.StatusResponse{}, grpc.WaitForReady(false))
	s, ok := status.FromError(err)
	if err == nil || !ok || s.Code() != codes.Unavailable {
		return // etcd answered, or the probe itself gave up: nothing learnt
	}
	msg := s.Message()
	if quoted, ok := strings.CutPrefix(msg, "connection error: desc = "); ok {
		if m, err := strconv.Unquote(quoted); err == nil {
			msg = m
		}
	}
	if hint := tlsFault(msg); hint != "" {
		c.health.setFault(fmt.Errorf("%s: %s", hint, msg))
		return
	}
	if !strings.Contains(msg, "while dialing") {
		// Connected, then the connection failed: gRPC may have seen only
		// the broken pipe, not why the other side closed it.
		if f := c.probeEndpoints(); f != nil {
			c.health.setFault(f)
			return
		}
	}
	c.health.setErr(errors.New(msg))
}

// tlsFault names what a TLS failure in gRPC's connection error means, or
// returns "" if it is no TLS failure.
func tlsFault(msg string) string {
	switch {
	case strings.Contains(msg, "x509:"):
		return "TLS handshake failed: etcd's server certificate is not accepted (check the CA certificate file and the endpoint's host name)"
	case strings.Contains(msg, "remote error: tls:"):
		return "TLS handshake failed: etcd refused the client's certificate (check the client certificate and key files)"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "TLS handshake failed: the endpoint does not speak TLS (use http://)"
	case strings.Contains(msg, "tls:"):
		return "TLS handshake failed"
	}
	return ""
}

// probeTimeout bounds each step of an endpoint probe.
const probeTimeout = time.Second

// probeEndpoints looks for a fault gRPC may report only as a connection
// closed during its handshake, as a restarting etcd could: an http://
// endpoint whose port speaks TLS, an https:// one whose port speaks plain
// HTTP, or a TLS handshake that etcd ends with an alert.
func (c *Client) probeEndpoints() error {
	for _, ep := range c.endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			continue
		}
		switch u.Scheme {
		case "http":
			if speaksTLS(c.dial, u.Host) {
				return fmt.Errorf("etcd endpoint %s answers in TLS: use https:// (with the CA certificate file)", ep)
			}
		case "https":
			if speaksPlainHTTP(c.dial, u.Host) {
				return fmt.Errorf("etcd endpoint %s does not speak TLS: use http://", ep)
			}
			if err := tlsRefused(c.dial, u, c.tls); err != nil {
				return fmt.Errorf("etcd endpoint %s: %s: %w", ep, tlsFault(err.Error()), err)
			}
		}
	}
	return nil
}

// tlsRefused makes a TLS handshake as the client's connections do and
// returns the error if it fails, or if etcd sends an alert right after it
// (TLS 1.3 servers check the client certificate once the client is done).
func tlsRefused(dial dialFunc, u *url.URL, tc *tls.Config) error {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tc != nil {
		cfg = tc.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	conn, err := dialTLS(dial, u.Host, cfg)
	if err != nil {
		if tlsFault(err.Error()) != "" {
			return err
		}
		return nil
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(probeTimeout)); err != nil {
		return nil
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil && strings.Contains(err.Error(), "remote error: tls:") {
		return err
	}
	return nil
}

// dialFunc makes a connection as net.Dialer.DialContext does.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialTLS makes a TLS connection through dial, handshake included, within
// probeTimeout.
func dialTLS(dial dialFunc, host string, cfg *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	raw, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(host)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

func speaksTLS(dial dialFunc, host string) bool {
	// Only asks whether the port completes a TLS handshake; nothing is
	// sent over the connection, so the certificate does not matter.
	conn, err := dialTLS(dial, host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		var alert tls.AlertError // refused with a TLS alert: TLS all the same
		return errors.As(err, &alert)
	}
	conn.Close()
	return true
}

func speaksPlainHTTP(dial dialFunc, host string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", host)
	if err != nil {
		return false
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		return false
	}
	if _, err := conn.Write([]byte("GET /version HTTP/1.0\r\n\r\n")); err != nil {
		return false
	}
	resp, _ := io.ReadAll(io.LimitReader(conn, 512))
	// Go's TLS servers answer plain HTTP with a 400 saying so.
	return bytes.HasPrefix(resp, []byte("HTTP/")) && !bytes.Contains(resp, []byte("HTTPS server"))
}
