// Package testutil gives tests of every module real parts to run against:
// an embedded etcd on a free loopback port, TLS material for it, and
// network-namespace helpers.
package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// memberName is the embedded etcd's member name.
const memberName = "test"

// Etcd is an embedded single-member etcd.
type Etcd struct {
	// Endpoint is the client URL, e.g. http://127.0.0.1:40123.
	Endpoint string
	// Dir holds the member's data; it survives Stop so Start resumes it.
	Dir string
	// TLS is set when the server requires client certificates.
	TLS *TLSFiles

	clientURL, peerURL url.URL
	server             *embed.Etcd
}

// EtcdOption adjusts the embedded server before it starts.
type EtcdOption func(*Etcd)

// WithTLS makes the server serve https and require client certificates
// signed by a fresh CA written under dir.
func WithTLS(dir string) EtcdOption {
	return func(e *Etcd) {
		e.TLS = &TLSFiles{Dir: dir}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartEtcdServer starts an embedded etcd with its data in dir.
func StartEtcdServer(dir string, opts ...EtcdOption) (*Etcd, error) {
	e := &Etcd{Dir: dir}
	for _, o := range opts {
		o(e)
	}
	scheme := "http"
	if e.TLS != nil {
		if err := e.TLS.generate(); err != nil {
			return nil, fmt.Errorf("generating TLS material: %w", err)
		}
		scheme = "https"
	}
	// A free port can be taken by another process before etcd binds it:
	// then try other ports, on fresh data (unless there was data before).
	member := filepath.Join(dir, "member")
	_, statErr := os.Stat(member)
	fresh := os.IsNotExist(statErr)
	for attempt := 1; ; attempt++ {
		cp, err := FreePort()
		if err != nil {
			return nil, err
		}
		pp, err := FreePort()
		if err != nil {
			return nil, err
		}
		e.clientURL = url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", cp)}
		e.peerURL = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pp)}
		e.Endpoint = e.clientURL.String()
		err = e.Start()
		if err == nil {
			return e, nil
		}
		if !fresh || attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		if err := os.RemoveAll(member); err != nil {
			return nil, err
		}
	}
}

// Start (re)starts the server on its original ports and data.
func (e *Etcd) Start() error {
	if e.server != nil {
		return nil
	}
	cfg := embed.NewConfig()
	cfg.Name = memberName
	cfg.Dir = filepath.Join(e.Dir, "member")
	cfg.ListenClientUrls = []url.URL{e.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{e.clientURL}
	cfg.ListenPeerUrls = []url.URL{e.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{e.peerURL}
	cfg.InitialCluster = memberName + "=" + e.peerURL.String()
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	if os.Getenv("ETCD_TEST_LOG") == "" {
		cfg.LogOutputs = []string{os.DevNull}
	}
	if e.TLS != nil {
		cfg.ClientTLSInfo.CertFile = e.TLS.ServerCert
		cfg.ClientTLSInfo.KeyFile = e.TLS.ServerKey
		cfg.ClientTLSInfo.TrustedCAFile = e.TLS.CA
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("starting embedded etcd: %w", err)
	}
	select {
	case <-srv.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		srv.Close()
		return fmt.Errorf("embedded etcd at %s not ready after 30s", e.Endpoint)
	}
	e.server = srv
	return nil
}

// Stop stops the server and keeps its data.
func (e *Etcd) Stop() {
	if e.server != nil {
		e.server.Close()
		e.server = nil
	}
}

// ReplaceData stops the server, has fill write a fresh data directory for
// the same member (its name and peer URL given), and starts the server on
// it, on the same URLs: what an operator does when restoring etcd from a
// snapshot. The old data is left where it was.
func (e *Etcd) ReplaceData(fill func(dataDir, name, peerURL string) error) error {
	e.Stop()
	dir, err := os.MkdirTemp(filepath.Dir(e.Dir), "data-")
	if err != nil {
		return err
	}
	if err := fill(filepath.Join(dir, "member"), memberName, e.peerURL.String()); err != nil {
		return fmt.Errorf("writing the new data directory: %w", err)
	}
	e.Dir = dir
	return e.Start()
}

// Running reports whether the server is started.
func (e *Etcd) Running() bool { return e.server != nil }

// NewClient returns a raw etcd client for the server (TLS set up if needed).
func (e *Etcd) NewClient() (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second}
	if e.TLS != nil {
		tc, err := e.TLS.ClientConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	return clientv3.New(cfg)
}

// Compact compacts the store up to its current revision and returns it.
func (e *Etcd) Compact(ctx context.Context) (int64, error) {
	c, err := e.NewClient()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	resp, err := c.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return 0, err
	}
	return rev, nil
}

// StartEtcd starts an embedded etcd for a test and stops it at cleanup.
func StartEtcd(t testing.TB, opts ...EtcdOption) *Etcd {
	t.Helper()
	e, err := StartEtcdServer(t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(e.Stop)
	return e
}

// RawClient returns a raw etcd client closed at cleanup.
func (e *Etcd) RawClient(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := e.NewClient()
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
