package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/calico-etcd/calico/testutil"
)

// NetworkName is the CNI network of the lab's pods.
const NetworkName = "k8s-pod-network"

// conflist is what kubelet would find in /etc/cni/net.d on a lab host:
// its node name, felix's MTU file of that host, IPv6 addresses too in an
// IPv6 lab.
func conflist(s *State, h *HostState) []byte {
	ipv6 := "false"
	if s.IPv6 {
		ipv6 = "true"
	}
	return []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [{
    "type": "calico",
    "etcd_endpoints": %q,
    "nodename": %q,
    "mtu_file": %q,
    "agent_socket": %q,
    "log_level": "info",
    "ipam": {"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": %q}
  }]
}`, NetworkName, s.hostEtcd(), h.Name, mtuFile(hostDir(s.Dir, h.Name)), agentSocket(hostDir(s.Dir, h.Name)), ipv6))
}

func (l *Lab) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{l.BinDir}, filepath.Join(l.State.Dir, "cni-cache"), nil)
}

func runtimeConf(p PodState) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: p.ContainerID,
		NetNS:       "/var/run/netns/" + p.NetNS,
		IfName:      "eth0",
		Args:        [][2]string{{"K8S_POD_NAMESPACE", p.Namespace}, {"K8S_POD_NAME", p.Name}},
	}
}

// inHost runs f on a thread inside the host's namespace, so the plugins
// libcni executes run there, as they would on that host.
func inHost(h *HostState, f func() error) error {
	ns, err := testutil.OpenNetNS(h.NetNS)
	if err != nil {
		return err
	}
	defer ns.NetNS.Close()
	return ns.RunIn(f)
}

// AddPod creates a pod namespace on host and networks it through libcni.
// It is safe to call concurrently.
func (l *Lab) AddPod(ctx context.Context, host, namespace, name string) (*PodState, error) {
	id := make([]byte, 8)
	rand.Read(id)
	p := PodState{Name: name, Namespace: namespace, ContainerID: hex.EncodeToString(id),
		NetNS: fmt.Sprintf("%s-%s-%s", l.State.Name, host, hex.EncodeToString(id[:3]))}
	l.mu.Lock()
	h, err := l.State.Host(host)
	if err == nil {
		for _, o := range h.Pods {
			if o.Name == name && o.Namespace == namespace {
				err = fmt.Errorf("pod %s/%s already exists on %s", namespace, name, host)
			}
		}
	}
	if err == nil {
		// Record the pod before creating anything, so down removes it after a crash.
		h.Pods = append(h.Pods, p)
		err = l.State.Save()
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if _, err := openNS(p.NetNS); err != nil {
		return nil, err
	}
	conf, err := libcni.ConfListFromBytes(conflist(l.State, h))
	if err != nil {
		return nil, err
	}
	var res *types100.Result
	err = inHost(h, func() error {
		r, err := l.cni().AddNetworkList(ctx, conf, runtimeConf(p))
		if err != nil {
			return err
		}
		res, err = types100.NewResultFromResult(r)
		return err
	})
	if err != nil {
		_ = l.removePod(ctx, h, p)
		return nil, fmt.Errorf("CNI ADD for %s/%s on %s: %w", namespace, name, host, err)
	}
	for _, ip := range res.IPs {
		switch {
		case ip.Address.IP.To4() != nil && p.IP == "":
			p.IP = ip.Address.IP.String()
		case ip.Address.IP.To4() == nil && p.IP6 == "":
			p.IP6 = ip.Address.IP.String()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range h.Pods {
		if h.Pods[i].ContainerID == p.ContainerID {
			h.Pods[i].IP, h.Pods[i].IP6 = p.IP, p.IP6
		}
	}
	return &p, l.State.Save()
}

// DelPod runs CNI DEL and removes the pod's namespace.
func (l *Lab) DelPod(ctx context.Context, host, namespace, name string) error {
	l.mu.Lock()
	h, err := l.State.Host(host)
	var pod *PodState
	if err == nil {
		for _, p := range h.Pods {
			if p.Name == name && p.Namespace == namespace {
				pod = &p
			}
		}
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if pod == nil {
		return fmt.Errorf("no pod %s/%s on %s", namespace, name, host)
	}
	return l.removePod(ctx, h, *pod)
}

func (l *Lab) removePod(ctx context.Context, h *HostState, p PodState) error {
	conf, err := libcni.ConfListFromBytes(conflist(l.State, h))
	if err == nil {
		err = inHost(h, func() error { return l.cni().DelNetworkList(ctx, conf, runtimeConf(p)) })
	}
	if err != nil {
		// Keep the record (and the namespace) for a later DEL or down.
		return fmt.Errorf("CNI DEL for %s/%s on %s: %w", p.Namespace, p.Name, h.Name, err)
	}
	deleteNamespaces(p.NetNS)
	l.mu.Lock()
	for i := range h.Pods {
		if h.Pods[i].ContainerID == p.ContainerID {
			h.Pods = append(h.Pods[:i], h.Pods[i+1:]...)
			break
		}
	}
	defer l.mu.Unlock()
	return l.State.Save()
}
