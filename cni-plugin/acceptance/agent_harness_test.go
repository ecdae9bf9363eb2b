package acceptance

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// agentSocket is where this host's calico-cni-agent listens.
func (h *hostEnv) agentSocket() string { return filepath.Join(h.dir, "cni-agent.sock") }

// agentProc is a calico-cni-agent run by a test in a host's namespace.
type agentProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

func (a *agentProc) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.Write(p)
}

// log returns what the agent has logged so far.
func (a *agentProc) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

// startAgent runs this host's calico-cni-agent at debug level and waits
// until it listens; it is stopped when the test ends.
func (h *hostEnv) startAgent() *agentProc {
	h.t.Helper()
	a := &agentProc{done: make(chan struct{})}
	a.cmd = exec.Command(filepath.Join(binDir, "calico-cni-agent"), "--socket", h.agentSocket(), "--log-level", "debug")
	a.cmd.Stdout, a.cmd.Stderr = a, a
	if err := h.in(a.cmd.Start); err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	h.t.Cleanup(func() { a.kill(syscall.SIGTERM) })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.log(), "Serving CNI requests") {
		select {
		case <-a.done:
			h.t.Fatalf("calico-cni-agent exited: %s", a.log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("calico-cni-agent did not start: %s", a.log())
		}
	}
	return a
}

// kill sends sig and waits for the agent to exit.
func (a *agentProc) kill(sig syscall.Signal) {
	_ = a.cmd.Process.Signal(sig)
	<-a.done
}

// cpuTime returns the agent's CPU time so far (user+system, all threads;
// the kernel counts it in clock ticks).
func (a *agentProc) cpuTime(t testing.TB) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the stat file's 14th and 15th.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("agent stat %q", data)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}
