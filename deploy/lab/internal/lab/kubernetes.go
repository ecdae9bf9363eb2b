package lab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/calico-etcd/calico/deploy/lab/internal/images"
	"github.com/calico-etcd/calico/deploy/lab/internal/kube"
	"github.com/calico-etcd/calico/testutil"
)

// KubeState is what the Kubernetes side of a lab made.
type KubeState struct {
	// Kubeconfig is the admin kubeconfig for kubectl on this machine.
	Kubeconfig string `json:"kubeconfig"`
	// PIDs are the control plane's processes.
	PIDs map[string]int `json:"pids"`
	// KubeBin holds the Kubernetes programs (kubectl, ...).
	KubeBin string `json:"kubeBin"`
}

// KubePool is the pod pool of a lab with Kubernetes, made by the hosts at
// start from CALICO_IPV4POOL_CIDR, as Calico's manifest has it made.
const KubePool = "10.244.0.0/16"

// kubeDir holds the control plane's files.
func (s *State) kubeDir() string { return filepath.Join(s.Dir, "kube") }

// startKubernetes starts the control plane, before the hosts.
func (l *Lab) startKubernetes(kubeBin string) error {
	s := l.State
	s.Kube = &KubeState{KubeBin: kubeBin}
	if err := s.Save(); err != nil {
		return err
	}
	if err := l.prepareCNIBin(); err != nil {
		return err
	}
	if err := images.Write(filepath.Join(l.BinDir, "labnet"), filepath.Join(s.Dir, "images.tar")); err != nil {
		return fmt.Errorf("building the lab's images: %w", err)
	}
	c, err := kube.StartControl(s.kubeDir(), kubeBin, l.BinDir, s.EtcdEndpoint)
	if c != nil {
		s.Kube.Kubeconfig, s.Kube.PIDs = c.Kubeconfig, c.PIDs
	}
	if serr := s.Save(); err == nil {
		err = serr
	}
	l.kube = c
	return err
}

// prepareCNIBin gathers the plugins containerd runs: calico (with
// calico-direct, which it runs when no agent answers), calico-ipam and
// loopback.
func (l *Lab) prepareCNIBin() error {
	dir := filepath.Join(l.State.Dir, "cni-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range []string{"calico", "calico-direct", "calico-ipam", "loopback"} {
		data, err := os.ReadFile(filepath.Join(l.BinDir, p))
		if err != nil {
			return fmt.Errorf("CNI plugin %s (run make build): %w", p, err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), data, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// startNode starts a host's containerd and kubelet, once its Calico
// daemons run.
func (l *Lab) startNode(ctx context.Context, h *HostState, kubeBin string) error {
	ns, err := testutil.OpenNetNS(h.NetNS)
	if err != nil {
		return err
	}
	fw, err := newForward(ns, kube.HostAPIAddr, fmt.Sprintf("127.0.0.1:%d", l.kube.APIPort))
	ns.NetNS.Close()
	if err != nil {
		return fmt.Errorf("API server forwarder in %s: %w", h.NetNS, err)
	}
	l.forwards = append(l.forwards, fw)
	pids, err := kube.StartNode(ctx, l.kube, kube.Node{
		Name: h.Name, NetNS: h.NetNS, IP: strings.Split(h.Addr, "/")[0], Dir: hostDir(l.State.Dir, h.Name),
		KubeBin: kubeBin, CNIBin: filepath.Join(l.State.Dir, "cni-bin"), Images: filepath.Join(l.State.Dir, "images.tar"),
		EtcdEndpoint: l.State.hostEtcd(),
	})
	l.mu.Lock() // the daemons' supervisors write PIDs too
	for k, v := range pids {
		h.PIDs[k] = v
	}
	serr := l.State.Save()
	l.mu.Unlock()
	if err == nil {
		err = serr
	}
	return err
}

// waitKubeNodes waits until every host is a Ready Kubernetes node.
func (l *Lab) waitKubeNodes(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, err := l.Kubectl(ctx, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		ready := 0
		for _, f := range strings.Fields(out) {
			if strings.HasSuffix(f, "=True") {
				ready++
			}
		}
		if err == nil && ready == len(l.State.Hosts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every Kubernetes node ready within %s: %s %v", limit, out, err)
		}
		time.Sleep(time.Second)
	}
}

// Kubectl runs kubectl against the lab and returns its output.
func (l *Lab) Kubectl(ctx context.Context, args ...string) (string, error) {
	if l.State.Kube == nil {
		return "", fmt.Errorf("the lab runs without Kubernetes (calico-lab up --kubernetes)")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(l.State.Kube.KubeBin, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+l.State.Kube.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// stopKubernetes removes what the Kubernetes side made: pods first, by
// the API while it runs (their CNI DEL releases their addresses), then
// kubelets, the pods' processes and containerds, the control plane, and
// the mounts, network namespaces and cgroups left behind.
func stopKubernetes(s *State) {
	if s.Kube == nil {
		return
	}
	if s.Kube.Kubeconfig != "" && alive(s.Kube.PIDs["kube-apiserver"]) {
		cmd := exec.Command(filepath.Join(s.Kube.KubeBin, "kubectl"), "delete", "pods", "--all", "--all-namespaces",
			"--grace-period=1", "--timeout=60s", "--wait=true")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kube.Kubeconfig)
		_ = cmd.Run()
	}
	for i := range s.Hosts {
		kube.Kill(map[string]int{"kubelet": s.Hosts[i].PIDs["kubelet"]}, 10*time.Second)
	}
	for i := range s.Hosts {
		h := &s.Hosts[i]
		killTasks(hostDir(s.Dir, h.Name))
		killMatching(hostDir(s.Dir, h.Name) + "/containerd/containerd.sock") // shims
		kube.Kill(map[string]int{"containerd": h.PIDs["containerd"]}, 10*time.Second)
		delete(h.PIDs, "kubelet")
		delete(h.PIDs, "containerd")
	}
	kube.Kill(s.Kube.PIDs, 10*time.Second)
	unmountUnder(s.Dir)
}

// killTasks kills the containers a host's containerd started, by the pid
// files their shims wrote (containerd may be gone).
func killTasks(hostDir string) {
	files, _ := filepath.Glob(kube.TaskPIDGlob(hostDir))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// killMatching kills processes whose command line contains s.
func killMatching(s string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || !strings.Contains(strings.ReplaceAll(string(data), "\x00", " "), s) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}
