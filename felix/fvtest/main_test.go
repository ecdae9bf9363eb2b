package fvtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/testutil"
)

// Environment between the outer and the inner run of the test binary.
const (
	envInner  = "FVTEST_INNER"
	envFelix  = "FVTEST_FELIX"
	envHostNS = "FVTEST_HOSTNS"
	nodeName  = "fvhost"
)

// Set by TestMain in the inner run.
var (
	felixBin string
	hostNS   string
	workDir  string
	etcdSrv  *testutil.Etcd
	cli      *client.Client
)

// TestMain runs the tests inside a fresh "host" network namespace: the
// outer run builds calico-felix, creates the namespace and runs this test
// binary again under "ip netns exec". Inside, 127.0.0.1 is the host
// namespace's loopback, so the embedded etcd, the test's client and felix
// (a child process) all meet there, and nothing listens or routes outside
// the namespaces the test made.
func TestMain(m *testing.M) {
	if os.Getenv(envInner) == "" {
		os.Exit(outer())
	}
	os.Exit(inner(m))
}

func outer() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "fvtest: the functional tests program the kernel in network namespaces and must run as root")
		return 1
	}
	_ = testutil.SweepNetNS(testutil.NetNSPrefix + "fv")
	dir, err := os.MkdirTemp("", "felix-fvtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "calico-felix")
	build := exec.Command("go", "build", "-o", bin, "github.com/calico-etcd/calico/felix/cmd/calico-felix")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "fvtest: building calico-felix:", err)
		return 1
	}
	// The etcd cluster test's server binary, built (and cached) here: the
	// tests run inside the host namespace, which has no route out to
	// fetch modules.
	if _, err := testutil.EtcdBinary(); err != nil {
		fmt.Fprintln(os.Stderr, "fvtest:", err)
		return 1
	}
	host, err := testutil.NewNetNSNamed(testutil.UniqueName(testutil.NetNSPrefix + "fvh"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fvtest:", err)
		return 1
	}
	defer host.Delete()
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", host.Name, self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInner+"=1", envFelix+"="+bin, envHostNS+"="+host.Name, "TMPDIR="+dir)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "fvtest:", err)
		return 1
	}
	return 0
}

func inner(m *testing.M) int {
	felixBin, hostNS = os.Getenv(envFelix), os.Getenv(envHostNS)
	var err error
	if workDir, err = os.MkdirTemp("", "fv-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	if err := setupHost(); err != nil {
		fmt.Fprintln(os.Stderr, "fvtest: host setup:", err)
		return 1
	}
	if etcdSrv, err = testutil.StartEtcdServer(filepath.Join(workDir, "etcd")); err != nil {
		fmt.Fprintln(os.Stderr, "fvtest:", err)
		return 1
	}
	defer etcdSrv.Stop()
	if cli, err = client.NewFromSpec(&apiconfig.Spec{EtcdEndpoints: etcdSrv.Endpoint}, 5*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "fvtest:", err)
		return 1
	}
	defer cli.Close()
	code := m.Run()
	cleanupNetNS()
	return code
}

// run runs a command in the host namespace (where this process is).
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupHost gives the host namespace an uplink with a default route, so
// that proxy ARP answers workloads for 169.254.1.1, and an interface to an
// "outside" namespace for the host endpoint tests.
func setupHost() error {
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"},
		{"ip", "link", "set", "eth0peer", "up"},
		{"ip", "addr", "add", "192.168.90.1/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", "default", "via", "192.168.90.254", "dev", "eth0"},
	} {
		if err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// felix is a running calico-felix process.
type felix struct {
	cmd         *exec.Cmd
	log         string
	healthPort  int
	metricsPort int
	done        chan error
}

// startFelix starts felix on the package's etcd; env entries (KEY=value)
// are added last, so they win.
func startFelix(t *testing.T, env ...string) *felix {
	t.Helper()
	hp, err1 := testutil.FreePort()
	mp, err2 := testutil.FreePort()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	f := &felix{log: filepath.Join(workDir, fmt.Sprintf("felix-%d.log", time.Now().UnixNano())), healthPort: hp, metricsPort: mp, done: make(chan error, 1)}
	out, err := os.Create(f.log)
	if err != nil {
		t.Fatal(err)
	}
	f.cmd = exec.Command(felixBin, "--config-file", os.DevNull,
		"--nodename-file", filepath.Join(workDir, "nodename"), "--run-dir", filepath.Join(workDir, "run"),
		"--mtu-file", filepath.Join(workDir, "mtu"))
	f.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"ETCD_ENDPOINTS=" + etcdSrv.Endpoint,
		"NODENAME=" + nodeName,
		"FELIX_HEALTHENABLED=true",
		"FELIX_HEALTHHOST=127.0.0.1",
		"FELIX_HEALTHPORT=" + strconv.Itoa(hp),
		"FELIX_PROMETHEUSMETRICSENABLED=true",
		"FELIX_PROMETHEUSMETRICSHOST=127.0.0.1",
		"FELIX_PROMETHEUSMETRICSPORT=" + strconv.Itoa(mp),
		"FELIX_IPV6SUPPORT=false",
		"FELIX_REPORTINGINTERVALSECS=2",
		"FELIX_ENDPOINTREPORTINGENABLED=true",
		"FELIX_LOGSEVERITYSCREEN=info",
	}
	f.cmd.Env = append(f.cmd.Env, env...)
	f.cmd.Stdout, f.cmd.Stderr = out, out
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.done <- f.cmd.Wait(); out.Close() }()
	eventually(t, 30*time.Second, "felix ready", func() error {
		select {
		case err := <-f.done:
			f.done <- err
			return fmt.Errorf("felix exited: %v\n%s", err, f.tail(40))
		default:
		}
		if code := f.get("/readiness"); code != http.StatusOK {
			return fmt.Errorf("readiness %d", code)
		}
		return nil
	})
	return f
}

// get returns the status code of a health path (0 when unreachable).
func (f *felix) get(path string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", f.healthPort, path))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (f *felix) metrics() (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", f.metricsPort))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.String(), err
}

// stop sends SIGTERM and waits for a clean exit.
func (f *felix) stop(t *testing.T) {
	t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("felix exited with %v after SIGTERM\n%s", err, f.tail(20))
		}
	case <-time.After(15 * time.Second):
		_ = f.cmd.Process.Kill()
		t.Errorf("felix did not stop within 15s of SIGTERM\n%s", f.tail(20))
	}
}

func (f *felix) running() bool {
	select {
	case err := <-f.done:
		f.done <- err
		return false
	default:
		return true
	}
}

func (f *felix) tail(n int) string {
	b, _ := os.ReadFile(f.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}
