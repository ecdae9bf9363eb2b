// Package output delivers confd's result to bgpd: Writer replaces the
// config file atomically and only when its bytes change, and Pidfile tells
// the running bgpd to reload it.
//
// The reload protocol: bgpd writes its pid to a pidfile
// ($CALICO_RUN_DIR/bgpd.pid) before it first reads the config file and
// reloads on SIGHUP. confd sends SIGHUP after every change, and only to a
// process whose name is calico-bgpd, so a stale pidfile never signals an
// unrelated process. A missing pidfile is not an error: bgpd reads the
// file when it starts (and re-reads it on a timer in case a signal is
// ever lost).
package output

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// Writer writes one config file.
type Writer struct {
	// Path is the config file.
	Path string
	last []byte
	read bool
}

// Write renders cfg and replaces the file if its content differs; it
// reports whether it wrote. The file is mode 0600 (it may hold passwords).
func (w *Writer) Write(cfg *bgpconfig.Config) (bool, error) {
	data, err := bgpconfig.Marshal(cfg)
	if err != nil {
		return false, fmt.Errorf("rendering bgp config: %w", err)
	}
	if !w.read {
		old, err := os.ReadFile(w.Path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("reading current bgp config: %w", err)
		}
		w.last, w.read = old, true
	}
	if w.last != nil && bytes.Equal(w.last, data) {
		return false, nil
	}
	if err := WriteAtomic(w.Path, data, 0o600); err != nil {
		return false, err
	}
	w.last = data
	return true, nil
}

// WriteAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so readers see the old or the new file, whole.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this is a no-op
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}

// ErrNotRunning means there is no bgpd to notify.
var ErrNotRunning = errors.New("bgpd is not running")

// Pidfile signals the process named in a pidfile.
type Pidfile struct {
	// Path is the pidfile.
	Path string
	// Process is the expected process name (/proc/<pid>/comm), e.g.
	// "calico-bgpd".
	Process string
	// ProcRoot is /proc unless set (tests).
	ProcRoot string
}

// Reload sends SIGHUP to the pidfile's process. It returns ErrNotRunning
// (wrapped) when the pidfile is missing, empty or names a process that
// does not exist or is not Process.
func (p Pidfile) Reload() error {
	data, err := os.ReadFile(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no pidfile %s: %w", p.Path, ErrNotRunning)
	}
	if err != nil {
		return fmt.Errorf("reading pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("pidfile %s holds %q: %w", p.Path, strings.TrimSpace(string(data)), ErrNotRunning)
	}
	root := p.ProcRoot
	if root == "" {
		root = "/proc"
	}
	comm, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "comm"))
	if err != nil {
		return fmt.Errorf("process %d from %s: %w", pid, p.Path, ErrNotRunning)
	}
	if name := strings.TrimSpace(string(comm)); p.Process != "" && name != p.Process {
		return fmt.Errorf("process %d from %s is %q, not %s: %w", pid, p.Path, name, p.Process, ErrNotRunning)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signalling bgpd (pid %d): %w", pid, err)
	}
	return nil
}
