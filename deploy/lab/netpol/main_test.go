package netpol

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/kubeapi"
)

// The model: upstream's namespaces and pods, pod <name> on hosts[<name>].
var (
	namespaces = []string{"x", "y", "z"}
	podNames   = []string{"a", "b", "c"}
	hosts      = map[string]string{"a": "host1", "b": "host2", "c": "host3"}
)

var (
	// suite is the lab every case shares; nil when skip or setupErr is set.
	suite *cluster
	// skip says why the package cannot run here (no root, no Kubernetes).
	skip string
	// setupErr is why the lab did not come up: every case fails with it.
	setupErr error
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

// run brings up the lab, runs the cases and always removes the lab: on
// return, on SIGINT or SIGTERM, and shortly before the test binary's
// -timeout would kill it (a panic there would skip deferred calls).
func run(m *testing.M) int {
	flag.Parse()
	if os.Geteuid() != 0 {
		skip = "the lab needs root"
		return m.Run()
	}
	kubeBin, err := kubeapi.BinDir()
	if err != nil {
		skip = fmt.Sprintf("no Kubernetes programs: %v", err)
		return m.Run()
	}
	root, _ := filepath.Abs("../../..")
	if out, err := exec.Command("make", "-C", root, "build").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "make build: %v\n%s", err, out)
		return 1
	}
	sweepStaleLabs()
	name := testutil.UniqueName("np")
	ctx, cancel := context.WithCancel(context.Background())
	r := &remover{dir: filepath.Join(labsDir(), name), cancelSetup: cancel, setupDone: make(chan struct{})}
	defer r.remove()
	defer r.guard(testTimeout())()
	start := time.Now()
	c, err := startCluster(ctx, name, r.dir, filepath.Join(root, "bin"), kubeBin)
	r.set(c)
	if err != nil {
		setupErr = err
		if c != nil {
			c.dumpLogs(os.Stdout)
		}
	} else {
		suite = c
		fmt.Printf("netpol: lab %s with 9 pods ready in %s\n", name, time.Since(start).Round(time.Second))
	}
	code := m.Run()
	if code != 0 && suite != nil {
		c.dumpLogs(os.Stdout)
	}
	return code
}

// remover removes this run's lab once: through the cluster once it is
// up, else from the lab's state directory.
type remover struct {
	dir string
	// cancelSetup cancels the context the lab is built with; setupDone is
	// closed when building has returned.
	cancelSetup func()
	setupDone   chan struct{}

	mu   sync.Mutex
	c    *cluster
	once sync.Once
}

// set records the cluster built (nil if none) and ends the setup.
func (r *remover) set(c *cluster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.c = c
	close(r.setupDone)
}

func (r *remover) cluster() *cluster {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}

func (r *remover) remove() {
	r.once.Do(func() {
		if c := r.cluster(); c != nil {
			c.close()
			return
		}
		_ = lab.Down(r.dir, io.Discard)
	})
}

// guard removes the lab and exits on SIGINT or SIGTERM, or when the
// test binary's timeout (when set) is a minute from running out; the
// returned func disarms it. While the lab is being built it first cancels
// the build and waits for it to return, as removing the lab under it
// would race with it; a second signal does not wait.
func (r *remover) guard(timeout time.Duration) func() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var alarm <-chan time.Time
	if timeout > 0 {
		alarm = time.After(timeout - min(time.Minute, timeout/4))
	}
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "netpol: %v: removing the lab\n", s)
		case <-alarm:
			fmt.Fprintf(os.Stderr, "netpol: the -timeout of %s is about to end the run: removing the lab\n", timeout)
			if c := r.cluster(); c != nil {
				c.dumpLogs(os.Stderr)
			}
		case <-done:
			return
		}
		r.cancelSetup()
		select {
		case <-r.setupDone:
		default:
			fmt.Fprintln(os.Stderr, "netpol: waiting for the lab's build to stop (signal again not to wait)")
			select {
			case <-r.setupDone:
			case <-sig:
			}
		}
		r.remove()
		os.Exit(1)
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}

// labsDir holds this package's labs, one directory each, so that a run
// can remove what a killed run left behind.
func labsDir() string { return filepath.Join(os.TempDir(), "calico-netpol") }

// sweepStaleLabs removes labs whose process is gone (killed, so that
// neither its deferred calls nor its guard ran).
func sweepStaleLabs() {
	entries, _ := os.ReadDir(labsDir())
	for _, e := range entries {
		dir := filepath.Join(labsDir(), e.Name())
		if s, err := lab.LoadState(dir); err == nil && !s.Running() {
			fmt.Printf("netpol: removing lab %s left by a run that did not finish\n", s.Name)
			if err := lab.Down(dir, io.Discard); err != nil {
				fmt.Printf("netpol: removing lab %s: %v\n", s.Name, err)
			}
		}
	}
}

// testTimeout is the test binary's -timeout (0: none).
func testTimeout() time.Duration {
	if f := flag.Lookup("test.timeout"); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if d, ok := g.Get().(time.Duration); ok {
				return d
			}
		}
	}
	return 0
}

// pod is one pod of the model.
type pod struct {
	ns, name, host, ip, netns string
}

func (p *pod) String() string { return p.ns + "/" + p.name }

// cluster is the lab, the Calico client on its etcd and the model's pods.
type cluster struct {
	lab    *lab.Lab
	calico *client.Client
	pods   []*pod // x/a, x/b, ..., z/c
	byName map[string]*pod
	runID  string
	// tmp holds the manifests given to kubectl, in the lab's directory.
	tmp string

	mu sync.Mutex
	// touched lists the namespaces and pods ("ns/name") whose labels a
	// case changed, for reset.
	touched map[string]bool
	// policyNS lists the namespaces a case made policies in.
	policyNS map[string]bool
	// dirty is set while a case has changed the model, and stays set when
	// restoring it failed: the next case restores it first.
	dirty bool
}

// startCluster brings up a lab with Kubernetes on 3 hosts and the model.
// It returns the lab even with an error, for its logs and its removal.
func startCluster(ctx context.Context, name, dir, binDir, kubeBin string) (*cluster, error) {
	if err := os.MkdirAll(labsDir(), 0o755); err != nil {
		return nil, err
	}
	l, err := lab.Up(ctx, lab.Options{Name: name, Dir: dir, BinDir: binDir, Hosts: 3, Out: prefixed("lab: "),
		Kubernetes: true, KubeBin: kubeBin})
	if err != nil {
		return nil, fmt.Errorf("lab up --kubernetes: %w", err)
	}
	c := &cluster{lab: l, runID: name, byName: map[string]*pod{}, touched: map[string]bool{},
		policyNS: map[string]bool{}}
	if c.calico, err = l.Client(); err != nil {
		return c, err
	}
	c.tmp = filepath.Join(l.State.Dir, "netpol-manifests")
	if err := os.MkdirAll(c.tmp, 0o755); err != nil {
		return c, err
	}
	var docs []string
	for _, ns := range namespaces {
		docs = append(docs, namespaceManifest(ns, c.namespaceLabels(ns)))
	}
	if err := l.Apply(ctx, strings.Join(docs, "---\n")); err != nil {
		return c, fmt.Errorf("creating namespaces: %w", err)
	}
	var kps []lab.KubePod
	for _, ns := range namespaces {
		for _, n := range podNames {
			kps = append(kps, lab.KubePod{Namespace: ns, Name: n, Host: hosts[n], Labels: map[string]string{"pod": n}})
		}
	}
	ips, err := l.CreatePods(ctx, kps, 180*time.Second)
	if err != nil {
		return c, err
	}
	for _, kp := range kps {
		p := &pod{ns: kp.Namespace, name: kp.Name, host: kp.Host, ip: ips[kp.Namespace+"/"+kp.Name]}
		if p.netns, err = l.PodNetNS(p.ip); err != nil {
			return c, fmt.Errorf("pod %s: %w", p, err)
		}
		c.pods = append(c.pods, p)
		c.byName[p.String()] = p
	}
	// As upstream's waitForHTTPServers: every server answers on every
	// port and protocol before the first case.
	for _, tg := range []target{tcp80, tcp81, udp80, udp81} {
		r := NewReachability(c.names(), true)
		if obs, wrong, _ := c.await(ctx, tg, r, 60*time.Second); wrong > 0 {
			return c, fmt.Errorf("servers not all answering on %s:\n%s", tg, r.summary(obs))
		}
	}
	return c, nil
}

// namespaceLabels are a model namespace's labels: the API server's
// kubernetes.io/metadata.name, and e2e-run and the pod-security levels
// (baseline for this suite) that upstream's e2e framework adds.
func (c *cluster) namespaceLabels(ns string) map[string]string {
	return map[string]string{
		"kubernetes.io/metadata.name":        ns,
		"e2e-run":                            c.runID,
		"pod-security.kubernetes.io/enforce": "baseline",
		"pod-security.kubernetes.io/warn":    "baseline",
		"pod-security.kubernetes.io/audit":   "baseline",
	}
}

// podLabels are a model pod's labels: upstream's pod=<name> and the
// lab's lab=pod.
func podLabels(name string) map[string]string { return map[string]string{"pod": name, "lab": "pod"} }

func namespaceManifest(ns string, labels map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %q\n  labels:\n", ns)
	for k, v := range labels {
		fmt.Fprintf(&b, "    %s: %q\n", k, v)
	}
	return b.String()
}

func (c *cluster) names() []string {
	var out []string
	for _, p := range c.pods {
		out = append(out, p.String())
	}
	return out
}

// close removes the lab.
func (c *cluster) close() {
	if c.calico != nil {
		c.calico.Close()
	}
	c.lab.Shutdown()
}

// dumpLogs prints the tail of every daemon's log.
func (c *cluster) dumpLogs(w io.Writer) {
	logs, _ := filepath.Glob(filepath.Join(c.lab.State.Dir, "*", "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		fmt.Fprintf(w, "--- %s\n%s\n", f, strings.Join(lines, "\n"))
	}
}

// prefixed writes each line to stdout behind prefix.
type prefixed string

func (p prefixed) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Println(string(p) + line)
	}
	return len(b), nil
}
