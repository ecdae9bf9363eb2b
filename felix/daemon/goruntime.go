package daemon

import (
	"math"
	"runtime"
	"runtime/debug"
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/config"
)

// applyGoRuntime sets the process's GC threshold, memory limit and
// GOMAXPROCS from GoGCThreshold, GoMemoryLimitMB and GoMaxProcs, leaving
// each one the environment sets (cfg.GoRuntimeEnv) as it is. It logs what
// it changed.
func applyGoRuntime(log *logrus.Entry, cfg *config.Config) {
	env := func(name string) bool { return slices.Contains(cfg.GoRuntimeEnv, name) }
	changed := logrus.Fields{}
	if !env("GOGC") {
		if old := debug.SetGCPercent(cfg.GoGCThreshold); old != cfg.GoGCThreshold {
			changed["GoGCThreshold"] = cfg.GoGCThreshold
		}
	}
	if !env("GOMEMLIMIT") {
		limit := int64(math.MaxInt64)
		if cfg.GoMemoryLimitMB >= 0 {
			limit = int64(cfg.GoMemoryLimitMB) << 20
		}
		if old := debug.SetMemoryLimit(limit); old != limit {
			changed["GoMemoryLimitMB"] = cfg.GoMemoryLimitMB
		}
	}
	if !env("GOMAXPROCS") {
		old := runtime.GOMAXPROCS(0)
		if cfg.GoMaxProcs > 0 {
			runtime.GOMAXPROCS(cfg.GoMaxProcs)
		} else {
			runtime.SetDefaultGOMAXPROCS()
		}
		if now := runtime.GOMAXPROCS(0); now != old {
			changed["GoMaxProcs"] = now
		}
	}
	if len(changed) > 0 {
		log.WithFields(changed).Info("Go runtime set from the configuration")
	}
}
