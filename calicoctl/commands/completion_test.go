package commands

import (
	"strings"
	"testing"
	"time"
)

// complete runs cobra's hidden completion command and returns the
// completions offered (without the directive line).
func complete(t *testing.T, c *cli, args ...string) []string {
	t.Helper()
	r := c.run(append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %v:\n%s", args, r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
		t.Fatalf("__complete %v: no directive:\n%s", args, r)
	}
	var out []string
	for _, l := range lines[:len(lines)-1] {
		name, _, _ := strings.Cut(l, "\t")
		if !strings.HasPrefix(name, "-") { // cobra offers required flags too
			out = append(out, name)
		}
	}
	return out
}

// TestCompletion offers kinds, and names read from the datastore.
func TestCompletion(t *testing.T) {
	c := loaded(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", ""}, "bgpconfigurations bgpfilters bgppeers clusterinformations felixconfigurations globalnetworkpolicies globalnetworksets hostendpoints ippools ipreservations networkpolicies networksets nodes profiles stagedglobalnetworkpolicies stagedkubernetesnetworkpolicies stagednetworkpolicies tiers workloadendpoints"},
		{[]string{"get", "ipp"}, "ipp ippool ippools ipps"},
		{[]string{"get", "ippools", ""}, "pool-v4 pool-v6"},
		{[]string{"get", "ippools", "pool-v4", ""}, "pool-v6"},
		{[]string{"get", "ippools", "pool-v"}, "pool-v4 pool-v6"},
		{[]string{"get", "policy", "-n", "prod", ""}, "allow-web"},
		{[]string{"get", "policy", ""}, ""},
		{[]string{"get", "wep", "-A", ""}, "node1-k8s-web--1-eth0"},
		{[]string{"delete", "gnp", ""}, "security.deny-db"},
		{[]string{"label", "nodes", ""}, "node1 node2"},
		{[]string{"label", "nodes", "node1", ""}, ""},
		{[]string{"patch", "profile", ""}, "dev projectcalico-default-allow"},
		{[]string{"get", "nosuchkind", ""}, ""},
		{[]string{"get", "-o", ""}, "ps wide yaml json custom-columns= go-template= go-template-file="},
		{[]string{"config", "get", ""}, "nodeToNodeMesh asNumber logLevel"},
		{[]string{"config", "set", "--raw", ""}, "bgp felix"},
		{[]string{"datastore", "migrate", ""}, "export import lock unlock"},
		{[]string{"help", "clu"}, "cluster"},
	} {
		if got := strings.Join(complete(t, c, tc.args...), " "); got != tc.want {
			t.Errorf("complete %q: got %q, want %q", tc.args, got, tc.want)
		}
	}
	got := " " + strings.Join(complete(t, c, ""), " ") + " "
	for _, cmd := range []string{"cluster", "datastore", "validate", "ipam", "get"} {
		if !strings.Contains(got, " "+cmd+" ") {
			t.Errorf("commands %s lack %s", got, cmd)
		}
	}

	// With etcd down: no names, nothing printed but the directive, soon.
	down := offline(t)
	start := time.Now()
	r := down.run("__complete", "get", "ippools", "")
	if r.code != 0 || strings.TrimSpace(r.stdout) != ":4" || strings.Contains(r.stderr, "unavailable") || time.Since(start) > 4*time.Second {
		t.Fatalf("%v\n%s", time.Since(start), r)
	}
}
