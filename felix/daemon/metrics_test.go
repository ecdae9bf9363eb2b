package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/config"
	"github.com/calico-etcd/calico/testutil"
)

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// metricsConfig loads felix's config as the daemon does, from the shipped
// sample felix.cfg (which enables metrics) plus env, on a free port.
func metricsConfig(t *testing.T, env ...string) *config.Config {
	t.Helper()
	sample, err := os.ReadFile(filepath.Join("..", "..", "deploy", "config", "felix.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "felix.cfg")
	if err := os.WriteFile(file, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	env = append([]string{"NODENAME=h1", "FELIX_PROMETHEUSMETRICSPORT=0"}, env...)
	cfg, err := config.Load(config.Options{ConfigFile: file, NodenameFile: filepath.Join(t.TempDir(), "x")}, env, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.PrometheusMetricsEnabled {
		t.Fatal("the sample felix.cfg no longer enables metrics")
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serve starts the metrics endpoint of cfg until the test ends.
func serve(t *testing.T, cfg *config.Config) (net.Addr, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := newMetrics("h1", false, false, nil, quietLog())
	return serveMetrics(ctx, cfg, m.reg, quietLog())
}

// Metrics listen on loopback unless PrometheusMetricsHost says otherwise;
// an empty PrometheusMetricsHost does not mean every address.
// issue 23 item 6
func TestMetricsListenOnLoopbackByDefault(t *testing.T) {
	for _, x := range []struct{ name, env, want string }{
		{"default", "", "127.0.0.1"},
		{"empty", "FELIX_PROMETHEUSMETRICSHOST=", "127.0.0.1"},
		{"configured", "FELIX_PROMETHEUSMETRICSHOST=127.0.0.2", "127.0.0.2"},
	} {
		t.Run(x.name, func(t *testing.T) {
			cfg := metricsConfig(t, x.env)
			a, err := serve(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if ip := a.(*net.TCPAddr).IP.String(); ip != x.want {
				t.Fatalf("listening on %s (PrometheusMetricsHost %q), want %s", a, cfg.PrometheusMetricsHost, x.want)
			}
			resp, err := http.Get("http://" + a.String() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "felix_host") {
				t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
			}
		})
	}
}

// getMetrics fetches /metrics from a with the client TLS config c.
func getMetrics(a net.Addr, c *tls.Config) (int, error) {
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Get("https://" + a.String() + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// With PrometheusMetricsCertFile and KeyFile the endpoint serves HTTPS;
// with PrometheusMetricsCAFile too it requires a client certificate that
// CA signed.
// issue 23 item 6
func TestMetricsTLSAndClientCertificates(t *testing.T) {
	files, err := testutil.NewTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := testutil.NewTLSFiles(t.TempDir()) // another CA
	if err != nil {
		t.Fatal(err)
	}
	withCert, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	noCert := withCert.Clone()
	noCert.Certificates = nil
	foreign, err := other.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = withCert.RootCAs // trusts the server, presents a cert it does not know
	untrusting := noCert.Clone()
	untrusting.RootCAs = x509.NewCertPool()

	tlsEnv := []string{"FELIX_PROMETHEUSMETRICSCERTFILE=" + files.ServerCert, "FELIX_PROMETHEUSMETRICSKEYFILE=" + files.ServerKey}

	t.Run("server certificate only", func(t *testing.T) {
		a, err := serve(t, metricsConfig(t, tlsEnv...))
		if err != nil {
			t.Fatal(err)
		}
		if code, err := getMetrics(a, noCert); err != nil || code != http.StatusOK {
			t.Errorf("HTTPS without a client certificate: %d %v", code, err)
		}
		if _, err := getMetrics(a, untrusting); err == nil {
			t.Error("a client that does not trust the CA got through: the server is not using the certificate")
		}
		if resp, err := http.Get("http://" + a.String() + "/metrics"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("plain HTTP served metrics")
			}
		}
	})

	t.Run("client certificates required", func(t *testing.T) {
		a, err := serve(t, metricsConfig(t, append(tlsEnv, "FELIX_PROMETHEUSMETRICSCAFILE="+files.CA)...))
		if err != nil {
			t.Fatal(err)
		}
		if code, err := getMetrics(a, withCert); err != nil || code != http.StatusOK {
			t.Errorf("with a client certificate: %d %v", code, err)
		}
		if code, err := getMetrics(a, noCert); err == nil {
			t.Errorf("without a client certificate: got %d, want the handshake refused", code)
		}
		if code, err := getMetrics(a, foreign); err == nil {
			t.Errorf("with a certificate of another CA: got %d, want the handshake refused", code)
		}
	})

	// PrometheusMetricsClientAuth, as Calico: a CA with NoClientCert or
	// VerifyClientCertIfGiven lets clients without a certificate in; a
	// certificate from another CA is refused unless nothing is verified.
	for _, tc := range []struct {
		auth              string
		noCert, foreignOK bool
	}{
		{"NoClientCert", true, true},
		{"VerifyClientCertIfGiven", true, false},
		{"RequireAnyClientCert", false, true},
		{"RequireAndVerifyClientCert", false, false},
	} {
		t.Run("client auth "+tc.auth, func(t *testing.T) {
			a, err := serve(t, metricsConfig(t, append(tlsEnv, "FELIX_PROMETHEUSMETRICSCAFILE="+files.CA,
				"FELIX_PROMETHEUSMETRICSCLIENTAUTH="+tc.auth)...))
			if err != nil {
				t.Fatal(err)
			}
			if code, err := getMetrics(a, withCert); err != nil || code != http.StatusOK {
				t.Errorf("with a client certificate: %d %v", code, err)
			}
			if _, err := getMetrics(a, noCert); (err == nil) != tc.noCert {
				t.Errorf("without a client certificate: err %v, want success %v", err, tc.noCert)
			}
			if _, err := getMetrics(a, foreign); (err == nil) != tc.foreignOK {
				t.Errorf("with another CA's certificate: err %v, want success %v", err, tc.foreignOK)
			}
		})
	}

	t.Run("files that do not load stop the endpoint", func(t *testing.T) {
		notPEM := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, env := range [][]string{
			{"FELIX_PROMETHEUSMETRICSCERTFILE=/nonexistent/cert.pem", "FELIX_PROMETHEUSMETRICSKEYFILE=" + files.ServerKey},
			append(tlsEnv, "FELIX_PROMETHEUSMETRICSCAFILE=/nonexistent/ca.pem"),
			append(tlsEnv, "FELIX_PROMETHEUSMETRICSCAFILE="+notPEM),
			append(tlsEnv, "FELIX_PROMETHEUSMETRICSCLIENTAUTH=RequireAndVerifyClientCert"), // nothing to verify against
		} {
			if a, err := serve(t, metricsConfig(t, env...)); err == nil {
				t.Errorf("%v: serving on %s, want an error", env, a)
			}
		}
	})
}
