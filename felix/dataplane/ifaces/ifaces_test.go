package ifaces

import (
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netns"

	"github.com/calico-etcd/calico/testutil"
)

func TestWatchSeesInterfacesComeAndGo(t *testing.T) {
	ns := testutil.NewNetNS(t)
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Update, 64)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, &h, out, logrus.NewEntry(logrus.New())) }()
	defer func() { cancel(); <-done }()

	wait := func(what string, ok func(Update) bool) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case u := <-out:
				if ok(u) {
					return
				}
			case <-timeout:
				t.Fatalf("no update: %s", what)
			}
		}
	}
	wait("existing lo", func(u Update) bool { return u.Name == "lo" && u.Up })
	if err := ns.Exec("ip", "link", "add", "calitest", "type", "veth", "peer", "name", "peer0"); err != nil {
		t.Fatal(err)
	}
	wait("new interface", func(u Update) bool { return u.Name == "calitest" && !u.Deleted })
	if err := ns.Exec("ip", "link", "set", "calitest", "up"); err != nil {
		t.Fatal(err)
	}
	wait("interface up", func(u Update) bool { return u.Name == "calitest" && u.Up })
	if err := ns.Exec("ip", "link", "del", "calitest"); err != nil {
		t.Fatal(err)
	}
	wait("interface gone", func(u Update) bool { return u.Name == "calitest" && u.Deleted })
}
