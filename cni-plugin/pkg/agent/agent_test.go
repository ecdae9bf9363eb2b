package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveOn runs a Server with h on a socket in a temporary directory until
// the test ends.
func serveOn(t *testing.T, h Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (&Server{Handler: h, Logf: t.Logf}).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return sock
}

func req(cmd, id string) *Request {
	return &Request{Version: ProtocolVersion, Command: cmd, ContainerID: id, Stdin: []byte(`{}`)}
}

func TestCallReturnsHandlersResponse(t *testing.T) {
	sock := serveOn(t, func(_ context.Context, r *Request) *Response {
		return &Response{Stdout: []byte(r.Command + " " + r.ContainerID), Stderr: []byte("log")}
	})
	resp, err := Call(context.Background(), sock, req("ADD", "c1"), nil)
	if err != nil || string(resp.Stdout) != "ADD c1" || string(resp.Stderr) != "log" || resp.Direct {
		t.Fatalf("Call = %+v, %v", resp, err)
	}
}

func TestNoAgent(t *testing.T) {
	dir := t.TempDir()
	if _, err := Call(context.Background(), filepath.Join(dir, "absent.sock"), req("ADD", "c1"), nil); !errors.Is(err, ErrNoAgent) {
		t.Errorf("no socket: %v", err)
	}
	// A socket nobody listens on, as a killed agent leaves it.
	sock := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := Call(context.Background(), sock, req("ADD", "c1"), nil); !errors.Is(err, ErrNoAgent) {
		t.Errorf("stale socket: %v", err)
	}
	// Listen takes it over.
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l2.Close()
	if _, err := Listen(sock); err == nil {
		t.Error("a second Listen on a live socket succeeded")
	}
}

func TestOtherVersionIsSentBack(t *testing.T) {
	sock := serveOn(t, func(context.Context, *Request) *Response {
		t.Error("handler called for another protocol version")
		return &Response{}
	})
	r := req("ADD", "c1")
	r.Version = ProtocolVersion + 1
	resp, err := Call(context.Background(), sock, r, nil)
	if err != nil || !resp.Direct {
		t.Fatalf("Call = %+v, %v", resp, err)
	}
}

// A plugin binary that goes away cancels its request; the next request
// of the container waits until the cancelled one has returned.
func TestGoneClientCancelsAndSerializes(t *testing.T) {
	started := make(chan struct{})
	var mu sync.Mutex
	var order []string
	sock := serveOn(t, func(ctx context.Context, r *Request) *Response {
		if r.Command == "ADD" {
			close(started)
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond) // undoing
		}
		mu.Lock()
		order = append(order, r.Command)
		mu.Unlock()
		return &Response{}
	})
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := json.NewEncoder(conn).Encode(req("ADD", "c1")); err != nil {
		t.Fatal(err)
	}
	<-started
	conn.Close() // the plugin binary killed
	if _, err := Call(context.Background(), sock, req("DEL", "c1"), nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || order[0] != "ADD" || order[1] != "DEL" {
		t.Errorf("order %v, want ADD (cancelled) then DEL", order)
	}
}

// Requests of different containers run at once.
func TestContainersRunConcurrently(t *testing.T) {
	both := make(chan struct{})
	var once sync.Once
	var n sync.WaitGroup
	n.Add(2)
	sock := serveOn(t, func(ctx context.Context, r *Request) *Response {
		n.Done()
		go func() { n.Wait(); once.Do(func() { close(both) }) }()
		select {
		case <-both:
			return &Response{}
		case <-time.After(10 * time.Second):
			return &Response{Direct: true}
		}
	})
	var wg sync.WaitGroup
	for _, id := range []string{"c1", "c2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := Call(context.Background(), sock, req("ADD", id), nil)
			if err != nil || resp.Direct {
				t.Errorf("%s: %+v %v (not run alongside the other)", id, resp, err)
			}
		}()
	}
	wg.Wait()
}

// The namespace the plugin binary opened reaches the handler as a path
// to the agent's copy of the descriptor: the same file, whatever mounts
// the agent sees.
func TestNetnsPassedOpen(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "netns")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	sock := serveOn(t, func(_ context.Context, r *Request) *Response {
		got, err := os.Stat(r.Netns)
		if err != nil || !os.SameFile(got, want) || !strings.HasPrefix(r.Netns, "/proc/self/fd/") {
			return &Response{Stdout: []byte("not the same file: " + r.Netns)}
		}
		return &Response{Stdout: []byte("ok")}
	})
	r := req("ADD", "c1")
	r.Netns = f.Name()
	resp, err := Call(context.Background(), sock, r, f)
	if err != nil || string(resp.Stdout) != "ok" {
		t.Fatalf("Call = %+v, %v", resp, err)
	}
	// Without a descriptor the path is the runtime's.
	resp, err = Call(context.Background(), sock, r, nil)
	if err != nil || string(resp.Stdout) == "ok" {
		t.Fatalf("Call without a descriptor = %q, %v", resp.Stdout, err)
	}
}
