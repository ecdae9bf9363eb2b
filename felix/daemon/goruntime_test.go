package daemon

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/config"
)

// TestApplyGoRuntime: the Go* parameters reach the runtime, and one whose
// environment variable is set is left alone.
func TestApplyGoRuntime(t *testing.T) {
	gc, limit, procs := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64), runtime.GOMAXPROCS(0)
	debug.SetGCPercent(gc)
	t.Cleanup(func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
		runtime.GOMAXPROCS(procs)
	})
	log := logrus.NewEntry(logrus.New())

	applyGoRuntime(log, &config.Config{GoGCThreshold: 40, GoMemoryLimitMB: 300, GoMaxProcs: 1})
	if got := debug.SetGCPercent(40); got != 40 {
		t.Errorf("GC percent %d, want 40", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("memory limit %d, want %d", got, 300<<20)
	}
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("GOMAXPROCS %d, want 1", got)
	}

	// -1: no limit, the system's CPUs; GOGC set in the environment wins.
	applyGoRuntime(log, &config.Config{GoGCThreshold: 70, GoMemoryLimitMB: -1, GoMaxProcs: -1, GoRuntimeEnv: []string{"GOGC"}})
	if got := debug.SetGCPercent(40); got != 40 {
		t.Errorf("GC percent %d with GOGC set, want it left at 40", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d, want none", got)
	}
	runtime.GOMAXPROCS(1)
	runtime.SetDefaultGOMAXPROCS()
	want := runtime.GOMAXPROCS(0)
	applyGoRuntime(log, &config.Config{GoGCThreshold: 40, GoMemoryLimitMB: -1, GoMaxProcs: 1})
	applyGoRuntime(log, &config.Config{GoGCThreshold: 40, GoMemoryLimitMB: -1, GoMaxProcs: -1})
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Errorf("GOMAXPROCS %d after -1, want the default %d", got, want)
	}
}
