package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/calico-etcd/calico/testutil"
)

// EtcdMemberArg, as calico-lab's first argument, makes it run etcd's own
// main with the rest: the members of `up --etcd-members` are calico-lab
// processes started so.
const EtcdMemberArg = "__etcd-member"

// hostEtcdPort is member i's port on 127.0.0.1 inside every host namespace.
func hostEtcdPort(i int) int { return 2379 + 100*i }

// startEtcdCluster runs an o.EtcdMembers-member etcd: each member in a
// namespace of its own (<name>-etcd<i>, on the bridge <name>-etcd), the
// lab's operators reaching it through loopback proxies in the root
// namespace (State.EtcdEndpoint lists them).
func (l *Lab) startEtcdCluster(o Options) error {
	command := o.EtcdCommand
	if len(command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		command = []string{exe, EtcdMemberArg}
	}
	c, err := testutil.NewEtcdCluster(filepath.Join(l.State.Dir, "etcd"), o.EtcdMembers,
		testutil.WithEtcdCommand(command...), testutil.WithNetNSPrefix(l.State.Name+"-"))
	if err != nil {
		return fmt.Errorf("etcd cluster: %w", err)
	}
	l.cluster = c
	eps, err := c.Proxy(nil, "127.0.0.1")
	if err != nil {
		return err
	}
	var hosts []string
	for i := range c.Members {
		hosts = append(hosts, fmt.Sprintf("http://127.0.0.1:%d", hostEtcdPort(i)))
	}
	l.State.EtcdEndpoint = strings.Join(eps, ",")
	l.State.HostEtcdEndpoints = strings.Join(hosts, ",")
	fmt.Fprintf(l.Out, "etcd: %d members in namespaces %setcd0..%d\n", len(c.Members), l.State.Name+"-", len(c.Members)-1)
	return nil
}

// clusterInHost gives a host namespace one loopback port per member.
func (l *Lab) clusterInHost(ns *testutil.NetNS) error {
	for i, m := range l.cluster.Members {
		if _, err := l.cluster.ProxyAt(ns, fmt.Sprintf("127.0.0.1:%d", hostEtcdPort(i)), m); err != nil {
			return err
		}
	}
	return nil
}

// EtcdCluster is the lab's etcd cluster (up --etcd-members), nil for one
// member or when another calico-lab process holds it.
func (l *Lab) EtcdCluster() *testutil.EtcdCluster { return l.cluster }
