package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestExecPrefixStdinAndErrors(t *testing.T) {
	var observed []string
	e := &Exec{Prefix: []string{"env", "GREETING=hi"}, Observe: func(name string, _ time.Duration) { observed = append(observed, name) }}
	out, err := e.Run(context.Background(), []byte("world"), "sh", "-c", `printf "%s %s" "$GREETING" "$(cat)"`)
	if err != nil || string(out) != "hi world" {
		t.Fatalf("out %q err %v", out, err)
	}
	_, err = e.Run(context.Background(), nil, "sh", "-c", "echo broken >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("error %v lacks stderr and status", err)
	}
	if len(observed) != 2 || observed[0] != "sh" {
		t.Fatalf("observed %v", observed)
	}
}

func TestRecorder(t *testing.T) {
	r := &Recorder{Next: &Exec{}}
	if _, err := r.Run(context.Background(), []byte("x"), "cat"); err != nil {
		t.Fatal(err)
	}
	calls := r.Calls()
	if len(calls) != 1 || calls[0].Name != "cat" || string(calls[0].Stdin) != "x" {
		t.Fatalf("calls %+v", calls)
	}
	r.Reset()
	if len(r.Calls()) != 0 {
		t.Fatal("Reset kept calls")
	}
}

// Stream feeds the command while write produces; the command sees all of
// it, and a failing write kills the command and is reported.
func TestExecStream(t *testing.T) {
	e := &Exec{Prefix: []string{"env", "GREETING=hi"}}
	lines := func(n int) func(io.Writer) error {
		return func(w io.Writer) error {
			for i := range n {
				if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
					return err
				}
			}
			return nil
		}
	}
	out, err := e.Stream(context.Background(), lines(100000), "sh", "-c", `echo "$GREETING $(wc -l)"`)
	if err != nil || strings.TrimSpace(string(out)) != "hi 100000" {
		t.Fatalf("out %q err %v", out, err)
	}

	// The command must not finish on its own: only the kill stops it.
	boom := errors.New("boom")
	start := time.Now()
	_, err = e.Stream(context.Background(), func(w io.Writer) error {
		if _, err := io.WriteString(w, "partial\n"); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // let sh start its child
		return boom
	}, "sh", "-c", "sleep 30; exit 0") // sleep is a child of sh
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "killed") || time.Since(start) > 20*time.Second {
		t.Fatalf("failed write: %v after %v", err, time.Since(start))
	}

	_, err = e.Stream(context.Background(), lines(100000), "sh", "-c", "echo refused >&2; exit 4")
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("command that stops reading: %v", err)
	}
}

// A Recorder keeps what was streamed; through a Runner that cannot
// stream, Stream hands the whole input to Run.
func TestRecorderStream(t *testing.T) {
	for _, next := range []Runner{&Exec{}, runOnly{&Exec{}}} {
		r := &Recorder{Next: next}
		out, err := r.Stream(context.Background(), func(w io.Writer) error {
			_, err := io.WriteString(w, "a\nb\n")
			return err
		}, "cat")
		calls := r.Calls()
		if err != nil || string(out) != "a\nb\n" || len(calls) != 1 || string(calls[0].Stdin) != "a\nb\n" {
			t.Fatalf("%T: out %q err %v calls %+v", next, out, err, calls)
		}
	}
}

// runOnly hides a Runner's Stream.
type runOnly struct{ Runner }
