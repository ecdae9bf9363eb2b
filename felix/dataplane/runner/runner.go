// Package runner execs the kernel's command-line tools (iptables-restore,
// ipset, ...) for the dataplane managers. It is the seam that lets tests run
// every tool inside a network namespace (Exec.Within) and lets benchmarks
// capture what the managers wrote.
package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Runner runs one command.
type Runner interface {
	// Run runs name with args, feeding stdin (nil for none), and returns
	// its standard output. A non-zero exit is an error that carries the
	// command's standard error.
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// Streamer is a Runner that can also feed a command's standard input as
// write produces it, so that the command works while the rest is being
// produced. If write fails, the command is killed and the error returned;
// it may have acted on what it had read by then.
type Streamer interface {
	Runner
	Stream(ctx context.Context, write func(io.Writer) error, name string, args ...string) ([]byte, error)
}

// Stream runs name with Streamer's contract through r, which need not
// be a Streamer: then write's output is collected and passed to Run.
func Stream(ctx context.Context, r Runner, write func(io.Writer) error, name string, args ...string) ([]byte, error) {
	if s, ok := r.(Streamer); ok {
		return s.Stream(ctx, write, name, args...)
	}
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return nil, err
	}
	return r.Run(ctx, b.Bytes(), name, args...)
}

// Exec runs commands with os/exec, each behind Prefix (for example
// []string{"ip", "netns", "exec", "ns1"}). The zero value runs them directly.
type Exec struct {
	Prefix []string
	// Within, when set, is given each command's start to run: from a
	// thread in another network namespace, say, which the command then
	// inherits.
	Within func(start func() error) error
	// Observe, when set, is told how long each command took.
	Observe func(name string, d time.Duration)
}

var _ Streamer = (*Exec)(nil)

// Run implements Runner.
func (e *Exec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := e.command(ctx, name, args)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	return e.finish(cmd, func() error {
		if err := e.start(cmd); err != nil {
			return err
		}
		return cmd.Wait()
	}, name, args)
}

func (e *Exec) start(cmd *exec.Cmd) error {
	if e.Within != nil {
		return e.Within(cmd.Start)
	}
	return cmd.Start()
}

// writers holds Stream's 64 KiB input buffers for reuse.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// Stream implements Streamer.
func (e *Exec) Stream(ctx context.Context, write func(io.Writer) error, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := e.command(ctx, name, args)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	return e.finish(cmd, func() error {
		if err := e.start(cmd); err != nil {
			return err
		}
		w := writers.Get().(*bufio.Writer)
		w.Reset(in)
		werr := write(w)
		if werr == nil {
			werr = w.Flush()
		}
		w.Reset(nil)
		writers.Put(w)
		if werr != nil {
			cancel() // kill it rather than let it act on part of the input
		}
		in.Close()
		if err := cmd.Wait(); werr != nil || err != nil {
			return errors.Join(werr, err)
		}
		return nil
	}, name, args)
}

func (e *Exec) command(ctx context.Context, name string, args []string) *exec.Cmd {
	argv := make([]string, 0, len(e.Prefix)+1+len(args))
	argv = append(argv, e.Prefix...)
	argv = append(argv, name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// On cancel, kill the command's whole process group: a child it left
	// behind (a shell's sleep, say) would otherwise hold the output pipes
	// open and Wait with them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// finish runs cmd by run, timing it, and returns its output and an
// error that carries its standard error.
func (e *Exec) finish(cmd *exec.Cmd, run func() error, name string, args []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := run()
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

// Recorder passes commands to Next and keeps a copy of each, except
// while Off is set.
type Recorder struct {
	Next Runner
	// Off passes commands straight to Next, unrecorded: a benchmark times
	// them without the copy.
	Off atomic.Bool

	mu    sync.Mutex
	calls []Call
}

var _ Streamer = (*Recorder)(nil)

// Run implements Runner.
func (r *Recorder) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	out, err := r.Next.Run(ctx, stdin, name, args...)
	if r.Off.Load() {
		return out, err
	}
	if stdin != nil {
		stdin = append([]byte(nil), stdin...) // the caller's to reuse
	}
	r.record(name, args, stdin, err)
	return out, err
}

// Stream implements Streamer, streaming when Next does.
func (r *Recorder) Stream(ctx context.Context, write func(io.Writer) error, name string, args ...string) ([]byte, error) {
	if r.Off.Load() {
		return Stream(ctx, r.Next, write, name, args...)
	}
	var seen bytes.Buffer
	out, err := Stream(ctx, r.Next, func(w io.Writer) error { return write(io.MultiWriter(w, &seen)) }, name, args...)
	r.record(name, args, seen.Bytes(), err)
	return out, err
}

// record keeps a call; stdin becomes the Recorder's.
func (r *Recorder) record(name string, args []string, stdin []byte, err error) {
	c := Call{Name: name, Args: append([]string(nil), args...), Stdin: stdin, Err: err}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
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
