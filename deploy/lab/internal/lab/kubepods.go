package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/calico-etcd/calico/deploy/lab/internal/images"
	"github.com/calico-etcd/calico/deploy/lab/internal/kube"
)

// KubePod is a pod the lab asked Kubernetes for.
type KubePod struct {
	Namespace, Name, Host string
	Labels                map[string]string
}

// Manifest is the pod: the lab's workload image answering on ports 80
// and 81 (TCP and UDP), pinned to its host by nodeName. Its ports are
// named as in Kubernetes' NetworkPolicy e2e suite, serve-<port>-<tcp|udp>,
// for policies that name them. Names are quoted: YAML reads y or n
// unquoted as a boolean.
func (p KubePod) Manifest() string {
	var labels strings.Builder
	for k, v := range p.Labels {
		fmt.Fprintf(&labels, "    %s: %q\n", k, v)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %q
  namespace: %q
  labels:
%s
spec:
  nodeName: %q
  terminationGracePeriodSeconds: 1
  containers:
  - name: labnet
    image: %s
    imagePullPolicy: Never
    args: ["-ports", "80,81"]
    ports:
    - {name: serve-80-tcp, containerPort: 80, protocol: TCP}
    - {name: serve-80-udp, containerPort: 80, protocol: UDP}
    - {name: serve-81-tcp, containerPort: 81, protocol: TCP}
    - {name: serve-81-udp, containerPort: 81, protocol: UDP}
`, p.Name, p.Namespace, strings.TrimRight(labels.String(), "\n")+"\n    lab: pod", p.Host, images.Workload)
}

// Apply gives manifest to kubectl apply.
func (l *Lab) Apply(ctx context.Context, manifest string) error {
	f, err := os.CreateTemp(l.State.Dir, "manifest-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(manifest); err != nil {
		return err
	}
	f.Close()
	_, err = l.Kubectl(ctx, "apply", "-f", f.Name())
	return err
}

// CreatePods creates pods and waits until all run; it returns their IPs
// by "<namespace>/<name>".
func (l *Lab) CreatePods(ctx context.Context, pods []KubePod, limit time.Duration) (map[string]string, error) {
	var docs []string
	for _, p := range pods {
		docs = append(docs, p.Manifest())
	}
	if err := l.Apply(ctx, strings.Join(docs, "---\n")); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	for {
		ips, pending, err := l.podIPs(ctx, pods)
		if err == nil && pending == "" {
			return ips, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pods not running within %s: %s %v", limit, pending, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (l *Lab) podIPs(ctx context.Context, pods []KubePod) (map[string]string, string, error) {
	out, err := l.Kubectl(ctx, "get", "pods", "-A", "-o",
		`jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase} {.status.podIP}{"\n"}{end}`)
	if err != nil {
		return nil, "", err
	}
	got := map[string][2]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			got[f[0]] = [2]string{f[1], f[2]}
		} else if len(f) == 2 {
			got[f[0]] = [2]string{f[1], ""}
		}
	}
	ips := map[string]string{}
	for _, p := range pods {
		k := p.Namespace + "/" + p.Name
		if s := got[k]; s[0] != "Running" || s[1] == "" {
			return nil, k + " is " + s[0], nil
		}
		ips[k] = got[k][1]
	}
	return ips, "", nil
}

// PodNetNS returns the path of the network namespace holding ip, among
// the pods' namespaces the hosts' containerds pinned.
func (l *Lab) PodNetNS(ip string) (string, error) {
	if l.State.Kube == nil {
		return "", fmt.Errorf("the lab runs without Kubernetes")
	}
	var paths []string
	for _, h := range l.State.Hosts {
		ps, _ := filepath.Glob(kube.PodNetNSGlob(hostDir(l.State.Dir, h.Name)))
		paths = append(paths, ps...)
	}
	for _, p := range paths {
		out, err := exec.Command("nsenter", "--net="+p, "ip", "-o", "addr", "show", "dev", "eth0").Output()
		if err == nil && strings.Contains(string(out), " "+ip+"/") {
			return p, nil
		}
	}
	return "", fmt.Errorf("no pod network namespace holds %s", ip)
}

// Probe reports whether a labnet server at to (ip:port) answers proto
// (tcp or udp) from inside the network namespace at netns.
func (l *Lab) Probe(ctx context.Context, netns, proto, to string, timeout time.Duration) bool {
	err := exec.CommandContext(ctx, "nsenter", "--net="+netns, filepath.Join(l.BinDir, "labnet"), "probe",
		"-proto", proto, "-to", to, "-timeout", timeout.String()).Run()
	return err == nil
}
