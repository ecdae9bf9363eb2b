package output

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

func cfg(as uint32) *bgpconfig.Config {
	return &bgpconfig.Config{Version: 1, NodeName: "a", RouterID: "10.0.0.1", ASNumber: as, ListenPort: 179}
}

func TestWriteOnlyOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "bgpd.json")
	w := &Writer{Path: path}
	for i, tc := range []struct {
		as      uint32
		changed bool
	}{{64512, true}, {64512, false}, {65000, true}, {65000, false}} {
		changed, err := w.Write(cfg(tc.as))
		if err != nil || changed != tc.changed {
			t.Fatalf("write %d: changed=%v err=%v, want changed=%v", i, changed, err, tc.changed)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", st.Mode(), err)
	}
	got, err := bgpconfig.Load(path)
	if err != nil || got.ASNumber != 65000 {
		t.Fatalf("file holds %+v, %v", got, err)
	}
	// A new writer (a restarted confd) does not rewrite an equal file.
	before := st.ModTime()
	time.Sleep(10 * time.Millisecond)
	if changed, err := (&Writer{Path: path}).Write(cfg(65000)); changed || err != nil {
		t.Fatalf("restart rewrite: %v %v", changed, err)
	}
	if st, _ := os.Stat(path); !st.ModTime().Equal(before) {
		t.Fatal("file touched")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestReloadSignalsOnlyBgpd(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "bgpd.pid")
	p := Pidfile{Path: pidfile, Process: "calico-bgpd"}
	if err := p.Reload(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("missing pidfile: %v", err)
	}
	// A live process with another name is never signalled.
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(sleep.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("wrong process: %v", err)
	}
	// Our own process, under its own name, gets SIGHUP.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	comm, _ := os.ReadFile("/proc/self/comm")
	p.Process = string(comm[:len(comm)-1])
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hup:
	case <-time.After(5 * time.Second):
		t.Fatal("no SIGHUP")
	}
}
