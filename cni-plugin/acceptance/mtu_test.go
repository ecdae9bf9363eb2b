package acceptance

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mtuOf returns the MTU of iface in the pod's namespace.
func mtuOf(t *testing.T, p *pod, iface string) int {
	t.Helper()
	out, err := p.ns.Output("cat", "/sys/class/net/"+iface+"/mtu")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	return n
}

// TestPodMTUFromFelixFile: with no mtu in the configuration, ADD gives
// the pod (and its host veth) the MTU felix wrote; without the file the
// kernel's 1500; an mtu in the configuration wins; require_mtu_file
// makes a missing file an error that leaves nothing behind. Pings with
// the don't-fragment bit show the MTU is the one in force.
func TestPodMTUFromFelixFile(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	file := filepath.Join(h.dir, "mtu")
	l := h.list(netConf{})

	a := h.newPod("mtu00001", "")
	h.mustAdd(l, a)
	if got := mtuOf(t, a, "eth0"); got != 1500 {
		t.Errorf("no MTU file: pod MTU %d, want 1500", got)
	}

	if err := os.WriteFile(file, []byte("1410"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, c := h.newPod("mtu00002", ""), h.newPod("mtu00003", "")
	h.mustAdd(l, b)
	h.mustAdd(l, c)
	if got := mtuOf(t, b, "eth0"); got != 1410 {
		t.Errorf("MTU file 1410: pod MTU %d", got)
	}
	if b.res.Interfaces[1].Mtu != 1410 || b.res.Interfaces[0].Mtu != 1410 {
		t.Errorf("result interfaces %+v %+v", b.res.Interfaces[0], b.res.Interfaces[1])
	}
	host, _ := h.ns.Output("ip", "-o", "link", "show", b.res.Interfaces[0].Name)
	if !strings.Contains(host, "mtu 1410") {
		t.Errorf("host veth: %s", host)
	}
	// 1410 - 28 bytes of IP and ICMP headers fit; one more does not.
	if err := c.ns.Exec("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1382", b.addr(false)); err != nil {
		t.Errorf("full-size ping: %v", err)
	}
	if err := c.ns.Exec("ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1383", b.addr(false)); err == nil {
		t.Error("a ping larger than the pod MTU went through unfragmented")
	}

	d := h.newPod("mtu00004", "")
	h.mustAdd(h.list(netConf{extraConf: map[string]any{"mtu": 1300}}), d)
	if got := mtuOf(t, d, "eth0"); got != 1300 {
		t.Errorf("mtu 1300 in the configuration: pod MTU %d", got)
	}

	if err := os.WriteFile(file, []byte("lots"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.add(l, h.newPod("mtu00005", "")); err == nil || !strings.Contains(err.Error(), "not an MTU") {
		t.Errorf("ADD with a garbage MTU file: %v", err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	req := h.list(netConf{extraConf: map[string]any{"require_mtu_file": true}})
	if err := h.add(req, h.newPod("mtu00006", "")); err == nil || !strings.Contains(err.Error(), "require_mtu_file") {
		t.Errorf("ADD with require_mtu_file and no file: %v", err)
	}
	for _, p := range []*pod{a, b, c} {
		h.mustDel(l, p)
	}
	h.mustDel(l, d)
	h.assertClean()
}
