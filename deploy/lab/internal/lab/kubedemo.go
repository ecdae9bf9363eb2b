package lab

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// KubeDemo walks through the Kubernetes side of the lab: two pods made
// with kubectl on different hosts reach each other; a NetworkPolicy
// denies it; deleting the policy restores it. It returns an error at the
// first step that does not hold.
func (l *Lab) KubeDemo(ctx context.Context) error {
	if len(l.State.Hosts) < 2 {
		return errors.New("the Kubernetes demo needs two hosts (--hosts 2 or more)")
	}
	step := func(format string, args ...any) { fmt.Fprintf(l.Out, "\n== "+format+"\n", args...) }
	step("kubectl creates namespace demo and pods client (on host1) and server (on host2)")
	if err := l.Apply(ctx, "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"); err != nil {
		return err
	}
	pods := []KubePod{
		{Namespace: "demo", Name: "client", Host: l.State.Hosts[0].Name, Labels: map[string]string{"app": "client"}},
		{Namespace: "demo", Name: "server", Host: l.State.Hosts[1].Name, Labels: map[string]string{"app": "server"}},
	}
	start := time.Now()
	ips, err := l.CreatePods(ctx, pods, 120*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(l.Out, "running after %s: client %s, server %s\n", time.Since(start).Round(time.Millisecond), ips["demo/client"], ips["demo/server"])
	c, err := l.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	if w, err := c.WorkloadEndpoints().Get(ctx, "demo", l.State.Hosts[1].Name+"-k8s-server-eth0"); err == nil {
		fmt.Fprintf(l.Out, "its WorkloadEndpoint %s: labels %v, profiles %v\n", w.Name, w.Labels, w.Spec.Profiles)
	} else {
		return fmt.Errorf("the server's WorkloadEndpoint: %w", err)
	}
	netns, err := l.PodNetNS(ips["demo/client"])
	if err != nil {
		return err
	}
	to := ips["demo/server"] + ":80"
	expect := func(want bool, within time.Duration) error {
		deadline := time.Now().Add(within)
		t0 := time.Now()
		for {
			got := l.Probe(ctx, netns, "tcp", to, time.Second)
			if got == want {
				fmt.Fprintf(l.Out, "client -> server tcp/80: %s (after %s)\n", map[bool]string{true: "answered", false: "blocked"}[got], time.Since(t0).Round(time.Millisecond))
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("client -> server tcp/80: want answered=%v, still %v after %s", want, got, within)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	step("client reaches server across hosts")
	if err := expect(true, 30*time.Second); err != nil {
		return err
	}
	step("kubectl applies a NetworkPolicy that allows the server no ingress")
	deny := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-server, namespace: demo}\n" +
		"spec:\n  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n"
	if err := l.Apply(ctx, deny); err != nil {
		return err
	}
	if err := expect(false, 30*time.Second); err != nil {
		return err
	}
	if p, err := c.NetworkPolicies().Get(ctx, "demo", "knp.default.deny-server"); err == nil {
		fmt.Fprintf(l.Out, "calico-kube-controllers wrote %s/%s: selector %q, types %v\n", p.Namespace, p.Name, p.Spec.Selector, p.Spec.Types)
	} else {
		return fmt.Errorf("the Calico policy: %w", err)
	}
	step("kubectl deletes the policy; traffic flows again")
	if _, err := l.Kubectl(ctx, "delete", "networkpolicy", "-n", "demo", "deny-server"); err != nil {
		return err
	}
	if err := expect(true, 30*time.Second); err != nil {
		return err
	}
	step("kubectl deletes the namespace")
	if _, err := l.Kubectl(ctx, "delete", "namespace", "demo", "--timeout=60s"); err != nil {
		return err
	}
	fmt.Fprintln(l.Out, "every step held")
	return nil
}
