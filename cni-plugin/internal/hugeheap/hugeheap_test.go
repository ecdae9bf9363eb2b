package hugeheap

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"unsafe"
)

func TestHeapRange(t *testing.T) {
	maps := []byte(`00400000-0095d000 r-xp 00000000 fe:00 9978401    /usr/bin/calico
00f8f000-00ffd000 rw-p 00b8f000 fe:00 9978401    /usr/bin/calico
00ffd000-03042000 rw-p 00000000 00:00 0
3cb3dc400000-3cb3df400000 ---p 00000000 00:00 0
3cb3df400000-3cb3df800000 rw-p 00000000 00:00 0
3cb3df800000-3cb3dfc00000 rw-p 00000000 00:00 0
3cb3dfc00000-3cb3e0000000 ---p 00000000 00:00 0
7f0bcfe00000-7f0bd0000000 rw-p 00000000 00:00 0
7ffd0ab0c000-7ffd0ab2d000 rw-p 00000000 00:00 0                          [stack]
`)
	for _, c := range []struct {
		addr, lo, hi uintptr
	}{
		{0x3cb3df400000, 0x3cb3df400000, 0x3cb3dfc00000}, // first byte of a run of two
		{0x3cb3dfbfffff, 0x3cb3df400000, 0x3cb3dfc00000}, // last byte
		{0x3cb3dfc00000, 0, 0},                           // reserved, not mapped
		{0x7f0bcfe00010, 0x7f0bcfe00000, 0x7f0bd0000000}, // last anonymous mapping
		{0x7ffd0ab0c010, 0, 0},                           // the stack has a name
		{0x00f90000, 0, 0},                               // the binary's data
		{0x01000000, 0x00ffd000, 0x03042000},             // bss
	} {
		lo, hi := HeapRange(maps, c.addr)
		if lo != c.lo || hi != c.hi {
			t.Errorf("HeapRange(%#x) = %#x-%#x, want %#x-%#x", c.addr, lo, hi, c.lo, c.hi)
		}
	}
}

func TestMadvise(t *testing.T) {
	for policy, want := range map[string]bool{
		"always [madvise] never\n": true,
		"[always] madvise never\n": false,
		"always madvise [never]\n": false,
		"":                         false,
	} {
		if got := Madvise([]byte(policy)); got != want {
			t.Errorf("Madvise(%q) = %v, want %v", policy, got, want)
		}
	}
}

// TestInitAdvisesHeap checks, on this kernel, what init did to this test
// binary's heap: advised huge pages exactly when the policy is madvise.
func TestInitAdvisesHeap(t *testing.T) {
	policy, err := os.ReadFile(thpPolicy)
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	lo, _ := HeapRange(smapsHeaders(smaps), uintptr(unsafe.Pointer(sink)))
	if lo == 0 {
		t.Fatal("no heap mapping holds sink")
	}
	flags := vmFlags(smaps, lo)
	if advised := strings.Contains(flags, " hg"); advised != Madvise(policy) {
		t.Errorf("policy %q: heap at %#x has VmFlags %q", bytes.TrimSpace(policy), lo, flags)
	}
}

// smapsHeaders keeps the mapping lines of /proc/self/smaps text.
func smapsHeaders(smaps []byte) []byte {
	var out []byte
	for line := range bytes.Lines(smaps) {
		if f := bytes.Fields(line); len(f) > 0 && bytes.Contains(f[0], []byte("-")) {
			out = append(out, line...)
		}
	}
	return out
}

// vmFlags returns the VmFlags line of the mapping starting at lo.
func vmFlags(smaps []byte, lo uintptr) string {
	in := false
	for line := range bytes.Lines(smaps) {
		f := bytes.Fields(line)
		if len(f) > 0 && bytes.Contains(f[0], []byte("-")) {
			l, _, ok := anonRW(line)
			in = ok && l == lo
		}
		if in && bytes.HasPrefix(line, []byte("VmFlags:")) {
			return string(bytes.TrimSpace(line))
		}
	}
	return ""
}
