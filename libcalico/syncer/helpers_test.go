package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

const waitTimeout = 30 * time.Second

var (
	poolOpts  = model.ResourceListOptions{Kind: v3.KindIPPool}
	blockOpts = model.BlockListOptions{}
)

// recorder is a Callbacks that keeps every call in order, the state the
// updates add up to, and any breach of the Callbacks contract.
type recorder struct {
	mu       sync.Mutex
	inCall   atomic.Int32
	log      []any // Status or []Update, in call order
	state    map[string]Update
	problems []string
}

var _ Callbacks = (*recorder)(nil)

func newRecorder() *recorder { return &recorder{state: map[string]Update{}} }

func (r *recorder) enter() func() {
	if r.inCall.Add(1) != 1 {
		r.problem("callbacks called concurrently")
	}
	return func() { r.inCall.Add(-1) }
}

func (r *recorder) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *recorder) OnStatusUpdated(s Status) {
	defer r.enter()()
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.lastStatus(); ok && st == s {
		r.problems = append(r.problems, fmt.Sprintf("status %v reported twice in a row", s))
	}
	r.log = append(r.log, s)
}

func (r *recorder) OnUpdates(us []Update) {
	defer r.enter()()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(us) == 0 {
		r.problems = append(r.problems, "empty OnUpdates batch")
	}
	for _, u := range us {
		p := mustPath(u.Key)
		_, known := r.state[p]
		switch {
		case u.Type == UpdateNew && known:
			r.problems = append(r.problems, "duplicate New for "+p)
		case u.Type != UpdateNew && !known:
			r.problems = append(r.problems, fmt.Sprintf("%v for unknown key %s", u.Type, p))
		case u.Type != UpdateDeleted && u.Value == nil:
			r.problems = append(r.problems, fmt.Sprintf("%v without a value for %s", u.Type, p))
		}
		if u.Type == UpdateDeleted {
			delete(r.state, p)
		} else {
			r.state[p] = u
		}
	}
	r.log = append(r.log, us)
}

func (r *recorder) lastStatus() (Status, bool) {
	for i := len(r.log) - 1; i >= 0; i-- {
		if s, ok := r.log[i].(Status); ok {
			return s, true
		}
	}
	return 0, false
}

// mark returns a position in the log for statusesSince and updatesSince.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

func (r *recorder) statusesSince(m int) []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Status
	for _, e := range r.log[m:] {
		if s, ok := e.(Status); ok {
			out = append(out, s)
		}
	}
	return out
}

func (r *recorder) updatesSince(m int) []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Update
	for _, e := range r.log[m:] {
		if us, ok := e.([]Update); ok {
			out = append(out, us...)
		}
	}
	return out
}

// revisions returns path → revision of the state the updates add up to.
func (r *recorder) revisions() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for p, u := range r.state {
		out[p] = u.Revision
	}
	return out
}

func (r *recorder) value(k model.Key) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[mustPath(k)].Value
}

// check fails the test on any contract breach seen so far.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
}

// waitFor polls cond until it holds or waitTimeout passes.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out waiting for %s; callbacks so far:\n%s", what, dump(r.log))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *recorder) waitStatus(t *testing.T, since int, want Status) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("status %v", want), func() bool {
		ss := r.statusesSince(since)
		return len(ss) > 0 && ss[len(ss)-1] == want
	})
}

// waitState waits until the reported state equals want (path → revision).
func (r *recorder) waitState(t *testing.T, want map[string]int64) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("state %v", want), func() bool { return equalRevs(r.revisions(), want) })
}

func dump(log []any) string {
	var b strings.Builder
	for _, e := range log {
		switch e := e.(type) {
		case Status:
			fmt.Fprintf(&b, "  status %v\n", e)
		case []Update:
			for _, u := range e {
				fmt.Fprintf(&b, "  %v %v @%d\n", u.Type, u.Key, u.Revision)
			}
		}
	}
	return b.String()
}

func equalRevs(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// summary renders updates as sorted "type key" strings for exact checks.
func summary(us []Update) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = fmt.Sprintf("%v %v", u.Type, u.Key)
	}
	sort.Strings(out)
	return out
}

func mustPath(k model.Key) string {
	p, err := k.Path()
	if err != nil {
		panic(err)
	}
	return p
}

func poolKey(name string) model.ResourceKey {
	return model.ResourceKey{Kind: v3.KindIPPool, Name: name}
}

func blockKey(cidr string) model.BlockKey {
	return model.BlockKey{CIDR: netip.MustParsePrefix(cidr)}
}

func poolJSON(t *testing.T, name, cidr string) []byte {
	t.Helper()
	p := v3.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	p.Spec.BlockSize = 26
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func blockJSON(t *testing.T, cidr, host string) []byte {
	t.Helper()
	aff := "host:" + host
	b, err := json.Marshal(model.AllocationBlock{
		CIDR:        model.CIDR{Prefix: netip.MustParsePrefix(cidr)},
		Affinity:    &aff,
		Allocations: make([]*int, 4),
		Unallocated: []int{0, 1, 2, 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, be backend.Client, k model.Key, v []byte) int64 {
	t.Helper()
	kv, err := be.Apply(context.Background(), &backend.KVPair{Key: k, Value: v})
	if err != nil {
		t.Fatalf("apply %v: %v", k, err)
	}
	return kv.Revision
}

func del(t *testing.T, be backend.Client, k model.Key) {
	t.Helper()
	if _, err := be.Delete(context.Background(), k, 0); err != nil {
		t.Fatalf("delete %v: %v", k, err)
	}
}

// contents lists every prefix and returns path → revision.
func contents(t *testing.T, be backend.Client, prefixes ...model.ListOptions) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, p := range prefixes {
		l, err := be.List(context.Background(), p)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, kv := range l.KVPairs {
			out[mustPath(kv.Key)] = kv.Revision
		}
	}
	return out
}

func testLog(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.DebugLevel)
	if os.Getenv("SYNCER_TEST_LOG") == "" {
		l.SetLevel(logrus.ErrorLevel)
	}
	return logrus.NewEntry(l).WithField("test", t.Name())
}

// running is a syncer started by start.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

// start runs a syncer over be and stops it, checking Run returns, at cleanup.
func start(t *testing.T, be backend.Client, cfg Config, r *recorder) *running {
	t.Helper()
	return startWithLog(t, be, cfg, r, testLog(t))
}

// startWithLog is start with the syncer's logger given.
func startWithLog(t *testing.T, be backend.Client, cfg Config, r *recorder, log *logrus.Entry) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := New(be, cfg, r, log)
	run := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		if err := run.stop(); err != nil {
			t.Error(err)
		}
		r.check(t)
	})
	return run
}

// stop cancels the syncer and waits for Run to return nil.
func (r *running) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // let a second stop see it too
		if err != nil {
			return fmt.Errorf("run returned %w", err)
		}
		return nil
	case <-time.After(waitTimeout):
		return fmt.Errorf("run did not return within %v of cancel", waitTimeout)
	}
}
