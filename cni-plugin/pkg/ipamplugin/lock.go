package ipamplugin

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockFile takes an exclusive flock on path, creating it (and its
// directory) if needed, and returns the open file; closing it releases the
// lock. The kernel drops the lock if the process dies, so a crash never
// wedges it.
func lockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating lock directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
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

// The lock file also carries the block the node last assigned from, as
// "<node> <cidr>\n", so that each short-lived plugin process starts with
// the hint a long-lived IPAM client would have kept in memory (one etcd
// round trip less). It is only a guess; anything unreadable is no hint.

func readHint(f *os.File, node string) netip.Prefix {
	buf := make([]byte, 512)
	n, _ := f.ReadAt(buf, 0)
	name, cidr, ok := strings.Cut(strings.TrimSpace(string(buf[:n])), " ")
	if !ok || name != node {
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

func writeHint(f *os.File, node string, p netip.Prefix) error {
	line := []byte(node + " " + p.String() + "\n")
	if _, err := f.WriteAt(line, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(line)))
}
