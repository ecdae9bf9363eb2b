package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
	"github.com/calico-etcd/calico/libcalico/client"
)

// DemoPool is the lab's default IPv4 pool, which its hosts create at
// start (CALICO_IPV4POOL_CIDR).
const DemoPool = "10.65.0.0/16"

const denyPolicy = "deny-frontend-to-backend"

// ensurePod returns the pod if the lab has it, else adds it.
func (l *Lab) ensurePod(ctx context.Context, host, namespace, name string) (*PodState, error) {
	h, err := l.State.Host(host)
	if err != nil {
		return nil, err
	}
	for i := range h.Pods {
		if h.Pods[i].Name == name && h.Pods[i].Namespace == namespace {
			return &h.Pods[i], nil
		}
	}
	return l.AddPod(ctx, host, namespace, name)
}

// Demo walks through the lab: the pools, two pods per host, BGP routes
// and sessions, the connectivity matrix, a deny policy, the matrix again.
func (l *Lab) Demo(ctx context.Context) error {
	c, err := l.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	step := func(s string) { fmt.Fprintf(l.Out, "\n=== %s\n", s) }

	step("IP pools (made by the hosts at start from CALICO_IPV4POOL_CIDR) and a policy that allows all traffic")
	pools, _, err := c.IPPools().List(ctx, client.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pools {
		fmt.Fprintf(l.Out, "%-22s %-18s vxlanMode %-11s natOutgoing %v\n", p.Name, p.Spec.CIDR, p.Spec.VXLANMode, p.Spec.NATOutgoing)
	}
	allow := v3.NewGlobalNetworkPolicy()
	allow.Name = "allow-all"
	order := 1000.0
	allow.Spec.Order = &order
	allow.Spec.Selector = "all()"
	allow.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	allow.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	if _, err := c.Apply(ctx, allow); err != nil {
		return err
	}
	// A second run starts from the open state again.
	_, _ = c.Delete(ctx, v3.KindGlobalNetworkPolicy, "", denyPolicy, "")

	step("Add a frontend and a backend pod on every host (CNI through libcni)")
	for _, h := range l.State.Hosts {
		for _, ns := range []string{"frontend", "backend"} {
			p, err := l.ensurePod(ctx, h.Name, ns, ns+"-"+h.Name)
			if err != nil {
				return err
			}
			fmt.Fprintf(l.Out, "%-10s %-18s %s\n", h.Name, ns+"/"+p.Name, p.IP)
		}
	}
	if err := l.waitForRoutes(ctx, 60*time.Second); err != nil {
		fmt.Fprintln(l.Out, "warning:", err)
	}

	step("Routes learned over BGP (proto bird) on each host")
	for _, h := range l.State.Hosts {
		out, _ := exec.Command("ip", "-n", h.NetNS, "route", "show", "proto", "bird").CombinedOutput()
		fmt.Fprintf(l.Out, "%s:\n%s", h.Name, indent(string(out)))
	}

	step("BGP sessions (calicoctl node status on each host)")
	l.PrintNodeStatus(ctx)

	step("Connectivity matrix (ping)")
	l.PrintMatrix(ctx)

	step("Apply a policy denying frontend -> backend")
	deny := v3.NewGlobalNetworkPolicy()
	deny.Name = denyPolicy
	first := 10.0
	deny.Spec.Order = &first
	deny.Spec.Selector = "projectcalico.org/namespace == 'backend'"
	deny.Spec.Ingress = []v3.Rule{{Action: v3.Deny, Source: v3.EntityRule{Selector: "projectcalico.org/namespace == 'frontend'"}}}
	if _, err := c.Apply(ctx, deny); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // felix applies within milliseconds; leave margin for a loaded machine

	step("Connectivity matrix with the deny policy")
	l.PrintMatrix(ctx)
	return nil
}

func indent(s string) string {
	if strings.TrimSpace(s) == "" {
		return "  (none)\n"
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

// waitForRoutes waits until every host has a route to every other host's pods.
func (l *Lab) waitForRoutes(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ok, _ := l.Matrix(ctx, 1); allTrue(ok) {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("not every pod reached every other within %v", limit)
}

func allTrue(m map[[2]string]bool) bool {
	for _, v := range m {
		if !v {
			return false
		}
	}
	return len(m) > 0
}

type podRef struct {
	label, netns, ip string
}

func (l *Lab) pods() []podRef {
	var out []podRef
	for _, h := range l.State.Hosts {
		for _, p := range h.Pods {
			out = append(out, podRef{label: p.Namespace + "/" + p.Name, netns: p.NetNS, ip: p.IP})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].label < out[j].label })
	return out
}

// Matrix pings every pod from every other pod, a few at a time.
func (l *Lab) Matrix(ctx context.Context, waitSecs int) (map[[2]string]bool, []podRef) {
	pods := l.pods()
	res := map[[2]string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, src := range pods {
		for _, dst := range pods {
			if src.label == dst.label {
				continue
			}
			wg.Add(1)
			go func(src, dst podRef) {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				err := exec.CommandContext(ctx, "ip", "netns", "exec", src.netns, "ping", "-c1", "-W", fmt.Sprint(waitSecs), dst.ip).Run()
				mu.Lock()
				res[[2]string{src.label, dst.label}] = err == nil
				mu.Unlock()
			}(src, dst)
		}
	}
	wg.Wait()
	return res, pods
}

// PrintMatrix prints the ping matrix: rows are sources, columns destinations.
func (l *Lab) PrintMatrix(ctx context.Context) {
	res, pods := l.Matrix(ctx, 1)
	tw := tabwriter.NewWriter(l.Out, 2, 4, 2, ' ', 0)
	fmt.Fprint(tw, "FROM \\ TO")
	for _, d := range pods {
		fmt.Fprint(tw, "\t"+d.label)
	}
	fmt.Fprintln(tw)
	for _, s := range pods {
		fmt.Fprint(tw, s.label)
		for _, d := range pods {
			cell := "-"
			if s.label != d.label {
				cell = "DENY"
				if res[[2]string{s.label, d.label}] {
					cell = "ok"
				}
			}
			fmt.Fprint(tw, "\t"+cell)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// PrintNodeStatus prints each host's BGP peers from its bgpd socket.
func (l *Lab) PrintNodeStatus(ctx context.Context) {
	if l.State.NoBGP {
		fmt.Fprintln(l.Out, "BGP is off (up --no-bgp): no calico-bgpd runs")
		return
	}
	for _, h := range l.State.Hosts {
		sock := filepath.Join(hostDir(l.State.Dir, h.Name), "run", "bgpd.ctl")
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := bgpstatus.NewClient(sock).Status(cctx)
		cancel()
		if err != nil {
			fmt.Fprintf(l.Out, "%s: bgpd not answering: %v\n", h.Name, err)
			continue
		}
		fmt.Fprintf(l.Out, "%s:\n", h.Name)
		for _, p := range st.Peers4 {
			fmt.Fprintf(l.Out, "  %-15s %-18s %-12s %s %s\n", p.Address, p.Type, p.State, p.Since, p.Info)
		}
	}
}

// Status prints the hosts, their daemons and pods.
func (l *Lab) Status(ctx context.Context) {
	state := "stopped (run calico-lab down to clean up)"
	if l.State.Running() {
		state = fmt.Sprintf("running (pid %d)", l.State.PID)
	}
	fmt.Fprintf(l.Out, "Lab %s: %s\nexport ETCD_ENDPOINTS=%s\n", l.State.Name, state, l.State.EtcdEndpoint)
	for _, h := range l.State.Hosts {
		fmt.Fprintf(l.Out, "%s (%s, %s): %s\n", h.Name, h.NetNS, addrs(h), daemonSummary(l.State, &h))
		for _, p := range h.Pods {
			fmt.Fprintf(l.Out, "  pod %s/%s %s (netns %s)\n", p.Namespace, p.Name, strings.TrimSpace(p.IP+" "+p.IP6), p.NetNS)
		}
	}
}
