package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
	"github.com/calico-etcd/calico/testutil"
)

// TestClusterFaults runs confd against a 3-member cluster (its config
// lists the three endpoints, reached through proxies on loopback) through
// the cluster's faults: it keeps its rendered config while the cluster is
// broken (nothing emptied, nothing rewritten), renders a new peer made
// while a quorum stands, and after each fault renders the peer made once
// the cluster is healed.
func TestClusterFaults(t *testing.T) {
	cl := testutil.StartEtcdCluster(t, 3)
	eps, err := cl.Proxy(nil, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	apicfg := filepath.Join(dir, "calicoctl.cfg")
	data := "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: " + strings.Join(eps, ",") + "\n"
	if err := os.WriteFile(apicfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := apiconfig.Load(apicfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewFromSpec(spec, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := env{c: c, cfg: Config{
		NodeName: "node-a", NodenameFile: filepath.Join(dir, "nodename"), DatastoreConfig: apicfg,
		RunDir: filepath.Join(dir, "run"), SecretsDir: filepath.Join(dir, "secrets"), Register: true,
		Node: nodeinfo.Options{IPv4: "172.31.255.11/24", ASNumber: "65001"}, DatastoreTimeout: 5 * time.Second,
	}}
	e.create(t, node("node-b", "172.31.255.12/24"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, e.cfg, testLog(t)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	path := filepath.Join(e.cfg.RunDir, bgpconfig.FileName)
	peers := 1
	waitPeers := func(t *testing.T, what string) {
		t.Helper()
		waitFor(t, what, func() bool {
			c, err := bgpconfig.Load(path)
			return err == nil && len(c.Peers) == peers
		})
	}
	waitPeers(t, "first render")
	// addPeer creates a node, retrying while the cluster settles, and
	// waits for confd to render it.
	addPeer := func(t *testing.T, what string) {
		t.Helper()
		peers++
		n := node(fmt.Sprintf("node-%d", peers), fmt.Sprintf("172.31.250.%d/24", peers))
		waitFor(t, "creating "+n.Name, func() bool {
			_, err := c.Create(context.Background(), n)
			return err == nil || strings.Contains(err.Error(), "already exists")
		})
		waitPeers(t, what)
	}

	cl.RunFaults(t, func(t *testing.T, f testutil.ClusterFault) {
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Quorum {
			addPeer(t, "a peer made during the fault")
			return
		}
		// Broken cluster: the rendered config stays as it was.
		for range 10 {
			time.Sleep(100 * time.Millisecond)
			if now, err := os.ReadFile(path); err != nil || string(now) != string(before) {
				t.Fatalf("rendered config changed while the cluster is down (%v):\n%s", err, now)
			}
		}
	}, func(t *testing.T, f testutil.ClusterFault) {
		addPeer(t, "a peer made after healing")
	})
}
