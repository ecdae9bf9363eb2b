// Package hugeheap backs the start of a short-lived plugin's Go heap with
// transparent huge pages. Import it for its side effect, from main.
//
// A plugin process touches a few MiB of fresh heap while its dependencies
// initialise and it serves one request, one 4 KiB page fault at a time:
// hundreds of faults, which cost ~10 µs each on virtual machines that
// shadow the guest's page tables. Go does not ask for huge pages itself.
// Where the host's THP policy is "madvise" (a program that wants huge
// pages asks for them) this package asks: MADV_HUGEPAGE on the heap's
// mapping, and MADV_COLLAPSE of what is already touched. Under "always"
// the heap has them already; under "never" it asks nothing. On kernels
// without MADV_COLLAPSE (before 6.1) only the advice takes effect.
//
// Go initialises packages in import-path order once their imports are
// done; this one's path sorts before the heavy dependencies' (protobuf,
// gRPC, etcd), so it runs before they allocate.
package hugeheap

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

const (
	madvHugepage = 14 // MADV_HUGEPAGE
	madvCollapse = 25 // MADV_COLLAPSE (Linux 6.1)
	hugePage     = 2 << 20
)

// sink is an object on the heap, to find the heap by.
var sink *[16]byte

// thpPolicy is where the kernel shows the host's THP policy, the
// selected one in brackets.
const thpPolicy = "/sys/kernel/mm/transparent_hugepage/enabled"

func init() {
	sink = new([16]byte)
	if p, err := os.ReadFile(thpPolicy); err != nil || !Madvise(p) {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	lo, hi := HeapRange(maps, uintptr(unsafe.Pointer(sink)))
	if lo == hi {
		return
	}
	madvise(lo, hi-lo, madvHugepage)
	// One call per huge page: the kernel gives up on a range at the
	// first huge page with nothing in it yet.
	for a := lo &^ (hugePage - 1); a < hi; a += hugePage {
		madvise(max(a, lo), min(a+hugePage, hi)-max(a, lo), madvCollapse)
	}
}

// Madvise reports whether policy, the text of the kernel's THP policy
// file, selects "madvise".
func Madvise(policy []byte) bool { return bytes.Contains(policy, []byte("[madvise]")) }

// HeapRange returns the private, writable, anonymous mapping listed in
// maps (the text of /proc/self/maps) that holds addr, joined with such
// mappings adjacent to it (the Go heap maps itself in 4 MiB steps); lo ==
// hi when none holds addr.
func HeapRange(maps []byte, addr uintptr) (lo, hi uintptr) {
	for line := range bytes.Lines(maps) {
		l, h, ok := anonRW(line)
		if ok && l == hi && hi != 0 {
			hi = h // extends the run
			continue
		}
		if lo <= addr && addr < hi {
			return lo, hi
		}
		lo, hi = 0, 0
		if ok {
			lo, hi = l, h
		}
	}
	if lo <= addr && addr < hi {
		return lo, hi
	}
	return 0, 0
}

// anonRW parses a maps line "lo-hi rw-p 00000000 00:00 0" (no path).
func anonRW(line []byte) (lo, hi uintptr, ok bool) {
	f := bytes.Fields(line)
	if len(f) != 5 || string(f[1]) != "rw-p" || string(f[3]) != "00:00" || string(f[4]) != "0" {
		return 0, 0, false
	}
	a, b, ok := bytes.Cut(f[0], []byte("-"))
	if !ok {
		return 0, 0, false
	}
	l, err1 := strconv.ParseUint(string(a), 16, 64)
	h, err2 := strconv.ParseUint(string(b), 16, 64)
	if err1 != nil || err2 != nil || l >= h {
		return 0, 0, false
	}
	return uintptr(l), uintptr(h), true
}

func madvise(addr, n uintptr, advice int) {
	syscall.Syscall(syscall.SYS_MADVISE, addr, n, uintptr(advice)) //nolint:errcheck // best effort
}
