package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// daemon says how to start one component on a host.
type daemon struct {
	name string
	args func(h *HostState, dir string) []string
}

// daemons start in this order: confd creates the default pools and
// registers the Node (with eth0's addresses) that felix and bgpd read.
var daemons = []daemon{
	{"calico-confd", func(h *HostState, dir string) []string {
		args := []string{"--nodename", h.Name, "--nodename-file", filepath.Join(dir, "nodename"),
			"--run-dir", filepath.Join(dir, "run"), "--ip", h.Addr}
		if h.Addr6 != "" {
			args = append(args, "--ip6", h.Addr6)
		}
		return args
	}},
	{"calico-bgpd", func(h *HostState, dir string) []string {
		return []string{"--run-dir", filepath.Join(dir, "run")}
	}},
	{"calico-felix", func(h *HostState, dir string) []string {
		return []string{"--nodename-file", filepath.Join(dir, "nodename"), "--run-dir", filepath.Join(dir, "run"),
			"--config-file", filepath.Join(dir, "felix.cfg"), "--mtu-file", mtuFile(dir)}
	}},
	{"calico-cni-agent", func(h *HostState, dir string) []string {
		return []string{"--socket", agentSocket(dir)}
	}},
}

// hostDaemons are the daemons the lab runs on each host: all but bgpd
// when BGP is off.
func hostDaemons(s *State) []daemon {
	var out []daemon
	for _, d := range daemons {
		if d.name == "calico-bgpd" && s.NoBGP {
			continue
		}
		out = append(out, d)
	}
	return out
}

func hostDir(stateDir, host string) string { return filepath.Join(stateDir, host) }

// agentSocket is where a host's calico-cni-agent listens and its calico
// CNI plugin sends requests (the network configuration's agent_socket).
func agentSocket(hostDir string) string { return filepath.Join(hostDir, "run", "cni-agent.sock") }

// mtuFile is where a host's felix writes the pod MTU and its CNI plugin
// reads it (Calico's /var/lib/calico/mtu, one per lab host).
func mtuFile(hostDir string) string { return filepath.Join(hostDir, "mtu") }

// felixCfg is the per-host felix.cfg: health and metrics ports stay the
// defaults, since each host has its own loopback.
const felixCfg = `[global]
LogSeverityScreen = Info
`

// restartDelay is systemd's RestartSec in the units (deploy/systemd).
const restartDelay = 2 * time.Second

// proc is one supervised daemon process.
type proc struct {
	cmd      *exec.Cmd
	stopping bool // guarded by Lab.mu: stopped on purpose, not restarted
	done     chan struct{}
}

// startDaemons starts every daemon of h inside its namespace, records the
// pids in h.PIDs and supervises them.
func (l *Lab) startDaemons(h *HostState) error {
	dir := hostDir(l.State.Dir, h.Name)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "felix.cfg"), []byte(felixCfg), 0o644); err != nil {
		return err
	}
	for _, d := range hostDaemons(l.State) {
		if err := l.spawn(h, d); err != nil {
			return err
		}
	}
	return nil
}

// spawn starts d on h and a goroutine that restarts it, as systemd's
// Restart=on-failure does, when it exits with an error or is killed
// without having been stopped (felix exits 129 to apply a configuration
// change). Only the `up` process, which holds the lab, supervises.
func (l *Lab) spawn(h *HostState, d daemon) error {
	cmd, err := startOne(l.BinDir, hostDir(l.State.Dir, h.Name), h, d, slices.Concat(l.State.Env, []string{"ETCD_ENDPOINTS=" + l.State.hostEtcd()}))
	if err != nil {
		return err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("not starting %s on %s: the lab is shutting down", d.name, h.Name)
	}
	if l.procs == nil {
		l.procs = map[string]*proc{}
	}
	l.procs[h.Name+"/"+d.name] = p
	if h.PIDs == nil {
		h.PIDs = map[string]int{}
	}
	h.PIDs[d.name] = cmd.Process.Pid
	l.mu.Unlock()
	go l.supervise(h.Name, d, p)
	return nil
}

func (l *Lab) supervise(host string, d daemon, p *proc) {
	err := p.cmd.Wait()
	close(p.done)
	if err == nil {
		return // a clean exit (SIGTERM): systemd's on-failure leaves it
	}
	l.mu.Lock()
	stop := p.stopping || l.closing
	l.mu.Unlock()
	if stop {
		return
	}
	msg := fmt.Sprintf("calico-lab: %s on %s exited (%v); restarting it in %v", d.name, host, exitStatus(err), restartDelay)
	fmt.Fprintln(l.Out, msg)
	appendLog(hostDir(l.State.Dir, host), d.name, msg)
	time.Sleep(restartDelay)
	l.mu.Lock()
	stop = p.stopping || l.closing
	h, herr := l.State.Host(host)
	l.mu.Unlock()
	if stop || herr != nil {
		return
	}
	if err := l.spawn(h, d); err != nil {
		fmt.Fprintf(l.Out, "calico-lab: restarting %s on %s: %v\n", d.name, host, err)
		return
	}
	if err := l.savePIDs(h); err != nil {
		fmt.Fprintf(l.Out, "calico-lab: recording %s's new pid: %v\n", d.name, err)
	}
}

// savePIDs records h's daemon pids in the state file, into what other
// calico-lab processes (pod add) may have written since.
func (l *Lab) savePIDs(h *HostState) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := LoadState(l.State.Dir)
	if err != nil {
		return l.State.Save()
	}
	for i := range s.Hosts {
		if s.Hosts[i].Name == h.Name {
			s.Hosts[i].PIDs = map[string]int{}
			for k, v := range h.PIDs {
				s.Hosts[i].PIDs[k] = v
			}
		}
	}
	return s.Save()
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return fmt.Sprintf("status %d", ee.ExitCode())
	}
	return err.Error()
}

func appendLog(dir, name, line string) {
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

func startOne(binDir, dir string, h *HostState, d daemon, env []string) (*exec.Cmd, error) {
	bin := filepath.Join(binDir, d.name)
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found in %s (run make build)", d.name, binDir)
	}
	logf, err := os.OpenFile(filepath.Join(dir, d.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NetNS, bin}, d.args(h, dir)...)...)
	cmd.Env = append(os.Environ(),
		"NODENAME="+h.Name,
		"ETCD_ENDPOINTS=http://127.0.0.1:2379",
		"CALICO_RUN_DIR="+filepath.Join(dir, "run"),
		"FELIX_FELIXHOSTNAME="+h.Name,
	)
	cmd.Env = append(cmd.Env, env...)
	if h.KubeNode {
		cmd.Env = append(cmd.Env, "CALICO_K8S_NODE_REF="+h.Name)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: Ctrl-C on the lab reaches the lab, which then
	// stops the daemons in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s on %s: %w", d.name, h.Name, err)
	}
	return cmd, nil
}

// stopDaemons sends SIGTERM to every recorded daemon, then SIGKILL to any
// still alive after grace, and waits (up to 5 s more) until they are gone.
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
	deadline = time.Now().Add(5 * time.Second)
	for _, pid := range h.PIDs {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// daemonSummary says which daemons of h are running.
func daemonSummary(s *State, h *HostState) string {
	var parts []string
	for _, d := range hostDaemons(s) {
		state := "stopped"
		if alive(h.PIDs[d.name]) {
			state = fmt.Sprintf("running (pid %d)", h.PIDs[d.name])
		}
		parts = append(parts, d.name+" "+state)
	}
	return strings.Join(parts, ", ")
}

// PID returns the pid the lab last started host's daemon name with (0
// for none); safe to call while the lab restarts daemons.
func (l *Lab) PID(host, name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.State.Host(host)
	if err != nil {
		return 0
	}
	return h.PIDs[name]
}

// RestartDaemon stops one daemon of host (SIGTERM) and starts it again.
func (l *Lab) RestartDaemon(host, name string) error {
	h, err := l.State.Host(host)
	if err != nil {
		return err
	}
	for _, d := range hostDaemons(l.State) {
		if d.name != name {
			continue
		}
		l.mu.Lock()
		p := l.procs[host+"/"+name]
		if p != nil {
			p.stopping = true
		}
		pid := h.PIDs[name]
		l.mu.Unlock()
		stopDaemons(&HostState{PIDs: map[string]int{name: pid}}, 10*time.Second)
		if p != nil {
			<-p.done
		}
		if err := l.spawn(h, d); err != nil {
			return err
		}
		return l.savePIDs(h)
	}
	return fmt.Errorf("no daemon %q", name)
}
