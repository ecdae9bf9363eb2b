// Package runner execs the kernel's command-line tools (iptables-restore,
// ipset, ...) for the dataplane managers. It is the seam that lets tests run
// every tool inside a network namespace (a prefix of "ip netns exec NAME")
// and lets benchmarks capture what the managers wrote.
package runner

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Runner runs one command.
type Runner interface {
	// Run runs name with args, feeding stdin (nil for none), and returns
	// its standard output. A non-zero exit is an error that carries the
	// command's standard error.
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// Exec runs commands with os/exec, each behind Prefix (for example
// []string{"ip", "netns", "exec", "ns1"}). The zero value runs them directly.
type Exec struct {
	Prefix []string
	// Observe, when set, is told how long each command took.
	Observe func(name string, d time.Duration)
}

var _ Runner = (*Exec)(nil)

// Run implements Runner.
func (e *Exec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	argv := make([]string, 0, len(e.Prefix)+1+len(args))
	argv = append(argv, e.Prefix...)
	argv = append(argv, name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if e.Observe != nil {
		e.Observe(name, time.Since(start))
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, firstLines(stderr.String(), 5))
	}
	return stdout.Bytes(), nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "; ")
}

// Call is one command a Recorder saw.
type Call struct {
	Name  string
	Args  []string
	Stdin []byte
	Err   error
}

// Recorder passes commands to Next and keeps a copy of each.
type Recorder struct {
	Next Runner

	mu    sync.Mutex
	calls []Call
}

var _ Runner = (*Recorder)(nil)

// Run implements Runner.
func (r *Recorder) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	out, err := r.Next.Run(ctx, stdin, name, args...)
	c := Call{Name: name, Args: append([]string(nil), args...), Err: err}
	if stdin != nil {
		c.Stdin = append([]byte(nil), stdin...)
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return out, err
}

// Calls returns the commands seen so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Reset forgets the commands seen so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}
