package nodeinfo

import (
	"context"
	"testing"

	"github.com/calico-etcd/calico/testutil"
)

// TestKernelDetectionMethods runs every detection method against the
// real interfaces of a throwaway namespace: eth0 (172.31.7.5/24 and
// fd00:7::5/64), eth1 (10.77.0.9/16), and a down eth2 (10.88.0.1/16).
func TestKernelDetectionMethods(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t)
	for _, c := range [][]string{
		{"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"},
		{"ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"},
		{"ip", "link", "add", "eth2", "type", "veth", "peer", "name", "eth2p"},
		{"ip", "addr", "add", "172.31.7.5/24", "dev", "eth0"},
		{"ip", "addr", "add", "fd00:7::5/64", "dev", "eth0", "nodad"},
		{"ip", "addr", "add", "10.77.0.9/16", "dev", "eth1"},
		{"ip", "addr", "add", "10.88.0.1/16", "dev", "eth2"},
		{"ip", "link", "set", "eth0", "up"}, {"ip", "link", "set", "eth0p", "up"},
		{"ip", "link", "set", "eth1", "up"}, {"ip", "link", "set", "eth1p", "up"},
		{"ip", "route", "add", "default", "via", "172.31.7.1"},
	} {
		if err := ns.Exec(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	var d Detector
	for _, tc := range []struct {
		method string
		v6     bool
		want   string
	}{
		{"first-found", false, "172.31.7.5/24"},
		{"first-found", true, "fd00:7::5/64"},
		{"interface=eth1", false, "10.77.0.9/16"},
		{"skip-interface=eth0", false, "10.77.0.9/16"},
		{"can-reach=8.8.8.8", false, "172.31.7.5/24"}, // by the default route; nothing is sent
		{"can-reach=10.77.1.1", false, "10.77.0.9/16"},
		{"cidr=10.0.0.0/8", false, "10.77.0.9/16"},
		{"cidr=192.0.2.0/24,172.31.0.0/16", false, "172.31.7.5/24"},
		{"cidr=fd00:7::/48", true, "fd00:7::5/64"},
		{"cidr=10.88.0.0/16", false, "error"}, // only on a down interface
	} {
		var got string
		if err := ns.RunIn(func() error {
			p, err := d.Detect(context.Background(), tc.method, tc.v6)
			got = p.String()
			if err != nil {
				got = "error"
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s (v6=%v) = %s, want %s", tc.method, tc.v6, got, tc.want)
		}
	}
}
