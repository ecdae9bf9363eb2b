package acceptance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/calico-etcd/calico/cni-plugin/internal/nettest"
)

// served reports whether the agent's log shows it served verb for the
// container itself (not sent back to run directly).
func (a *agentProc) served(verb, id string) bool {
	for _, line := range strings.Split(a.log(), "\n") {
		if strings.Contains(line, "Served") && strings.Contains(line, "command="+verb) &&
			strings.Contains(line, "container="+id) && strings.Contains(line, "direct=false") {
			return true
		}
	}
	return false
}

// The calico binary hands every verb to the host's calico-cni-agent,
// which serves it as calico-direct would: pods ping each other and the
// host, CHECK, STATUS and GC answer, DEL leaves nothing.
func TestAgentServesEveryVerb(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	h.addPool("pool6", poolV6, 122)
	a := h.startAgent()
	l := h.list(netConf{ipv6: true})
	if err := h.status(l); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	web, job := h.newPod("a9e70001", "prod/web-1"), h.newPod("a9e70002", "")
	h.mustAdd(l, web)
	h.mustAdd(l, job)
	ping(t, web, job.addr(false))
	ping(t, job, web.addr(true))
	ping(t, web, nettest.HostIPv4.String())
	for _, p := range []*pod{web, job} {
		if err := h.check(l, p); err != nil {
			t.Errorf("CHECK %s: %v", p.rt.ContainerID, err)
		}
	}
	if err := h.in(func() error { return h.cni.GCNetworkList(t.Context(), l, nil) }); err != nil {
		t.Errorf("GC: %v", err)
	}
	for _, p := range []*pod{web, job} {
		h.mustDel(l, p)
		h.mustDel(l, p)
	}
	h.assertClean()
	for _, want := range [][2]string{{"STATUS", ""}, {"ADD", "a9e70001"}, {"ADD", "a9e70002"}, {"CHECK", "a9e70001"},
		{"GC", ""}, {"DEL", "a9e70001"}, {"DEL", "a9e70002"}} {
		if !a.served(want[0], want[1]) {
			t.Errorf("the agent did not serve %s %s:\n%s", want[0], want[1], a.log())
		}
	}
}

// Without an agent the calico binary runs calico-direct: none listening
// (a socket left by a killed agent), a delegated IPAM the agent sends
// back. A restarted agent takes the stale socket over.
func TestAgentAbsentRunsDirect(t *testing.T) {
	h := newHost(t)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})
	a := h.startAgent()
	p := h.newPod("a9e71001", "")
	h.mustAdd(l, p)
	a.kill(syscall.SIGKILL)
	if _, err := os.Stat(h.agentSocket()); err != nil {
		t.Fatalf("a killed agent's socket: %v", err)
	}
	q := h.newPod("a9e71002", "")
	h.mustAdd(l, q) // directly
	ping(t, q, p.addr(false))

	a = h.startAgent()
	h.mustDel(l, p)
	h.mustDel(l, q)
	h.assertClean()
	if !a.served("DEL", "a9e71002") {
		t.Errorf("the restarted agent did not serve DEL:\n%s", a.log())
	}

	hl := h.list(netConf{ipam: map[string]any{"type": "host-local", "dataDir": filepath.Join(h.dir, "host-local"),
		"ranges": [][]map[string]string{{{"subnet": "10.66.0.0/24"}}}}})
	r := h.newPod("a9e71003", "")
	h.mustAdd(hl, r)
	ping(t, r, nettest.HostIPv4.String())
	h.mustDel(hl, r)
	if !strings.Contains(a.log(), "direct=true") || a.served("ADD", "a9e71003") {
		t.Errorf("the agent served a delegated IPAM's ADD:\n%s", a.log())
	}

	// A bad agent_socket is refused, naming it, as any bad field is.
	for _, tc := range []struct {
		sock any
		code uint
		msg  string
	}{{"run/agent.sock", 7, `agent_socket "run/agent.sock" is not an absolute path`}, {5, 6, "agent_socket"}} {
		conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": netName, "type": "calico", "nodename": nodeName,
			"etcd_endpoints": h.etcd.Endpoint, "ipam": map[string]any{"type": "calico-ipam"}, "agent_socket": tc.sock})
		if e := h.execPlugin(t, "calico", "ADD", "a9e71004", conf); e.Code != tc.code || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("agent_socket %v: code %d %q, want %d with %q", tc.sock, e.Code, e.Msg, tc.code, tc.msg)
		}
	}
}
