package linux

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/felix/dataplane/runner"
	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/testutil"
)

// fxctxNS makes a namespace named fxctx-<random>, deleted at cleanup
// whether the test passed or not.
func fxctxNS(t *testing.T) *testutil.NetNS {
	t.Helper()
	testutil.RequireRoot(t)
	ns, err := testutil.NewNetNSNamed(testutil.UniqueName("fxctx-"))
	must(t, err)
	t.Cleanup(ns.Delete)
	return ns
}

// within fails the test unless f returns within d.
func within(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

// noLeak fails the test if, after a grace period, more goroutines run than
// before.
func noLeak(t *testing.T, before int) {
	t.Helper()
	if !eventuallyOK(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
	}
}

// A Dataplane started with Run and Apply stops when its context ends, and
// Close returns; nothing of it keeps running.
func TestStartStopLeavesNoGoroutine(t *testing.T) {
	ns := fxctxNS(t)
	before := runtime.NumGoroutine()
	dp, err := New(dpapi.Config{Hostname: "host1", Log: testLog(t), IptablesRefreshInterval: 50 * time.Millisecond,
		InterfaceRefreshInterval: 50 * time.Millisecond}, WithNetNS(ns.Name))
	must(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- dp.Run(ctx) }()
	must(t, dp.Apply(ctx, baseState()))
	time.Sleep(200 * time.Millisecond) // a few refreshes
	cancel()
	must(t, within(t, 10*time.Second, "Run", func() error { return <-runDone }))
	if err := dp.Apply(ctx, baseState()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with an ended context returned %v, want context.Canceled", err)
	}
	must(t, within(t, 10*time.Second, "Close", dp.Close))
	noLeak(t, before)
}

// Close stops the backend detection New starts, even if nothing applied.
func TestCloseStopsStartup(t *testing.T) {
	ns := fxctxNS(t)
	before := runtime.NumGoroutine()
	dp, err := New(dpapi.Config{Hostname: "host1", Log: testLog(t)}, WithNetNS(ns.Name))
	must(t, err)
	must(t, within(t, 10*time.Second, "Close", dp.Close))
	if err := dp.Apply(t.Context(), baseState()); err == nil {
		t.Fatal("Apply after Close succeeded")
	}
	noLeak(t, before)
}

// cancelOn cancels a context just before the first command whose name
// ends in suffix, which then runs under the cancelled context.
type cancelOn struct {
	next   runner.Runner
	suffix string
	cancel context.CancelFunc
	hit    chan struct{}
}

func (c *cancelOn) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if strings.HasSuffix(name, c.suffix) {
		select {
		case c.hit <- struct{}{}:
			c.cancel()
		default:
		}
	}
	return c.next.Run(ctx, stdin, name, args...)
}

// Cancelling Apply as iptables-restore starts returns the context's error
// with none of the ruleset written; the next Apply writes all of it.
func TestApplyCancelledLeavesNoHalfRuleset(t *testing.T) {
	ns := fxctxNS(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := &cancelOn{next: DefaultRunner(ns.Name), suffix: "-restore", cancel: cancel, hit: make(chan struct{}, 1)}
	dp, err := New(dpapi.Config{Hostname: "host1", Log: testLog(t), IptablesBackend: "nft"}, WithNetNS(ns.Name), WithRunner(r))
	must(t, err)
	t.Cleanup(func() { _ = dp.Close() })
	h := &host{ns: ns, dp: dp}

	if err := dp.Apply(ctx, baseState()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Apply returned %v, want context.Canceled", err)
	}
	if got := ourLines(h.save(t, 4)); got != "" {
		t.Fatalf("cancelled Apply left rules:\n%s", got)
	}
	must(t, dp.Apply(t.Context(), baseState()))
	if got := ourLines(h.save(t, 4)); !strings.Contains(got, "cali-FORWARD") {
		t.Fatalf("the next Apply did not write the ruleset:\n%s", got)
	}
}
