// Package kubeapi runs a real kube-apiserver for tests, built from
// k8s.io/kubernetes by deploy/kube/build.sh and cached per version, over
// a caller's etcd. Clients authenticate with a static token in group
// system:masters; the kubeconfig it writes says so.
package kubeapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/testutil"
)

// Token is the bearer token of the harness's admin user.
const Token = "calico-etcd-test-admin"

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// BinDir returns the directory holding the cached Kubernetes programs,
// building them first if they are missing (minutes, once per machine).
func BinDir() (string, error) {
	binOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			binErr = err
			return
		}
		cmd := exec.Command("bash", filepath.Join(root, "deploy", "kube", "build.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			binErr = fmt.Errorf("building the Kubernetes programs with deploy/kube/build.sh: %w", err)
			return
		}
		binDir = strings.TrimSpace(string(out))
	})
	return binDir, binErr
}

// Binary returns the path of a cached Kubernetes program. A test that
// cannot have it is skipped, loudly: the programs build from the Go
// module proxy, which some machines cannot reach.
func Binary(t testing.TB, name string) string {
	t.Helper()
	dir, err := BinDir()
	if err != nil {
		t.Skipf("SKIPPED: no %s: %v", name, err)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("SKIPPED: no %s: %v", name, err)
	}
	return p
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "deploy", "kube", "build.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("deploy/kube/build.sh not found above the working directory")
		}
		dir = parent
	}
}

// APIServer is a running kube-apiserver.
type APIServer struct {
	// URL is https://127.0.0.1:<port>.
	URL string
	// Kubeconfig is a kubeconfig file for the admin user.
	Kubeconfig string
	// Dir holds its files and log (apiserver.log).
	Dir string

	bin, etcd string
	port      int
	cmd       *exec.Cmd
	exited    chan struct{}
}

// Start runs a kube-apiserver over the etcd at etcdEndpoint (keys under
// /registry) and waits until it is ready. It is stopped when the test ends.
func Start(t testing.TB, etcdEndpoint string) *APIServer {
	t.Helper()
	bin := Binary(t, "kube-apiserver")
	a, err := New(t.TempDir(), bin, etcdEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	return a
}

// New prepares a kube-apiserver with its files in dir (key, tokens,
// kubeconfig) on a free port of 127.0.0.1; Start runs it.
func New(dir, bin, etcdEndpoint string) (*APIServer, error) {
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	a := &APIServer{Dir: dir, bin: bin, etcd: etcdEndpoint, port: port,
		URL: fmt.Sprintf("https://127.0.0.1:%d", port)}
	if err := a.writeFiles(); err != nil {
		return nil, err
	}
	return a, nil
}

// Port is the server's port on 127.0.0.1.
func (a *APIServer) Port() int { return a.port }

// PID is the running server's process ID, 0 when stopped.
func (a *APIServer) PID() int {
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// KeyFile is the service-account signing key (kube-controller-manager
// signs tokens with it).
func (a *APIServer) KeyFile() string { return filepath.Join(a.Dir, "sa.key") }

// CertFile is the server's self-signed certificate.
func (a *APIServer) CertFile() string { return filepath.Join(a.Dir, "certs", "apiserver.crt") }

func (a *APIServer) writeFiles() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(filepath.Join(a.Dir, "sa.key"), keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(a.Dir, "tokens.csv"), []byte(Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	a.Kubeconfig = filepath.Join(a.Dir, "kubeconfig")
	return os.WriteFile(a.Kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, a.URL, Token)), 0o600)
}

// Start starts a stopped server again on the same port and waits until
// it is ready.
func (a *APIServer) Start() error {
	log, err := os.OpenFile(filepath.Join(a.Dir, "apiserver.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	saKey := filepath.Join(a.Dir, "sa.key")
	cmd := exec.Command(a.bin,
		"--etcd-servers="+a.etcd,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", a.port),
		"--cert-dir="+filepath.Join(a.Dir, "certs"),
		"--token-auth-file="+filepath.Join(a.Dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saKey,
		"--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	a.cmd, a.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, a.exited)
	if err := a.waitReady(60 * time.Second); err != nil {
		a.Stop()
		return fmt.Errorf("%w; log tail:\n%s", err, a.LogTail(40))
	}
	return nil
}

func (a *APIServer) waitReady(within time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the harness's own self-signed server
	}}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+Token)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-a.exited:
			return errors.New("kube-apiserver exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready within %s", within)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s); stopping a
// stopped server does nothing.
func (a *APIServer) Stop() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	a.cmd = nil
}

// LogTail returns the last n lines of the server's log.
func (a *APIServer) LogTail(n int) string {
	data, _ := os.ReadFile(filepath.Join(a.Dir, "apiserver.log"))
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
