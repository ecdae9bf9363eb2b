// Package lab runs a Calico cluster on one machine: an embedded etcd, and
// N hosts that are network namespaces joined by a bridge namespace, each
// running the real calico-felix, calico-confd, calico-bgpd and
// calico-cni-agent. Pods are namespaces wired by the real CNI plugins
// through libcni, as kubelet does.
//
//	root ns: lab process ── etcd on 127.0.0.1:<port> (calicoctl uses it)
//	   │ forwards 127.0.0.1:2379 inside each host ns to that etcd
//	<name>-br: bridge br0 ─┬─ veth ─ <name>-h1 (eth0 172.30.0.11) ─ pods
//	                       ├─ veth ─ <name>-h2 (eth0 172.30.0.12) ─ pods
//	                       └─ ...
//	           bridge br1 ──── veth ─ <name>-h3 (eth0 172.30.1.13)   (with --subnets 2;
//	                                                                  the bridge namespace routes)
//
// Nothing is created in the root namespace but the etcd listener. Every
// step is recorded in a state file first, so Down cleans up after a crash.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// HostState is one lab host.
type HostState struct {
	Name  string `json:"name"`
	NetNS string `json:"netns"`
	Addr  string `json:"addr"` // eth0 address with prefix length
	// Addr6 is eth0's IPv6 address (Options.IPv6), Subnet the index of
	// the host's subnet (Options.Subnets).
	Addr6  string         `json:"addr6,omitempty"`
	Subnet int            `json:"subnet,omitempty"`
	PIDs   map[string]int `json:"pids"` // daemon name -> pid
	Pods   []PodState     `json:"pods,omitempty"`
	// KubeNode: the host is also a Kubernetes node of the same name.
	KubeNode bool `json:"kubeNode,omitempty"`
}

// PodState is one pod added with `pod add`.
type PodState struct {
	Name        string `json:"name"`
	Namespace   string `json:"namespace"`
	NetNS       string `json:"netns"`
	ContainerID string `json:"containerID"`
	IP          string `json:"ip"`
	IP6         string `json:"ip6,omitempty"`
}

// State is everything the lab made; saved after every change.
type State struct {
	Name         string      `json:"name"`
	Dir          string      `json:"dir"`
	PID          int         `json:"pid"` // the `up` process holding etcd
	EtcdEndpoint string      `json:"etcdEndpoint"`
	BridgeNS     string      `json:"bridgeNetns"`
	Hosts        []HostState `json:"hosts"`
	// Kube is set for a lab with Kubernetes (up --kubernetes).
	Kube *KubeState `json:"kube,omitempty"`
	// IPv6: hosts and pods have IPv6 addresses too. NoBGP: no
	// calico-bgpd runs.
	IPv6  bool `json:"ipv6,omitempty"`
	NoBGP bool `json:"noBGP,omitempty"`
	// Env is what every host's daemons get besides the lab's own
	// variables: the default pools' CALICO_IPV4POOL_* and CALICO_IPV6POOL_*.
	Env []string `json:"env,omitempty"`
	// HostEtcdEndpoints is etcd as the hosts' daemons and CNI plugin see
	// it, when not http://127.0.0.1:2379 (up --etcd-members).
	HostEtcdEndpoints string `json:"hostEtcdEndpoints,omitempty"`
}

// hostEtcd is ETCD_ENDPOINTS inside a host namespace.
func (s *State) hostEtcd() string {
	if s.HostEtcdEndpoints != "" {
		return s.HostEtcdEndpoints
	}
	return "http://127.0.0.1:2379"
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// LoadState reads the state of the lab in dir; fs.ErrNotExist when none.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading lab state %s: %w", statePath(dir), err)
	}
	return &s, nil
}

// Save writes the state atomically.
func (s *State) Save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(s.Dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(s.Dir))
}

// Running reports whether the `up` process that owns the lab is alive.
func (s *State) Running() bool { return alive(s.PID) }

// Host finds a host by name.
func (s *State) Host(name string) (*HostState, error) {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i], nil
		}
	}
	return nil, fmt.Errorf("no host %q in the lab (hosts: %s)", name, s.hostNames())
}

func (s *State) hostNames() string {
	out := ""
	for i, h := range s.Hosts {
		if i > 0 {
			out += ", "
		}
		out += h.Name
	}
	return out
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
