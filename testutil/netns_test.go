package testutil

import (
	"net"
	"os/exec"
	"strings"
	"testing"
)

func TestNetNSIsolatedAndCleanedUp(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		n := NewNetNS(t)
		name = n.Name
		if !strings.HasPrefix(name, NetNSPrefix) {
			t.Fatalf("name %s lacks prefix", name)
		}
		var ifaces []net.Interface
		if err := n.RunIn(func() error {
			var err error
			ifaces, err = net.Interfaces()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(ifaces) != 1 || ifaces[0].Name != "lo" || ifaces[0].Flags&net.FlagUp == 0 {
			t.Fatalf("fresh namespace has %v, want only lo up", ifaces)
		}
		if out, err := n.Output("ip", "-o", "link"); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Fatalf("ip link in netns: %q %v", out, err)
		}
	})
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), name) {
		t.Fatalf("namespace %s left behind", name)
	}
}

func TestEmbeddedEtcdRestartKeepsData(t *testing.T) {
	e := StartEtcd(t)
	c := e.RawClient(t)
	ctx := t.Context()
	if _, err := c.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	if e.Running() {
		t.Fatal("still running after Stop")
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(ctx, "/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}
