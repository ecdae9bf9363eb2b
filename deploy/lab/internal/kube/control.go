// Package kube adds Kubernetes to the lab: a control plane in the lab
// process's namespace (kube-apiserver on the lab's etcd,
// kube-controller-manager, kube-scheduler, and calico-kube-controllers),
// and on each host a containerd and a kubelet that call the calico CNI
// plugin in Kubernetes mode. The Kubernetes programs are the upstream
// ones, built and cached by deploy/kube/build.sh.
//
//	lab process ns: etcd ◄── kube-apiserver :port ◄── kcm, scheduler, calico-kube-controllers, kubectl
//	host ns:        127.0.0.1:6443 ─forward─► kube-apiserver
//	                kubelet ─CRI─► containerd ─► calico CNI (reads the pod at 127.0.0.1:6443)
package kube

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/calico-etcd/calico/testutil/kubeapi"
)

// HostAPIAddr is where each host reaches the API server (a forward into
// the lab process's namespace).
const HostAPIAddr = "127.0.0.1:6443"

// Control is the lab's control plane.
type Control struct {
	// Dir holds its files and logs.
	Dir string
	// Kubeconfig is the admin kubeconfig for the lab process's namespace.
	Kubeconfig string
	// APIPort is kube-apiserver's port on 127.0.0.1.
	APIPort int
	// PIDs of the control plane's processes, by name.
	PIDs map[string]int

	api *kubeapi.APIServer
}

// StartControl starts kube-apiserver over etcdEndpoint, then
// kube-controller-manager, kube-scheduler and calico-kube-controllers
// (from calicoBin), in dir. kubeBin holds the Kubernetes programs.
func StartControl(dir, kubeBin, calicoBin, etcdEndpoint string) (*Control, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	api, err := kubeapi.New(dir, filepath.Join(kubeBin, "kube-apiserver"), etcdEndpoint)
	if err != nil {
		return nil, err
	}
	c := &Control{Dir: dir, Kubeconfig: api.Kubeconfig, APIPort: api.Port(), PIDs: map[string]int{}, api: api}
	if err := api.Start(); err != nil {
		return nil, err
	}
	c.PIDs["kube-apiserver"] = api.PID()
	procs := []struct {
		name, bin string
		args      []string
		env       []string
	}{
		{"kube-controller-manager", filepath.Join(kubeBin, "kube-controller-manager"), []string{
			"--kubeconfig=" + c.Kubeconfig, "--service-account-private-key-file=" + api.KeyFile(),
			"--root-ca-file=" + api.CertFile(), "--leader-elect=false", "--secure-port=0",
			"--use-service-account-credentials=false",
		}, nil},
		{"kube-scheduler", filepath.Join(kubeBin, "kube-scheduler"), []string{
			"--kubeconfig=" + c.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		}, nil},
		{"calico-kube-controllers", filepath.Join(calicoBin, "calico-kube-controllers"), nil, []string{
			"KUBECONFIG=" + c.Kubeconfig, "ETCD_ENDPOINTS=" + etcdEndpoint, "LEADER_ELECTION=false",
			"HEALTH_PORT=0", "PROMETHEUS_METRICS_PORT=0",
		}},
	}
	for _, p := range procs {
		pid, err := Spawn(filepath.Join(dir, p.name+".log"), "", p.env, p.bin, p.args...)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.PIDs[p.name] = pid
	}
	return c, nil
}

// HostKubeconfig writes a kubeconfig for the hosts (the API server at
// HostAPIAddr) to path.
func (c *Control) HostKubeconfig(path string) error {
	return os.WriteFile(path, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://%s", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %s}
contexts:
- name: lab
  context: {cluster: lab, user: admin}
current-context: lab
`, HostAPIAddr, kubeapi.Token)), 0o600)
}

// Stop stops the control plane.
func (c *Control) Stop() {
	Kill(c.PIDs, 10*time.Second)
	if c.api != nil {
		c.api.Stop()
	}
}

// Spawn starts bin with args and extra environment in its own process
// group, output to log; with netns set, inside that named network
// namespace (through nsenter, which, unlike `ip netns exec`, keeps the
// process's /sys and cgroup mounts).
func Spawn(log, netns string, env []string, bin string, args ...string) (int, error) {
	if _, err := os.Stat(bin); err != nil {
		return 0, fmt.Errorf("%s: %w", bin, err)
	}
	f, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	if netns != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + netns, bin}, args...)...)
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", filepath.Base(bin), err)
	}
	go func() { _ = cmd.Wait() }()
	return cmd.Process.Pid, nil
}

// Kill sends SIGTERM to each process group, then SIGKILL to what is left
// after grace.
func Kill(pids map[string]int, grace time.Duration) {
	signal := func(pid int, sig syscall.Signal) {
		_ = syscall.Kill(-pid, sig) // its group, when it leads one
		_ = syscall.Kill(pid, sig)
	}
	for _, pid := range pids {
		if pid > 0 {
			signal(pid, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(grace)
	for _, pid := range pids {
		for pid > 0 && alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if pid > 0 && alive(pid) {
			signal(pid, syscall.SIGKILL)
		}
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
