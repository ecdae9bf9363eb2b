package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// daemon says how to start one component on a host.
type daemon struct {
	name string
	args func(h *HostState, dir string) []string
}

// daemons start in this order: confd registers the Node (with eth0's
// address) that felix and bgpd read.
var daemons = []daemon{
	{"calico-confd", func(h *HostState, dir string) []string {
		return []string{"--nodename", h.Name, "--nodename-file", filepath.Join(dir, "nodename"),
			"--run-dir", filepath.Join(dir, "run"), "--ip", h.Addr}
	}},
	{"calico-bgpd", func(h *HostState, dir string) []string {
		return []string{"--run-dir", filepath.Join(dir, "run")}
	}},
	{"calico-felix", func(h *HostState, dir string) []string {
		return []string{"--nodename-file", filepath.Join(dir, "nodename"), "--run-dir", filepath.Join(dir, "run"),
			"--config-file", filepath.Join(dir, "felix.cfg")}
	}},
}

func hostDir(stateDir, host string) string { return filepath.Join(stateDir, host) }

// felixCfg is the per-host felix.cfg: health and metrics ports stay the
// defaults, since each host has its own loopback.
const felixCfg = `[global]
LogSeverityScreen = Info
`

// startDaemons starts every daemon of h inside its namespace and records
// the pids in h.PIDs.
func startDaemons(binDir, stateDir string, h *HostState) error {
	dir := hostDir(stateDir, h.Name)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "felix.cfg"), []byte(felixCfg), 0o644); err != nil {
		return err
	}
	if h.PIDs == nil {
		h.PIDs = map[string]int{}
	}
	for _, d := range daemons {
		pid, err := startOne(binDir, dir, h, d)
		if err != nil {
			return err
		}
		h.PIDs[d.name] = pid
	}
	return nil
}

func startOne(binDir, dir string, h *HostState, d daemon) (int, error) {
	bin := filepath.Join(binDir, d.name)
	if _, err := os.Stat(bin); err != nil {
		return 0, fmt.Errorf("%s not found in %s (run make build)", d.name, binDir)
	}
	logf, err := os.OpenFile(filepath.Join(dir, d.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NetNS, bin}, d.args(h, dir)...)...)
	cmd.Env = append(os.Environ(),
		"NODENAME="+h.Name,
		"ETCD_ENDPOINTS=http://127.0.0.1:2379",
		"CALICO_RUN_DIR="+filepath.Join(dir, "run"),
		"FELIX_FELIXHOSTNAME="+h.Name,
	)
	if h.KubeNode {
		cmd.Env = append(cmd.Env, "CALICO_K8S_NODE_REF="+h.Name)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: Ctrl-C on the lab reaches the lab, which then
	// stops the daemons in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s on %s: %w", d.name, h.Name, err)
	}
	go cmd.Wait() // reap; the lab watches pids, not this handle
	return cmd.Process.Pid, nil
}

// stopDaemons sends SIGTERM to every recorded daemon, then SIGKILL to any
// still alive after grace.
func stopDaemons(h *HostState, grace time.Duration) {
	for _, pid := range h.PIDs {
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(grace)
	for _, pid := range h.PIDs {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// daemonSummary says which daemons of h are running.
func daemonSummary(h *HostState) string {
	var parts []string
	for _, d := range daemons {
		state := "stopped"
		if alive(h.PIDs[d.name]) {
			state = fmt.Sprintf("running (pid %d)", h.PIDs[d.name])
		}
		parts = append(parts, d.name+" "+state)
	}
	return strings.Join(parts, ", ")
}

// RestartDaemon stops one daemon of host (SIGTERM) and starts it again.
func (l *Lab) RestartDaemon(host, name string) error {
	h, err := l.State.Host(host)
	if err != nil {
		return err
	}
	for _, d := range daemons {
		if d.name != name {
			continue
		}
		stopDaemons(&HostState{PIDs: map[string]int{name: h.PIDs[name]}}, 10*time.Second)
		pid, err := startOne(l.BinDir, hostDir(l.State.Dir, h.Name), h, d)
		if err != nil {
			return err
		}
		h.PIDs[name] = pid
		return l.State.Save()
	}
	return fmt.Errorf("no daemon %q", name)
}
