package bgpstatus

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, status func() Status) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), SocketName)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, status) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func TestStatusRoundTrip(t *testing.T) {
	want := Status{
		RouterID: "10.0.0.1",
		ASNumber: 64512,
		Peers4: []Peer{
			{Address: "10.0.0.2", Type: PeerTypeMesh, State: "up", Since: "09:14:21", Info: "Established"},
			{Address: "10.0.0.9", Type: PeerTypeGlobal, State: "start", Since: "09:14:21", Info: "Active Socket: Connection refused"},
		},
		Peers6: []Peer{},
	}
	path := serve(t, func() Status { return want })
	got, err := NewClient(path).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestNilPeersBecomeEmpty(t *testing.T) {
	path := serve(t, func() Status { return Status{RouterID: "1.2.3.4"} })
	got, err := NewClient(path).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Peers4 == nil || got.Peers6 == nil {
		t.Fatalf("peers should be empty, not nil: %+v", got)
	}
}

func TestAbsentSocket(t *testing.T) {
	_, err := NewClient(filepath.Join(t.TempDir(), "nope.ctl")).Status(context.Background())
	if err == nil || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("want a connect error, got %v", err)
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := NewClient(path).Status(ctx); err == nil {
		t.Fatal("want an error from a silent server")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v, want about 200ms", d)
	}
}

func TestUnknownOp(t *testing.T) {
	path := serve(t, func() Status { return Status{} })
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(`{"op":"reboot"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, _ := conn.Read(buf)
	if !strings.Contains(string(buf[:n]), `unknown op \"reboot\"`) {
		t.Fatalf("got %q", buf[:n])
	}
}

func TestSocketPath(t *testing.T) {
	if got := SocketPath("/run/x"); got != "/run/x/bgpd.ctl" {
		t.Fatal(got)
	}
	t.Setenv("CALICO_RUN_DIR", "/tmp/rd")
	if got := SocketPath(""); got != "/tmp/rd/bgpd.ctl" {
		t.Fatal(got)
	}
	t.Setenv("CALICO_RUN_DIR", "")
	if got := SocketPath(""); got != "/var/run/calico/bgpd.ctl" {
		t.Fatal(got)
	}
}
