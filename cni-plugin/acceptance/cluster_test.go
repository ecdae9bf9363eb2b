package acceptance

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/testutil"

	"github.com/calico-etcd/calico/cni-plugin/internal/nettest"
)

// newClusterHost is newHost on a 3-member etcd cluster: the host namespace
// is joined to the members' LAN, so the plugins reach them at their own
// addresses; the test's clients dial through the LAN.
func newClusterHost(t *testing.T, cl *testutil.EtcdCluster) *hostEnv {
	t.Helper()
	testutil.RequireRoot(t)
	h := &hostEnv{t: t, ns: nettest.NewHost(t), dir: t.TempDir()}
	if _, err := cl.Attach(h.ns, "etcd0"); err != nil {
		t.Fatal(err)
	}
	var err error
	h.be, err = etcd.New(etcd.Config{Endpoints: cl.ClientURLs(), Dialer: cl.DialContext, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.be.Close() })
	h.c = client.New(h.be)
	l := logrus.New()
	l.SetOutput(io.Discard)
	if h.ic, err = ipam.New(h.be, logrus.NewEntry(l), ipam.Options{}); err != nil {
		t.Fatal(err)
	}
	node := v3.NewNode()
	node.Name = nodeName
	if _, err := h.c.Nodes().Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	h.cni = libcni.NewCNIConfigWithCacheDir([]string{binDir}, filepath.Join(h.dir, "cni-cache"), nil)
	return h
}

// TestEtcdCluster: ADD and DEL through libcni with etcd_endpoints listing
// a 3-member cluster, through the cluster's faults. While a quorum stands
// (a member killed, stopped or cut off) they succeed and the pods ping
// the host; with the quorum lost an ADD fails with "try again later"
// naming the endpoints, leaving no interface, and its DEL succeeds once
// the cluster is back. In the end IPAM is clean.
func TestEtcdCluster(t *testing.T) {
	cl := testutil.StartEtcdCluster(t, 3)
	h := newClusterHost(t, cl)
	h.addPool("pool4", poolV4, 26)
	l := h.list(netConf{endpoint: cl.Endpoints()})
	var pods []*pod
	n := 0
	newPod := func() *pod {
		n++
		return h.newPod(fmt.Sprintf("c1a5%04d", n), fmt.Sprintf("prod/pod-%d", n))
	}
	addDel := func(t *testing.T) {
		t.Helper()
		p := newPod()
		start := time.Now()
		h.mustAdd(l, p)
		ping(t, p, nettest.HostIPv4.String())
		if len(pods) > 0 {
			h.mustDel(l, pods[0])
			pods = pods[1:]
		}
		pods = append(pods, p)
		t.Logf("ADD, ping and DEL took %v", time.Since(start).Round(time.Millisecond))
	}
	addDel(t)
	addDel(t)

	cl.RunFaults(t, func(t *testing.T, f testutil.ClusterFault) {
		if f.Quorum {
			addDel(t)
			return
		}
		if f.Name != "quorum lost" {
			return // each ADD waits out the timeouts: once is enough
		}
		p := newPod()
		start := time.Now()
		wantErr(t, "ADD without a quorum", h.add(l, p), types.ErrTryAgainLater, "datastore unavailable (etcd endpoints "+cl.Members[0].ClientURL)
		t.Logf("ADD without a quorum failed after %v", time.Since(start).Round(time.Millisecond))
		podHasNoInterface(t, p)
		pods = append(pods, p) // the runtime DELs it once etcd is back
	}, func(t *testing.T, _ testutil.ClusterFault) {
		addDel(t)
	})
	for _, p := range pods {
		h.mustDel(l, p)
	}
	h.assertClean()
}
