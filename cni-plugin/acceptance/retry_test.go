package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/testutil"

	"github.com/calico-etcd/calico/cni-plugin/internal/nettest"
)

// issue 23 item 4: the calico plugin is killed (SIGKILL, as libcni does
// when the runtime's context ends) at random points of ADD; the runtime's
// retry with the same container ID succeeds, the pod pings the host, and
// nothing is duplicated: one veth, one endpoint, the handle's one
// address. DEL then leaves the host and the datastore clean. With the
// agent, the killed calico binary's request is cancelled there, and the
// retry waits for it to stop.
func TestKilledAddIsRetried(t *testing.T) {
	for _, agent := range []bool{false, true} {
		t.Run(fmt.Sprintf("agent=%v", agent), func(t *testing.T) { killedAddIsRetried(t, agent) })
	}
}

func killedAddIsRetried(t *testing.T, agent bool) {
	h := newHost(t)
	if agent {
		h.startAgent()
	}
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{})
	// Claim the block, and time warm ADDs: the kill points spread over
	// the quickest, mostly past the process's start-up, where the work is.
	warm := h.newPod("7777ffff", "")
	h.mustAdd(l, warm)
	h.mustDel(l, warm)
	d := time.Hour
	for range 3 {
		start := time.Now()
		h.mustAdd(l, warm)
		d = min(d, time.Since(start))
		h.mustDel(l, warm)
	}

	const tries = 30
	var killed, leftVeth, leftAddr, leftWEP int
	ctx := context.Background()
	for i := range tries {
		k8sName := ""
		if i%2 == 1 {
			k8sName = fmt.Sprintf("prod/kill-%d", i)
		}
		p := h.newPod(fmt.Sprintf("7777%04d", i), k8sName)
		kctx, cancel := context.WithTimeout(ctx, d/4+time.Duration(rand.Int64N(int64(d))))
		err := h.in(func() error { _, err := h.cni.AddNetworkList(kctx, l, p.rt); return err })
		cancel()
		if err != nil {
			killed++
			out, _ := h.ns.Output("ip", "-o", "link")
			leftVeth += strings.Count(out, "cali")
			if ips, _ := h.ic.IPsByHandle(ctx, netName+"."+p.rt.ContainerID); len(ips) > 0 {
				leftAddr++
			}
			if weps, _, _ := h.c.WorkloadEndpoints().List(ctx, client.ListOptions{}); len(weps) > 0 {
				leftWEP++
			}
		}

		h.mustAdd(l, p) // the runtime's retry
		ping(t, p, nettest.HostIPv4.String())
		if out, _ := h.ns.Output("ip", "-o", "link"); strings.Count(out, "cali") != 1 {
			t.Errorf("%s: host veths after the retry:\n%s", p.rt.ContainerID, out)
		}
		if ips, err := h.ic.IPsByHandle(ctx, netName+"."+p.rt.ContainerID); err != nil || len(ips) != 1 || ips[0].String() != p.addr(false) {
			t.Errorf("%s: the handle holds %v (%v), the result says %s", p.rt.ContainerID, ips, err, p.addr(false))
		}
		if weps, _, err := h.c.WorkloadEndpoints().List(ctx, client.ListOptions{}); err != nil || len(weps) != 1 ||
			weps[0].Spec.ContainerID != p.rt.ContainerID || weps[0].Spec.MAC != p.res.Interfaces[1].Mac {
			t.Errorf("%s: endpoints after the retry: %d (%v)", p.rt.ContainerID, len(weps), err)
		}
		if err := h.check(l, p); err != nil {
			t.Errorf("%s: CHECK after the retry: %v", p.rt.ContainerID, err)
		}
		h.mustDel(l, p)
		h.assertClean()
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d of %d ADDs killed %v to %v in; they left a veth %d times, addresses %d, an endpoint %d",
		killed, tries, d/4, d*5/4, leftVeth, leftAddr, leftWEP)
}

// cniErr is a plugin's error answer on stdout.
type cniErr struct {
	Code uint   `json:"code"`
	Msg  string `json:"msg"`
}

// execPlugin runs one plugin binary in the host namespace, as a runtime
// would, and returns its error answer (zero if it succeeded).
func (h *hostEnv) execPlugin(t *testing.T, name, verb, containerID string, stdin []byte) cniErr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // does not hang
	defer cancel()
	var stdout bytes.Buffer
	err := h.in(func() error {
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, name))
		cmd.Env = []string{"CNI_COMMAND=" + verb, "CNI_CONTAINERID=" + containerID, "CNI_NETNS=/var/run/netns/absent-" + containerID,
			"CNI_IFNAME=eth0", "CNI_PATH=" + binDir}
		cmd.Stdin, cmd.Stdout = bytes.NewReader(stdin), &stdout
		return cmd.Run()
	})
	if err == nil {
		return cniErr{}
	}
	var e cniErr
	if jerr := json.Unmarshal(stdout.Bytes(), &e); jerr != nil {
		t.Fatalf("%s %s failed (%v) without a CNI error: %q", name, verb, err, stdout.String())
	}
	return e
}

// issue 23 item 9: calico (through its agent), calico-direct and
// calico-ipam answer the same faults with the same CNI codes (calico-ipam
// used to say 999 where calico said 7 or 11), and refuse bad input before
// any datastore work.
func TestBinariesAgreeOnErrorCodes(t *testing.T) {
	t.Parallel() // mostly waiting for etcd's timeout
	h := newHost(t)
	a := h.startAgent()
	h.addPool("pool4", poolV4, 26)
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := func(typ string, mod map[string]any) []byte {
		c := map[string]any{"cniVersion": "1.1.0", "name": netName, "type": typ, "nodename": nodeName,
			"etcd_endpoints": h.etcd.Endpoint, "log_level": "error", "ipam_lock_file": filepath.Join(h.dir, "ipam.lock"),
			"ipam": map[string]any{"type": "calico-ipam"}}
		for k, v := range mod {
			c[k] = v
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, verb, id string
		mod            map[string]any
		raw            string
		code           uint
		msg            string
	}{
		{name: "etcd down", verb: "DEL", id: "c1", mod: map[string]any{"etcd_endpoints": fmt.Sprintf("http://127.0.0.1:%d", port)}, code: 11, msg: "datastore unavailable"},
		{name: "endpoint without a host", verb: "ADD", id: "c1", mod: map[string]any{"etcd_endpoints": "http://"}, code: 7, msg: `"http://"`},
		{name: "invalid node name", verb: "ADD", id: "c1", mod: map[string]any{"nodename": "Node_A"}, code: 7, msg: `"Node_A"`},
		{name: "invalid ipam", verb: "ADD", id: "c1", mod: map[string]any{"ipam": map[string]any{"type": "calico-ipam", "assign_ipv4": "false"}}, code: 7, msg: "neither"},
		{name: "empty container ID", verb: "ADD", id: "", code: 4, msg: "CNI_CONTAINERID"},
		{name: "not JSON", verb: "ADD", id: "c1", raw: `{"name":`, code: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var wg sync.WaitGroup
			got := map[string]cniErr{}
			var mu sync.Mutex
			for _, bin := range []string{"calico", "calico-direct", "calico-ipam"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					in := []byte(tc.raw)
					if tc.raw == "" {
						mod := map[string]any{}
						if bin == "calico" {
							mod["agent_socket"] = h.agentSocket()
						}
						maps.Copy(mod, tc.mod)
						in = conf(bin, mod)
					}
					e := h.execPlugin(t, bin, tc.verb, tc.id, in)
					mu.Lock()
					got[bin] = e
					mu.Unlock()
				}()
			}
			wg.Wait()
			for bin, e := range got {
				if e.Code != tc.code || !strings.Contains(e.Msg, tc.msg) {
					t.Errorf("%s: code %d %q, want %d with %q", bin, e.Code, e.Msg, tc.code, tc.msg)
				}
			}
		})
	}
	t.Cleanup(func() {
		if n := h.countKeys("/calico/ipam/v2/"); n != 0 {
			t.Errorf("%d IPAM keys written by refused requests", n)
		}
		// All but the empty container ID and the bad JSON, which the
		// calico binary refuses itself.
		if n := strings.Count(a.log(), "Served"); n != 4 {
			t.Errorf("the agent served %d requests, want 4:\n%s", n, a.log())
		}
		if n := strings.Count(a.log(), "level=warning msg=\"Request failed\""); n != 4 {
			t.Errorf("the agent logged %d failed requests, want 4:\n%s", n, a.log())
		}
	})
}
