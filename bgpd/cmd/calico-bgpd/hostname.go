package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

var uts struct {
	sync.Mutex
	own bool // every thread is in a UTS namespace of its own
}

// setHostname makes os.Hostname return name inside this process, and
// nowhere else. gobgp puts os.Hostname() into the hostname capability of
// every OPEN it sends, and peers should see the Calico node name there,
// not the machine's name (they differ when NODENAME overrides it, or when
// several nodes share a machine).
//
// Every thread of the process moves into a new UTS namespace, where the
// name is then set; threads started later inherit it. That takes
// CAP_SYS_ADMIN, and a runtime without cgo (syscall.AllThreadsSyscall);
// without either the error says so and the machine's name stays.
func setHostname(name string) error {
	if cur, err := os.Hostname(); err == nil && cur == name {
		return nil
	}
	uts.Lock()
	defer uts.Unlock()
	if !uts.own {
		if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_UNSHARE, syscall.CLONE_NEWUTS, 0, 0); e != 0 {
			return fmt.Errorf("entering a UTS namespace of bgpd's own: %w", e)
		}
		uts.own = true
	}
	b := []byte(name)
	if len(b) == 0 {
		return fmt.Errorf("setting the host name: empty name")
	}
	_, _, e := syscall.AllThreadsSyscall(syscall.SYS_SETHOSTNAME, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0)
	runtime.KeepAlive(b)
	if e != 0 {
		return fmt.Errorf("setting the host name to %q: %w", name, e)
	}
	return nil
}
