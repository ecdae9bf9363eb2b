// Package soak is the fault-injection suite: pods added and deleted on
// four lab hosts without pause while etcd is killed and restored and felix
// and bgpd are restarted, and pings stream between long-lived pods on
// different hosts. At the end it counts what must be zero: addresses
// leaked, duplicate addresses, pings lost, and stale rules.
//
// `make test` runs it for SOAK_DURATION=30s; `make soak` for 10 minutes.
package soak

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/testutil"
	"github.com/sirupsen/logrus"
)

const hosts = 4

var binDir string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "soak: the lab needs root")
		os.Exit(1)
	}
	root, _ := filepath.Abs("../../..")
	if out, err := exec.Command("make", "-C", root, "build").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "make build: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = filepath.Join(root, "bin")
	os.Exit(m.Run())
}

func duration(t *testing.T) time.Duration {
	v := os.Getenv("SOAK_DURATION")
	if v == "" {
		return 30 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("SOAK_DURATION=%q: want a duration such as 10m", v)
	}
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// counts are what the soak must keep at zero, and how much it did.
type counts struct {
	cycles, addFailures, duplicates atomic.Int64
	leaked, staleRules              int
	pingsSent, pingsLost            int
}

func TestSoak(t *testing.T) {
	d := duration(t)
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Options{Name: testutil.UniqueName("soak"), Dir: filepath.Join(t.TempDir(), "lab"),
		BinDir: binDir, Hosts: hosts, Out: testWriter{t}})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(l.Shutdown)
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	pool := v3.NewIPPool()
	pool.Name, pool.Spec.CIDR, pool.Spec.BlockSize = "soak", "10.67.0.0/16", 28
	if _, err := c.IPPools().Create(ctx, pool); err != nil {
		t.Fatal(err)
	}

	// Long-lived pods, one per host, each pinging the next host's.
	var anchors []*lab.PodState
	for i := 1; i <= hosts; i++ {
		p, err := l.AddPod(ctx, host(i), "soak", fmt.Sprintf("anchor-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		anchors = append(anchors, p)
	}
	for i, p := range anchors {
		waitReachable(t, p, anchors[(i+1)%hosts].IP)
	}
	var pingers []*pinger
	for i, p := range anchors {
		pingers = append(pingers, startPing(t, p, anchors[(i+1)%hosts].IP))
	}

	var cnt counts
	var live sync.Map // IP -> container ID of the pod that holds it now
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 1; i <= hosts; i++ {
		wg.Go(func() { churn(ctx, t, l, host(i), end, &cnt, &live) })
	}
	wg.Go(func() { faults(t, l, end) })
	wg.Wait()

	for _, p := range pingers {
		sent, lost := p.stop(t)
		cnt.pingsSent += sent
		cnt.pingsLost += lost
	}
	cnt.leaked = leaks(ctx, t, l, c)
	cnt.staleRules = staleRules(t, l)
	t.Logf("soak: %s, %d ADD/DEL cycles (%d ADDs failed and were cleaned up), pings sent %d",
		d, cnt.cycles.Load(), cnt.addFailures.Load(), cnt.pingsSent)
	dups := cnt.duplicates.Load()
	fmt.Printf("soak: addresses leaked %d, duplicate addresses %d, pings lost %d, stale rules %d\n",
		cnt.leaked, dups, cnt.pingsLost, cnt.staleRules)
	if cnt.leaked+int(dups)+cnt.pingsLost+cnt.staleRules != 0 {
		t.Errorf("leaked %d, duplicates %d, pings lost %d, stale rules %d: all must be 0",
			cnt.leaked, dups, cnt.pingsLost, cnt.staleRules)
	}
	if cnt.cycles.Load() == 0 {
		t.Error("no ADD/DEL cycle completed")
	}
}

func host(i int) string { return fmt.Sprintf("host%d", i) }

// churn adds and deletes pods on h until end. An ADD may fail while etcd
// is down; a DEL is retried until it succeeds, as kubelet retries it.
func churn(ctx context.Context, t *testing.T, l *lab.Lab, h string, end time.Time, cnt *counts, live *sync.Map) {
	for n := 0; time.Now().Before(end); n++ {
		name := fmt.Sprintf("churn-%s-%d", h, n)
		p, err := l.AddPod(ctx, h, "soak", name)
		if err != nil {
			cnt.addFailures.Add(1)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if other, taken := live.LoadOrStore(p.IP, p.ContainerID); taken {
			cnt.duplicates.Add(1)
			t.Errorf("duplicate address %s: %s and %s", p.IP, other, p.ContainerID)
		}
		for attempt := 0; ; attempt++ {
			if err := l.DelPod(ctx, h, "soak", name); err == nil {
				break
			} else if attempt == 120 {
				t.Errorf("DEL of %s never succeeded: %v", name, err)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		live.Delete(p.IP)
		cnt.cycles.Add(1)
	}
}

// faults breaks something every few seconds until end: etcd killed and
// restored, felix restarted, bgpd restarted, in turn and on every host.
func faults(t *testing.T, l *lab.Lab, end time.Time) {
	for n := 0; ; n++ {
		time.Sleep(4 * time.Second)
		if time.Now().After(end) {
			return
		}
		h := host(n%hosts + 1)
		var err error
		switch n % 3 {
		case 0:
			t.Log("fault: etcd down for 3s")
			err = l.RestartEtcd(3 * time.Second)
		case 1:
			t.Logf("fault: restart calico-felix on %s", h)
			err = l.RestartDaemon(h, "calico-felix")
		case 2:
			t.Logf("fault: restart calico-bgpd on %s", h)
			err = l.RestartDaemon(h, "calico-bgpd")
		}
		if err != nil {
			t.Errorf("fault %d: %v", n, err)
		}
	}
}

func waitReachable(t *testing.T, from *lab.PodState, to string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("ip", "netns", "exec", from.NetNS, "ping", "-c1", "-W1", to).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot reach %s", from.Name, to)
		}
	}
}

// pinger is a ping stream from one pod to an address.
type pinger struct {
	cmd *exec.Cmd
	out *strings.Builder
	mu  sync.Mutex
	wg  sync.WaitGroup
}

func startPing(t *testing.T, from *lab.PodState, to string) *pinger {
	t.Helper()
	p := &pinger{out: &strings.Builder{}}
	p.cmd = exec.Command("ip", "netns", "exec", from.NetNS, "ping", "-i", "0.05", "-W", "1", to)
	r, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.wg.Go(func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			p.mu.Lock()
			p.out.WriteString(s.Text() + "\n")
			p.mu.Unlock()
		}
	})
	return p
}

var summary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// stop ends the stream and returns what ping counted.
func (p *pinger) stop(t *testing.T) (sent, lost int) {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	p.wg.Wait()
	_ = p.cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	m := summary.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Errorf("no ping summary in:\n%s", p.out.String())
		return 0, 0
	}
	sent, _ = strconv.Atoi(m[1])
	got, _ := strconv.Atoi(m[2])
	return sent, sent - got
}

// leaks is what ipam check finds once only the anchors remain.
func leaks(ctx context.Context, t *testing.T, l *lab.Lab, c *client.Client) int {
	lg := logrus.New()
	lg.SetOutput(testWriter{t})
	ic, err := ipam.New(c.Backend(), logrus.NewEntry(lg), ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := ic.Allocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ipamcheck.Check(ctx, ic, ipamcheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(rep.Leaked) + len(rep.BadHandles) + len(rep.MissingHandles)
	if extra := len(allocs) - hosts; extra > n {
		n = extra // held by something ipam check does not know of
	}
	if n > 0 {
		t.Logf("ipam: %d allocations for %d anchors; report %+v", len(allocs), hosts, rep)
	}
	return n
}

// staleRules counts, on every host, felix chains and routes for workload
// interfaces that no longer exist, once felix has had time to converge.
func staleRules(t *testing.T, l *lab.Lab) int {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, detail := 0, ""
		for _, h := range l.State.Hosts {
			links, _ := exec.Command("ip", "netns", "exec", h.NetNS, "ip", "-o", "link").Output()
			rules, _ := exec.Command("ip", "netns", "exec", h.NetNS, "iptables-save", "-t", "filter").Output()
			for _, line := range strings.Split(string(rules), "\n") {
				if !strings.HasPrefix(line, ":cali-tw-") && !strings.HasPrefix(line, ":cali-fw-") {
					continue
				}
				iface := strings.Fields(line)[0][len(":cali-tw-"):]
				if !strings.Contains(string(links), iface+"@") {
					n++
					detail += fmt.Sprintf("%s: %s\n", h.Name, line)
				}
			}
		}
		if n == 0 || time.Now().After(deadline) {
			if n > 0 {
				t.Logf("stale rules:\n%s", detail)
			}
			return n
		}
		time.Sleep(time.Second)
	}
}
