// Package health serves a daemon's /liveness and /readiness endpoints, as
// Calico's health aggregator does: 200 with "+" lines when every reporter
// is good, 503 otherwise.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Aggregator collects reports from named components.
type Aggregator struct {
	mu      sync.Mutex
	reports map[string]*report
	now     func() time.Time
}

type report struct {
	live, ready bool
	at          time.Time
	timeout     time.Duration // 0 = never stale
}

// NewAggregator returns an aggregator with no reporters.
func NewAggregator() *Aggregator {
	return &Aggregator{reports: map[string]*report{}, now: time.Now}
}

// Register adds a reporter, initially neither live nor ready. A reporter
// with a timeout counts as neither once it has not reported for that long.
func (a *Aggregator) Register(name string, timeout time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reports[name] = &report{timeout: timeout, at: a.now()}
}

// Report records a reporter's state.
func (a *Aggregator) Report(name string, live, ready bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.reports[name]
	if r == nil {
		r = &report{}
		a.reports[name] = r
	}
	r.live, r.ready, r.at = live, ready, a.now()
}

// Summary says whether every reporter is live (or ready) and why not.
func (a *Aggregator) Summary(ready bool) (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.reports))
	for n := range a.reports {
		names = append(names, n)
	}
	sort.Strings(names)
	ok := true
	var b strings.Builder
	for _, n := range names {
		r := a.reports[n]
		good := r.live
		if ready {
			good = r.ready
		}
		if r.timeout > 0 && a.now().Sub(r.at) > r.timeout {
			good = false
		}
		ok = ok && good
		mark := "+"
		if !good {
			mark = "-"
		}
		fmt.Fprintf(&b, "%s %s\n", mark, n)
	}
	return ok, b.String()
}

// Handler serves /liveness and /readiness.
func (a *Aggregator) Handler() http.Handler {
	mux := http.NewServeMux()
	for path, ready := range map[string]bool{"/liveness": false, "/readiness": true} {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			ok, detail := a.Summary(ready)
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_, _ = w.Write([]byte(detail))
		})
	}
	return mux
}

// Serve listens on addr and serves h until ctx ends. It returns once the
// listener is open, or with the listen error.
func Serve(ctx context.Context, addr string, h http.Handler, log *logrus.Entry) (net.Addr, error) {
	return ServeTLS(ctx, addr, h, nil, log)
}

// ServeTLS is Serve over TLS with tlsCfg (plain HTTP when it is nil); a
// client the handshake rejects never reaches h.
func ServeTLS(ctx context.Context, addr string, h http.Handler, tlsCfg *tls.Config, log *logrus.Entry) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsCfg,
		ErrorLog: stdlog.New(logWriter{log.WithField("addr", addr)}, "", 0)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).WithField("addr", addr).Error("HTTP server stopped")
		}
	}()
	return ln.Addr(), nil
}

// logWriter takes net/http's server log lines (a TLS client rejected, a
// broken connection) to log at debug level.
type logWriter struct{ log *logrus.Entry }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.WithField("detail", strings.TrimSpace(string(p))).Debug("HTTP server error")
	return len(p), nil
}
