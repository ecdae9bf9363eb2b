package runner

import (
	"context"
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
