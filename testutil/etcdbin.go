package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

// EnvEtcdBinary names an etcd server binary to use instead of building one
// (Debian's /usr/bin/etcd, say).
const EnvEtcdBinary = "CALICO_TEST_ETCD_BINARY"

const etcdServerModule = "go.etcd.io/etcd/server/v3"

// EtcdBinary returns the path of a real etcd server: $CALICO_TEST_ETCD_BINARY
// if set, else the etcd main package of the go.etcd.io/etcd/server/v3 module
// this module requires, built without -race on first use into the user's
// cache directory and kept there, keyed by the module's version, for later
// runs and for test processes building it at the same time.
func EtcdBinary() (string, error) {
	if p := os.Getenv(EnvEtcdBinary); p != "" {
		return p, nil
	}
	version := etcdVersion()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "calico-etcd-testutil")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "etcd-"+version)
	if version != "devel" {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	// One builder at a time; the others find the binary when they get the
	// lock.
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if version != "devel" {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.Command(goTool(), "build", "-o", tmp, etcdServerModule)
	cmd.Dir = moduleDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("building etcd from %s: %w\n%s", etcdServerModule, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// etcdVersion is the etcd server module's version that testutil's go.mod
// requires (test binaries carry no dependency versions), or "devel".
func etcdVersion() string {
	if b, err := os.ReadFile(filepath.Join(moduleDir(), "go.mod")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == etcdServerModule {
				return f[1]
			}
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == etcdServerModule {
				return d.Version
			}
		}
	}
	return "devel"
}

// moduleDir is the testutil module's source directory (this file's
// directory), where the etcd server module is required.
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Dir(file)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	//lint:ignore SA1019 a fallback only: the toolchain that built this test, when go is not on PATH
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
