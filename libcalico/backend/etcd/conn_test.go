package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

// issue 23 item 3
//
// A connection that cannot come up for a TLS or scheme mistake makes the
// first call (already waiting when the handshake fails) and the next ones
// say what failed and where, well before the timeout, instead of "no
// answer within" it.
func TestEtcdTLSFaultsNamedAtOnce(t *testing.T) {
	const timeout = 10 * time.Second
	srv := testutil.StartEtcd(t, testutil.WithTLS(t.TempDir()))
	plain := testutil.StartEtcd(t)
	other, err := testutil.NewTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tlsFiles := srv.TLS
	for _, tc := range []struct {
		name string
		cfg  etcd.Config
		want []string
	}{
		{"server certificate from an untrusted CA",
			etcd.Config{Endpoints: []string{srv.Endpoint}, CertFile: tlsFiles.ClientCert, KeyFile: tlsFiles.ClientKey, CACertFile: other.CA},
			[]string{"server certificate is not accepted", "x509"}},
		{"no client certificate",
			etcd.Config{Endpoints: []string{srv.Endpoint}, CACertFile: tlsFiles.CA},
			[]string{"refused the client's certificate", "certificate required"}},
		{"client certificate from another CA",
			etcd.Config{Endpoints: []string{srv.Endpoint}, CertFile: other.ClientCert, KeyFile: other.ClientKey, CACertFile: tlsFiles.CA},
			[]string{"refused the client's certificate"}},
		{"http:// to the TLS port",
			etcd.Config{Endpoints: []string{strings.Replace(srv.Endpoint, "https://", "http://", 1)}},
			[]string{strings.Replace(srv.Endpoint, "https://", "http://", 1) + " answers in TLS", "use https://"}},
		{"https:// to a plain port",
			etcd.Config{Endpoints: []string{strings.Replace(plain.Endpoint, "http://", "https://", 1)}, CACertFile: tlsFiles.CA},
			[]string{strings.Replace(plain.Endpoint, "http://", "https://", 1) + " does not speak TLS", "use http://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Timeout = timeout
			c, err := etcd.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 2 {
				start := time.Now()
				_, err := c.Get(context.Background(), model.IPAMConfigKey{})
				if d := time.Since(start); d > timeout/3 {
					t.Errorf("call %d failed after %v; the timeout is %v", i, d, timeout)
				}
				if !errors.Is(err, cerrors.ErrUnavailable) {
					t.Fatalf("call %d: err = %v, want unavailable", i, err)
				}
				if i == 0 {
					t.Log(err)
				}
				for _, want := range append([]string{tc.cfg.Endpoints[0]}, tc.want...) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("call %d: err = %v\nwant it to say %q", i, err, want)
					}
				}
				if strings.Contains(err.Error(), "no answer within") {
					t.Errorf("call %d: err = %v, reads as an outage", i, err)
				}
			}
		})
	}
}

// issue 23 item 3
//
// Down etcd stays an outage: calls wait out the timeout (etcd may come
// back) and then say what the connection last saw.
func TestEtcdDownIsNoFault(t *testing.T) {
	srv := testutil.StartEtcd(t)
	srv.Stop()
	c, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Get(context.Background(), model.IPAMConfigKey{})
	if d := time.Since(start); d < time.Second || d > 3*time.Second {
		t.Errorf("call failed after %v, want after the 1s timeout", d)
	}
	if !errors.Is(err, cerrors.ErrUnavailable) || !strings.Contains(err.Error(), "no answer within 1s") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want no answer within 1s with the last connection error", err)
	}
}
