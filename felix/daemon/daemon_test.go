package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/calico-etcd/calico/felix/config"
	"github.com/calico-etcd/calico/felix/dpapi"
	"github.com/calico-etcd/calico/felix/status"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
)

// fakeDP records Apply calls and fails the next `fail` of them.
type fakeDP struct {
	mu      sync.Mutex
	fail    int
	calls   int
	applied chan *dpapi.State
	// created, running and closed trace the daemon's use of the
	// dataplane's life cycle.
	created, running, closed bool
	closedWhileRunning       bool
}

func (f *fakeDP) Run(ctx context.Context) error {
	f.mu.Lock()
	f.running = true
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.running = false
	f.mu.Unlock()
	return nil
}

func (f *fakeDP) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed, f.closedWhileRunning = true, f.running
	return nil
}

func (f *fakeDP) Apply(ctx context.Context, s *dpapi.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if !s.InSync {
		panic("Apply before InSync")
	}
	if f.fail > 0 {
		f.fail--
		return errors.New("injected failure")
	}
	select {
	case f.applied <- s:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type harness struct {
	t      *testing.T
	be     backend.Client
	cli    *client.Client
	dp     *fakeDP
	done   chan error
	cancel context.CancelFunc
	addrs  chan [2]net.Addr
	notes  chan string
	logs   *test.Hook
}

func start(t *testing.T, be backend.Client, env ...string) *harness {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "felix.cfg")
	if err := os.WriteFile(cfgFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env = append([]string{"FELIX_FELIXHOSTNAME=h1", "FELIX_HEALTHENABLED=true", "FELIX_HEALTHHOST=127.0.0.1",
		"FELIX_HEALTHPORT=0", "FELIX_PROMETHEUSMETRICSENABLED=true", "FELIX_PROMETHEUSMETRICSHOST=127.0.0.1",
		"FELIX_PROMETHEUSMETRICSPORT=0", "FELIX_REPORTINGINTERVALSECS=0.2"}, env...)
	logger, hook := test.NewNullLogger()
	log := logrus.NewEntry(logger)
	cfg, err := config.Load(config.Options{ConfigFile: cfgFile, NodenameFile: filepath.Join(t.TempDir(), "x")}, env, log)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, be: be, cli: client.New(be), dp: &fakeDP{applied: make(chan *dpapi.State, 100)},
		done: make(chan error, 1), addrs: make(chan [2]net.Addr, 1), notes: make(chan string, 10), logs: hook}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	deps := Deps{
		NewDataplane: func(dpapi.Config) (Dataplane, error) {
			h.dp.mu.Lock()
			h.dp.created = true
			h.dp.mu.Unlock()
			return h.dp, nil
		},
		Backend: be,
		Log:     log,
		Notify:  func(s string) { h.notes <- s },
		Ready:   func(a, b net.Addr) { h.addrs <- [2]net.Addr{a, b} },
	}
	go func() { h.done <- Run(ctx, cfg, deps) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
			return
		}
		h.dp.mu.Lock()
		defer h.dp.mu.Unlock()
		if h.dp.created && (!h.dp.closed || h.dp.closedWhileRunning) {
			t.Errorf("dataplane closed %v, while running %v; want closed after its Run returned", h.dp.closed, h.dp.closedWhileRunning)
		}
	})
	return h
}

func (h *harness) create(r v3.Resource) {
	h.t.Helper()
	if _, err := h.cli.Apply(context.Background(), r); err != nil {
		h.t.Fatalf("writing %T: %v", r, err)
	}
}

// waitState waits for an applied state satisfying ok.
func (h *harness) waitState(what string, ok func(*dpapi.State) bool) *dpapi.State {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-h.dp.applied:
			if ok(s) {
				return s
			}
		case err := <-h.done:
			h.t.Fatalf("Run returned %v while waiting for %s", err, what)
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func get(t *testing.T, addr net.Addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func wep(name, node, ip string) *v3.WorkloadEndpoint {
	w := v3.NewWorkloadEndpoint()
	w.Namespace = "ns"
	w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: node, Pod: name, Endpoint: "eth0",
		InterfaceName: "cali" + name, IPNetworks: []string{ip}, Profiles: []string{"projectcalico-default-allow"}}
	return w
}

func TestAppliesAfterSyncAndReports(t *testing.T) {
	be := memory.New()
	h := start(t, be, "FELIX_ENDPOINTREPORTINGENABLED=true", "FELIX_ENDPOINTREPORTINGDELAYSECS=0")
	h.create(wep("a", "h1", "10.0.0.1/32"))
	h.create(wep("b", "h2", "10.0.0.2/32"))
	addrs := <-h.addrs
	s := h.waitState("the local workload", func(s *dpapi.State) bool { return s.Workloads["ns/h1-k8s-a-eth0"] != nil })
	if len(s.Workloads) != 1 {
		t.Errorf("workloads = %v", s.Workloads)
	}
	if n := <-h.notes; n != "READY=1" {
		t.Errorf("notify = %q", n)
	}
	if code, body := get(t, addrs[0], "/readiness"); code != 200 || !strings.Contains(body, "+ felix") {
		t.Errorf("readiness = %d %q", code, body)
	}
	if code, _ := get(t, addrs[0], "/liveness"); code != 200 {
		t.Errorf("liveness = %d", code)
	}
	_, body := get(t, addrs[1], "/metrics")
	for _, m := range []string{"felix_calc_graph_update_time_seconds", "felix_calc_graph_updates_processed", "felix_active_local_endpoints 1",
		"felix_cluster_num_workload_endpoints 2", "felix_resync_state 3", "felix_host{host=\"h1\"} 1", "go_goroutines"} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %q", m)
		}
	}

	// Live policy change: a new state is applied.
	h.create(wep("c", "h1", "10.0.0.3/32"))
	h.waitState("the second workload", func(s *dpapi.State) bool { return len(s.Workloads) == 2 })

	// Felix status keys, the live one with a lease.
	waitFor(t, "felix status", func() bool {
		kv, err := be.Get(context.Background(), model.FelixStatusKey{Hostname: "h1"})
		if err != nil {
			return false
		}
		var r status.Report
		return json.Unmarshal(kv.Value, &r) == nil && r.Time != "" && !r.FirstUpdate && r.Uptime > 0
	})
	if _, err := be.Get(context.Background(), model.FelixStatusKey{Hostname: "h1", Last: true}); err != nil {
		t.Errorf("last_reported_status: %v", err)
	}
	waitFor(t, "endpoint status", func() bool {
		l, err := be.List(context.Background(), model.FelixStatusListOptions{Hostname: "h1"})
		n := 0
		for _, kv := range l.KVPairs {
			if k, ok := kv.Key.(model.WorkloadEndpointStatusKey); ok && k.OrchestratorID == "k8s" && string(kv.Value) == `{"status":"up"}` {
				n++
			}
		}
		return err == nil && n == 2
	})
}

func TestRetriesFailedApply(t *testing.T) {
	h := start(t, memory.New())
	h.dp.mu.Lock()
	h.dp.fail = 3
	h.dp.mu.Unlock()
	h.create(wep("a", "h1", "10.0.0.1/32"))
	h.waitState("a state after failures", func(s *dpapi.State) bool { return len(s.Workloads) == 1 })
	h.dp.mu.Lock()
	defer h.dp.mu.Unlock()
	if h.dp.calls < 4 {
		t.Errorf("apply calls = %d, want >= 4", h.dp.calls)
	}
}

func TestConfigChangeNeedsRestart(t *testing.T) {
	h := start(t, memory.New())
	h.waitState("first apply", func(*dpapi.State) bool { return true })
	fc := v3.NewFelixConfiguration()
	fc.Name = "default"
	lvl := "Debug"
	fc.Spec.LogSeverityScreen = &lvl
	h.create(fc)
	select {
	case err := <-h.done:
		t.Fatalf("a log level change ended Run: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	prefix := "tap"
	fc.Spec.InterfacePrefix = &prefix
	h.create(fc)
	select {
	case err := <-h.done:
		if !errors.Is(err, ErrRestartNeeded) {
			t.Fatalf("Run returned %v, want ErrRestartNeeded", err)
		}
		h.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not exit after a restart-needing change")
	}
}

func TestNodeConfigReadAtStart(t *testing.T) {
	be := memory.New()
	fc := v3.NewFelixConfiguration()
	fc.Name = "node.h1"
	prefix := "tap"
	fc.Spec.InterfacePrefix = &prefix
	if _, err := client.New(be).Apply(context.Background(), fc); err != nil {
		t.Fatal(err)
	}
	got := make(chan dpapi.Config, 1)
	cfg, err := config.Load(config.Options{ConfigFile: os.DevNull}, []string{"FELIX_FELIXHOSTNAME=h1"}, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Deps{Backend: be, Notify: func(string) {},
			NewDataplane: func(c dpapi.Config) (Dataplane, error) {
				got <- c
				return &fakeDP{applied: make(chan *dpapi.State, 10)}, nil
			}})
	}()
	select {
	case c := <-got:
		if len(c.InterfacePrefixes) != 1 || c.InterfacePrefixes[0] != "tap" {
			t.Errorf("dataplane config prefixes = %v", c.InterfacePrefixes)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dataplane not created")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after cancel", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
