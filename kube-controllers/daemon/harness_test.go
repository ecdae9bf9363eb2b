package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/kubeapi"

	"github.com/calico-etcd/calico/kube-controllers/config"
	"github.com/calico-etcd/calico/kube-controllers/daemon"
)

// env is a real kube-apiserver on one etcd and Calico's data on another
// (Calico's etcd deployment may share one; separate ones let a test stop
// Calico's etcd alone).
type env struct {
	kubeEtcd, etcd *testutil.Etcd
	api            *kubeapi.APIServer
	kube           kubernetes.Interface
	calico         *client.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{kubeEtcd: testutil.StartEtcd(t), etcd: testutil.StartEtcd(t)}
	e.api = kubeapi.Start(t, e.kubeEtcd.Endpoint)
	rc, err := clientcmd.BuildConfigFromFlags("", e.api.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 500, 1000
	if e.kube, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	be, err := etcd.New(etcd.Config{Endpoints: []string{e.etcd.Endpoint}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	e.calico = client.New(be)
	return e
}

// environ is the controllers' environment for this env.
func (e *env) environ(extra map[string]string) func(string) string {
	m := map[string]string{
		"ETCD_ENDPOINTS":          e.etcd.Endpoint,
		"KUBECONFIG":              e.api.Kubeconfig,
		"HEALTH_PORT":             "0",
		"PROMETHEUS_METRICS_PORT": "0",
		"LEADER_ELECTION":         "false",
		"DATASTORE_TIMEOUT":       "2s",
	}
	for k, v := range extra {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// running is a daemon.Run in the test process.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start runs the controllers until the test ends (or stop).
func (e *env) start(t testing.TB, extra map[string]string) *running {
	t.Helper()
	cfg, warnings, err := config.FromEnv(e.environ(extra))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Log("warning:", w)
	}
	l := logrus.New()
	l.SetLevel(logrus.InfoLevel)
	if testing.Verbose() {
		l.SetOutput(testWriter{t})
	} else {
		l.SetOutput(io.Discard)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- daemon.Run(ctx, cfg, logrus.NewEntry(l)) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the run and waits for it to end; once.
func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("controllers did not stop within 30s")
		}
	})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// eventually retries cond until it returns nil or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// namespace creates a namespace with labels and its default service
// account (no controller-manager runs to make one).
func (e *env) namespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// httpGet returns the status and body of url.
func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url) //nolint:gosec // test URL
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

var errNotYet = errors.New("not yet")

func notYet(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errNotYet}, args...)...)
}
