package ipamplugin

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockFile takes an exclusive flock on path, creating the file if needed,
// and returns the open file; closing it releases the lock. The file's
// directory must exist, unless it is runDir, which is created (its parent
// must exist): a mistyped path never makes directories elsewhere. If
// another process holds the lock, beforeWait runs before queueing. The
// kernel drops the lock if the process dies, so a crash never wedges it.
func lockFile(path, runDir string, beforeWait func()) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if errors.Is(err, fs.ErrNotExist) && runDir != "" && filepath.Dir(path) == filepath.Clean(runDir) {
		if err := os.Mkdir(runDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("creating run directory %s: %w", runDir, err)
		}
		f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening lock file %s: its directory does not exist: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	how := syscall.LOCK_EX | syscall.LOCK_NB
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err == syscall.EWOULDBLOCK && how&syscall.LOCK_NB != 0 {
			beforeWait()
			how = syscall.LOCK_EX
			continue
		}
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// The lock file also carries what a long-lived IPAM client would have kept
// in memory, so that each short-lived plugin process starts where the
// previous one stopped: the block the node last assigned from, as
// "<node> <cidr>\n", then the IPAM client's saved warm state
// (ipam.Client.SaveWarm) on one line. Both are only guesses, which the
// IPAM transactions check against etcd; anything unreadable is ignored.

// lockState is what the lock file holds for a node.
type lockState struct {
	hint netip.Prefix
	warm []byte
}

func readState(f *os.File, node string) lockState {
	st, err := f.Stat()
	if err != nil || st.Size() > maxLockState {
		return lockState{}
	}
	buf := make([]byte, st.Size())
	n, _ := f.ReadAt(buf, 0)
	first, rest, _ := strings.Cut(string(buf[:n]), "\n")
	name, cidr, ok := strings.Cut(strings.TrimSpace(first), " ")
	if !ok || name != node {
		return lockState{}
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return lockState{}
	}
	return lockState{hint: p, warm: []byte(strings.TrimSpace(rest))}
}

// maxLockState bounds what is read back: a saved state holds a node's
// pools, reservations, affinities and one block per IP version.
const maxLockState = 4 << 20

func writeState(f *os.File, node string, s lockState) error {
	out := []byte(node + " " + s.hint.String() + "\n")
	if len(s.warm) > 0 && len(s.warm) < maxLockState/2 {
		out = append(append(out, s.warm...), '\n')
	}
	if _, err := f.WriteAt(out, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(out)))
}
