package kube

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/calico-etcd/calico/deploy/lab/internal/images"
)

// Node says how to run one host's Kubernetes agents.
type Node struct {
	// Name is the host's (Kubernetes and Calico) node name.
	Name string
	// NetNS is the host's network namespace; IP its address.
	NetNS, IP string
	// Dir is the host's state directory.
	Dir string
	// KubeBin holds kubelet; CNIBin the CNI plugins (calico, calico-direct, calico-ipam,
	// loopback); Images the image tarball (package images).
	KubeBin, CNIBin, Images string
	// EtcdEndpoint is etcd as seen from the host.
	EtcdEndpoint string
}

func (n Node) path(p ...string) string { return filepath.Join(append([]string{n.Dir}, p...)...) }

// PodNetNSGlob matches the network namespaces containerd pins for the
// pods of the node whose state directory is dir.
func PodNetNSGlob(dir string) string {
	return filepath.Join(dir, "containerd", "state", "io.containerd.grpc.v1.cri", "netns", "*")
}

// TaskPIDGlob matches the pid files of the containers the node's
// containerd runs (its shims write them), for cleaning up after a crash.
func TaskPIDGlob(dir string) string {
	return filepath.Join(dir, "containerd", "state", "io.containerd.runtime.v2.task", "*", "*", "init.pid")
}

// Socket is the node's containerd socket.
func (n Node) Socket() string { return n.path("containerd", "containerd.sock") }

// StartNode starts containerd, loads the lab's images into it, writes the
// calico conflist for Kubernetes mode and starts kubelet; it returns the
// pids by name. c writes the hosts' kubeconfig.
func StartNode(ctx context.Context, c *Control, n Node) (map[string]int, error) {
	for _, d := range []string{n.path("containerd"), n.path("cni", "net.d"), n.path("kubelet"), n.path("pod-logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	kubeconfig := n.path("kubeconfig")
	if err := c.HostKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.path("cni", "net.d", "10-calico.conflist"), []byte(conflist(n, kubeconfig)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.path("containerd", "config.toml"), []byte(containerdConfig(n)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.path("kubelet", "config.yaml"), []byte(kubeletConfig(n)), 0o644); err != nil {
		return nil, err
	}
	pids := map[string]int{}
	pid, err := Spawn(n.path("containerd.log"), n.NetNS, nil, "/usr/bin/containerd", "--config", n.path("containerd", "config.toml"))
	if err != nil {
		return pids, err
	}
	pids["containerd"] = pid
	if err := waitSocket(ctx, n.Socket(), 30*time.Second); err != nil {
		return pids, fmt.Errorf("containerd on %s: %w", n.Name, err)
	}
	if out, err := exec.CommandContext(ctx, "ctr", "-a", n.Socket(), "-n", "k8s.io", "images", "import", n.Images).CombinedOutput(); err != nil {
		return pids, fmt.Errorf("importing the lab's images on %s: %w: %s", n.Name, err, out)
	}
	pid, err = Spawn(n.path("kubelet.log"), n.NetNS, nil, filepath.Join(n.KubeBin, "kubelet"),
		"--config="+n.path("kubelet", "config.yaml"), "--kubeconfig="+kubeconfig,
		"--root-dir="+n.path("kubelet"), "--cert-dir="+n.path("kubelet", "pki"),
		"--hostname-override="+n.Name, "--node-ip="+n.IP, "--v=1")
	if err != nil {
		return pids, err
	}
	pids["kubelet"] = pid
	return pids, nil
}

func waitSocket(ctx context.Context, path string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no socket %s within %s", path, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// conflist is the calico network in Kubernetes mode, as Calico's etcd
// manifest installs it.
func conflist(n Node, kubeconfig string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [{
    "type": "calico",
    "etcd_endpoints": %q,
    "nodename": %q,
    "mtu_file": %q,
    "agent_socket": %q,
    "log_level": "info",
    "log_file_path": %q,
    "ipam": {"type": "calico-ipam"},
    "policy": {"type": "k8s"},
    "kubernetes": {"kubeconfig": %q}
  }]
}`, n.EtcdEndpoint, n.Name, n.path("mtu"), n.path("run", "cni-agent.sock"), n.path("cni.log"), kubeconfig)
}

// containerdConfig is containerd 1.6's: its own root, state and socket;
// the lab's sandbox image (nothing is pulled); pod network namespaces
// pinned under its state directory (PodNetNSGlob); oom_score_adj never
// lowered (refused on hosts like this lab's).
func containerdConfig(n Node) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
`, n.path("containerd", "root"), n.path("containerd", "state"), n.Socket(), n.path("containerd", "ttrpc.sock"),
		images.Pause, n.CNIBin, n.path("cni", "net.d"))
}

// kubeletConfig is what kubelet needs on this kind of host: cgroup v1
// with cgroupfs and no QoS cgroups, swap allowed, no eviction or image GC
// (the lab's images cannot be pulled again), the API served only to the
// lab (anonymous, always allowed).
func kubeletConfig(n Node) string {
	return strings.TrimLeft(fmt.Sprintf(`
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
podLogsDirectory: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
serializeImagePulls: false
resolvConf: ""
`, n.Socket(), n.path("pod-logs")), "\n")
}
