package nodeinfo

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/client"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResolveNamePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nodename")
	host := func() (string, error) { return "Host-A", nil }

	got, err := ResolveName(NameSource{Getenv: env(nil), File: file, Hostname: host})
	if err != nil || got != "host-a" {
		t.Fatalf("hostname fallback = %q, %v; want host-a", got, err)
	}
	if err := WriteNameFile(file, "from-file"); err != nil {
		t.Fatal(err)
	}
	got, _ = ResolveName(NameSource{Getenv: env(nil), File: file, Hostname: host})
	if got != "from-file" {
		t.Fatalf("file = %q, want from-file", got)
	}
	got, _ = ResolveName(NameSource{Getenv: env(map[string]string{"NODENAME": "env-node"}), File: file, Hostname: host})
	if got != "env-node" {
		t.Fatalf("env = %q, want env-node", got)
	}
	if data, _ := os.ReadFile(file); string(data) != "from-file\n" {
		t.Fatalf("file content %q", data)
	}
}

var fakeIfaces = []Interface{
	{Name: "lo", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}},
	{Name: "docker0", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("172.17.0.1/16")}},
	{Name: "eth9", Up: false, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.9/24")}},
	{Name: "eth0", Up: true, Addrs: []netip.Prefix{
		netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("172.31.255.11/24"), netip.MustParsePrefix("fd00::11/64"),
	}},
	{Name: "eth1", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.5/16")}},
}

func fakeDetector() Detector {
	return Detector{
		Interfaces: func() ([]Interface, error) { return fakeIfaces, nil },
		SourceFor: func(_ context.Context, dst netip.Addr) (netip.Addr, error) {
			if netip.MustParsePrefix("10.9.0.0/16").Contains(dst) {
				return netip.MustParseAddr("10.9.0.5"), nil
			}
			return netip.MustParseAddr("172.31.255.11"), nil
		},
	}
}

func TestResolveSpecs(t *testing.T) {
	d := fakeDetector()
	for _, tc := range []struct {
		spec, method string
		v6           bool
		want         string
		err          bool
	}{
		{spec: "autodetect", want: "172.31.255.11/24"},
		{spec: "", want: "172.31.255.11/24"},
		{spec: "autodetect", v6: true, want: "fd00::11/64"},
		{spec: "can-reach=10.9.8.7", want: "10.9.0.5/16"},
		{spec: "autodetect", method: "can-reach=10.9.8.7", want: "10.9.0.5/16"},
		{spec: "autodetect", method: "interface=eth1", want: "10.9.0.5/16"},
		{spec: "autodetect", method: "skip-interface=eth0", want: "10.9.0.5/16"},
		{spec: "10.9.0.5", want: "10.9.0.5/16"},
		{spec: "198.51.100.7", want: "198.51.100.7/32"},
		{spec: "198.51.100.7/26", want: "198.51.100.7/26"},
		{spec: "none", want: "invalid Prefix"},
		{spec: "fd00::11", want: "fd00::11/128", err: true},
		{spec: "bogus", err: true},
		{spec: "autodetect", method: "interface=nothing", err: true},
		// cidr=: the first address inside a CIDR, default exclusions not
		// applied (docker0 qualifies), down interfaces skipped.
		{spec: "autodetect", method: "cidr=10.9.0.0/16", want: "10.9.0.5/16"},
		{spec: "autodetect", method: "cidr=192.0.2.0/24, 10.0.0.0/8", want: "10.9.0.5/16"},
		{spec: "autodetect", method: "cidr=172.17.0.0/16", want: "172.17.0.1/16"},
		{spec: "autodetect", method: "cidr=fd00::/16", v6: true, want: "fd00::11/64"},
		{spec: "autodetect", method: "cidr=192.0.2.0/24", err: true},
		{spec: "autodetect", method: "cidr=10.9.0.5", err: true},
		{spec: "autodetect", method: "kubernetes-internal-ip", err: true},
	} {
		p, err := d.Resolve(context.Background(), tc.spec, tc.method, tc.v6)
		if tc.err {
			if err == nil {
				t.Errorf("Resolve(%q, %q) = %v, want error", tc.spec, tc.method, p)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("Resolve(%q, %q, v6=%v) = %v, %v; want %s", tc.spec, tc.method, tc.v6, p, err, tc.want)
		}
	}
	if _, err := d.Detect(context.Background(), "interface=nothing", false); !errors.Is(err, ErrNoAddress) {
		t.Errorf("no match error = %v, want ErrNoAddress", err)
	}
}

func TestRegisterCreatesAndUpdates(t *testing.T) {
	ctx := context.Background()
	c := client.New(memory.New())
	l := logrus.New()
	l.SetOutput(io.Discard)
	r := Registrar{Client: c, Detector: fakeDetector(), Log: logrus.NewEntry(l)}

	n, err := r.Register(ctx, Options{Name: "node-a", IPv4: "autodetect", ASNumber: "65001"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.BGP == nil || n.Spec.BGP.IPv4Address != "172.31.255.11/24" || *n.Spec.BGP.ASNumber != 65001 || n.Spec.BGP.IPv6Address != "" {
		t.Fatalf("created node BGP = %+v", n.Spec.BGP)
	}
	rv := n.ResourceVersion

	// Empty specs keep what is stored; nothing is written.
	n, err = r.Register(ctx, Options{Name: "node-a"})
	if err != nil || n.ResourceVersion != rv || n.Spec.BGP.IPv4Address != "172.31.255.11/24" {
		t.Fatalf("no-op register = %+v rv %s (was %s), %v", n.Spec.BGP, n.ResourceVersion, rv, err)
	}

	// An explicit address and IPv6 autodetect update it; the AS is kept.
	n, err = r.Register(ctx, Options{Name: "node-a", IPv4: "10.9.0.5", IPv6: "autodetect"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.BGP.IPv4Address != "10.9.0.5/16" || n.Spec.BGP.IPv6Address != "fd00::11/64" || *n.Spec.BGP.ASNumber != 65001 {
		t.Fatalf("updated node BGP = %+v", n.Spec.BGP)
	}
	got, err := c.Nodes().Get(ctx, "", "node-a")
	if err != nil || got.Spec.BGP.IPv4Address != "10.9.0.5/16" {
		t.Fatalf("stored = %+v, %v", got.Spec.BGP, err)
	}

	// none for both families and no AS leaves no BGP spec at all.
	n, err = r.Register(ctx, Options{Name: "node-b", IPv4: "none"})
	if err != nil || n.Spec.BGP != nil {
		t.Fatalf("none register = %+v, %v", n.Spec.BGP, err)
	}
	if _, err := r.Register(ctx, Options{Name: "node-c", ASNumber: "x"}); err == nil {
		t.Fatal("bad AS accepted")
	}
}

func TestRegisterKeepsOtherFields(t *testing.T) {
	ctx := context.Background()
	c := client.New(memory.New())
	node := v3.NewNode()
	node.Name = "node-rr"
	node.Labels = map[string]string{"route-reflector": "true"}
	node.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "172.31.255.11/24", RouteReflectorClusterID: "224.0.0.1"}
	if _, err := c.Nodes().Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	r := Registrar{Client: c, Detector: fakeDetector(), Log: logrus.NewEntry(logrus.New())}
	n, err := r.Register(ctx, Options{Name: "node-rr", IPv4: "10.9.0.5/16"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.BGP.RouteReflectorClusterID != "224.0.0.1" || n.Labels["route-reflector"] != "true" {
		t.Fatalf("lost fields: %+v %v", n.Spec.BGP, n.Labels)
	}
}

// TestRegisterK8sNodeRef sets the Kubernetes orchRef from
// CALICO_K8S_NODE_REF, replacing an old one and keeping other
// orchestrators' refs, and writes nothing when it is already there.
func TestRegisterK8sNodeRef(t *testing.T) {
	ctx := context.Background()
	c := client.New(memory.New())
	l := logrus.New()
	l.SetOutput(io.Discard)
	r := Registrar{Client: c, Detector: fakeDetector(), Log: logrus.NewEntry(l)}

	o := OptionsFromEnv("node-k", env(map[string]string{"IP": "10.9.0.5/16", "CALICO_K8S_NODE_REF": " k8s-node-1 "}))
	if o.K8sNodeRef != "k8s-node-1" {
		t.Fatalf("options %+v", o)
	}
	n, err := r.Register(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := []v3.OrchRef{{Orchestrator: "k8s", NodeName: "k8s-node-1"}}; !slices.Equal(n.Spec.OrchRefs, want) {
		t.Fatalf("orchRefs %+v", n.Spec.OrchRefs)
	}
	rv := n.ResourceVersion
	if n, err = r.Register(ctx, o); err != nil || n.ResourceVersion != rv {
		t.Fatalf("unchanged register wrote: rv %s (was %s), %v", n.ResourceVersion, rv, err)
	}

	// Another orchestrator's ref stays; a stale k8s ref (and a duplicate)
	// becomes the new one.
	n.Spec.OrchRefs = []v3.OrchRef{{Orchestrator: "openstack", NodeName: "nova-1"}, {Orchestrator: "k8s", NodeName: "old"}, {Orchestrator: "k8s", NodeName: "dup"}}
	if _, err := c.Nodes().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	o.K8sNodeRef = "k8s-node-2"
	if n, err = r.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	if want := []v3.OrchRef{{Orchestrator: "openstack", NodeName: "nova-1"}, {Orchestrator: "k8s", NodeName: "k8s-node-2"}}; !slices.Equal(n.Spec.OrchRefs, want) {
		t.Fatalf("orchRefs %+v", n.Spec.OrchRefs)
	}

	// Without the variable, refs are left as they are.
	o.K8sNodeRef = ""
	if n, err = r.Register(ctx, o); err != nil || len(n.Spec.OrchRefs) != 2 {
		t.Fatalf("orchRefs %+v, %v", n.Spec.OrchRefs, err)
	}
}
