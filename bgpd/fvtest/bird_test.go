package fvtest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

const birdConfig = `log stderr all;
router id 172.31.255.2;
protocol device { scan time 10; }
protocol kernel {
	ipv4 { import none; export where source = RTS_BGP; };
}
protocol static tor_routes {
	ipv4;
	route 203.0.113.0/24 blackhole;
	route 198.51.100.0/24 blackhole;
}
template bgp calico {
	local 172.31.255.2 as 65001;
	graceful restart on;
	password "%s";
	ipv4 { import all; export where proto = "tor_routes"; };
}
protocol bgp h1 from calico { neighbor 172.31.255.11 as 64512; }
protocol bgp h2 from calico { neighbor 172.31.255.12 as 64512; }
`

// TestBirdToR: BIRD 2 as a top-of-rack router, a global BGPPeer with an
// MD5 password (read from the secrets directory) and a BGPFilter. Our
// routes reach BIRD's table and kernel, BIRD's reach ours, and the
// filter's export and import rules hold.
func TestBirdToR(t *testing.T) {
	bird, birdc := sbin("bird"), sbin("birdc")
	if bird == "" || birdc == "" {
		t.Fatal("BIRD 2 is needed (Debian package bird2; .ci/install-deps installs it)")
	}
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	tor := l.newNS()
	l.plug(tor, "eth0", "br0", "172.31.255.2/24")
	sh(t, tor, "ip addr add 203.0.113.1/32 dev lo")
	listenIn(t, tor, netip.MustParseAddrPort("203.0.113.1:7777"))

	const password = "s3cret-tor"
	secretDir := filepath.Join(l.dir, "secrets", "bgp-secrets")
	if err := os.MkdirAll(secretDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secretDir, "tor"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(l.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(birdConfig, password)), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(l.dir, "bird.ctl")
	l.spawn("bird", tor, bird, "-f", "-c", conf, "-s", sock, "-P", filepath.Join(l.dir, "bird.pid"))

	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	filter := v3.NewBGPFilter()
	filter.Name = "tor"
	filter.Spec.ExportV4 = []v3.BGPFilterRuleV4{{Action: v3.BGPFilterActionReject, MatchOperator: v3.MatchOperatorIn, CIDR: "10.65.9.0/24"}}
	filter.Spec.ImportV4 = []v3.BGPFilterRuleV4{{Action: v3.BGPFilterActionReject, MatchOperator: v3.MatchOperatorEqual, CIDR: "198.51.100.0/24"}}
	peer := v3.NewBGPPeer()
	peer.Name = "tor"
	peer.Spec.PeerIP = "172.31.255.2"
	peer.Spec.ASNumber = 65001
	peer.Spec.Filters = []string{"tor"}
	peer.Spec.Password = &v3.BGPPassword{SecretKeyRef: &v3.SecretKeySelector{Name: "bgp-secrets", Key: "tor"}}
	bgpcfg := v3.NewBGPConfiguration()
	bgpcfg.Name = "default"
	bgpcfg.Spec.Communities = []v3.Community{{Name: "rack-a", Value: "65000:100"}}
	bgpcfg.Spec.PrefixAdvertisements = []v3.PrefixAdvertisement{{CIDR: "10.65.1.0/26", Communities: []string{"rack-a", "65000:200:1"}}}
	l.create(filter, peer, bgpcfg)
	for _, h := range l.hosts {
		h.start()
	}
	w1 := h1.addWorkload("10.65.1.5")
	h1.addWorkload("10.65.9.5") // in the pool, outside every block, filtered towards the ToR
	w2 := h2.addWorkload("10.65.2.5")

	global, mesh := bgpstatus.PeerTypeGlobal, bgpstatus.PeerTypeMesh
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.2": global, "172.31.255.12": mesh})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.2": global, "172.31.255.11": mesh})

	// BIRD's route in our kernels; the filtered one is not.
	waitRoutes(t, 20*time.Second, map[*host][]want{
		h1: {{dst: "203.0.113.0/24", gw: "172.31.255.2"}},
		h2: {{dst: "203.0.113.0/24", gw: "172.31.255.2"}, {dst: "10.65.9.5/32", gw: "172.31.255.11"}},
	})
	for _, h := range l.hosts {
		if err := h.noRoute("198.51.100.0/24"); err != nil {
			t.Errorf("import filter: %v", err)
		}
	}
	// Our routes in BIRD, from the host that owns them; not the filtered /32.
	waitFor(t, 20*time.Second, "routes in BIRD", func() error {
		out, err := exec.Command(birdc, "-s", sock, "show", "route").CombinedOutput()
		if err != nil {
			return fmt.Errorf("birdc: %w: %s", err, out)
		}
		for _, p := range []string{"10.65.1.0/26", "10.65.2.0/26"} {
			if !strings.Contains(string(out), p) {
				return fmt.Errorf("BIRD has no %s:\n%s", p, out)
			}
		}
		if strings.Contains(string(out), "10.65.9.5/32") {
			return fmt.Errorf("BIRD got the filtered 10.65.9.5/32:\n%s", out)
		}
		return nil
	})
	// Communities from prefixAdvertisements reach BIRD.
	waitFor(t, 10*time.Second, "communities in BIRD", func() error {
		out, err := exec.Command(birdc, "-s", sock, "show", "route", "for", "10.65.1.0/26", "all").CombinedOutput()
		if err != nil {
			return fmt.Errorf("birdc: %w: %s", err, out)
		}
		if !strings.Contains(string(out), "(65000,100)") || !strings.Contains(string(out), "(65000, 200, 1)") {
			return fmt.Errorf("no communities on 10.65.1.0/26:\n%s", out)
		}
		return nil
	})

	// A changed filter applies without resetting any session (see
	// TestBGPFilterEditWithoutSessionReset for the ToR's sessions).
	meshSince := peerSince(t, h1, "172.31.255.12")
	time.Sleep(1100 * time.Millisecond) // since has a one-second resolution
	f, err := l.c.BGPFilters().Get(context.Background(), "", "tor")
	if err != nil {
		t.Fatal(err)
	}
	f.Spec.ExportV4 = append(f.Spec.ExportV4, v3.BGPFilterRuleV4{Action: v3.BGPFilterActionReject, MatchOperator: v3.MatchOperatorEqual, CIDR: "10.65.2.0/26"})
	if _, err := l.c.BGPFilters().Update(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "10.65.2.0/26 filtered towards BIRD", func() error {
		out, err := exec.Command(birdc, "-s", sock, "show", "route").CombinedOutput()
		if err != nil {
			return fmt.Errorf("birdc: %w: %s", err, out)
		}
		if strings.Contains(string(out), "10.65.2.0/26") || !strings.Contains(string(out), "10.65.1.0/26") {
			return fmt.Errorf("BIRD table:\n%s", out)
		}
		return nil
	})
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.2": global, "172.31.255.12": mesh})
	if after := peerSince(t, h1, "172.31.255.12"); after != meshSince {
		t.Errorf("mesh session was reset by a ToR filter change: since %s -> %s", meshSince, after)
	}

	// Traffic to the ToR's address and back through BIRD's kernel routes.
	waitFor(t, 20*time.Second, "TCP to 203.0.113.1", func() error {
		return dialFrom(w1.ns, netip.MustParseAddrPort("203.0.113.1:7777"))
	})
	reaches(t, w1, w2)
}

// sbin finds a tool on PATH or in /usr/sbin, /sbin ("" if missing).
func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	return ""
}
