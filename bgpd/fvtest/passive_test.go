package fvtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

// writeSecret stores a BGP password where confd's file-backed secrets
// find it: <secrets-dir>/<name>/<key>.
func (l *lab) writeSecret(name, key, value string) {
	l.t.Helper()
	dir := filepath.Join(l.dir, "secrets", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, key), []byte(value+"\n"), 0o600); err != nil {
		l.t.Fatal(err)
	}
}

// twoHosts is h1 and h2 on segment A with a pool and a block each.
func twoHosts(t *testing.T) (*lab, *host, *host) {
	l := newLab(t, false)
	h1 := l.addHost("h1", "a", "172.31.255.11")
	h2 := l.addHost("h2", "a", "172.31.255.12")
	l.create(ipPool("pool", "10.65.0.0/16"))
	l.affinity("h1", "10.65.1.0/26")
	l.affinity("h2", "10.65.2.0/26")
	return l, h1, h2
}

// TestMD5PassiveSide: a node-to-node mesh with nodeMeshPassword. Exactly
// one side of every mesh session listens (is passive), so the TCP MD5 key
// must be set on bgpd's listening socket too. Go makes listeners
// Multipath TCP by default, and an MPTCP socket refuses TCP_MD5SIG, so
// the passive side used to drop the signed connections and the mesh never
// came up.
func TestMD5PassiveSide(t *testing.T) {
	l, h1, h2 := twoHosts(t)
	l.writeSecret("bgp-secrets", "mesh", "mesh-s3cret")
	cfg := v3.NewBGPConfiguration()
	cfg.Name = "default"
	cfg.Spec.NodeMeshPassword = &v3.BGPPassword{SecretKeyRef: &v3.SecretKeySelector{Name: "bgp-secrets", Key: "mesh"}}
	l.create(cfg)
	h1.start()
	h2.start()
	w1 := h1.addWorkload("10.65.1.5")
	w2 := h2.addWorkload("10.65.2.5")

	mesh := bgpstatus.PeerTypeMesh
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.12": mesh})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.11": mesh})
	reaches(t, w1, w2)
	reaches(t, w2, w1)
}

// TestTTLSecurityPassiveSide: mesh off, every node peers with every other
// through one BGPPeer with ttlSecurity 1 (GTSM). The passive side must
// send with TTL 255 and accept only TTL 255 on its listening socket; on a
// Multipath TCP listener those socket options fail.
func TestTTLSecurityPassiveSide(t *testing.T) {
	l, h1, h2 := twoHosts(t)
	off := false
	cfg := v3.NewBGPConfiguration()
	cfg.Name = "default"
	cfg.Spec.NodeToNodeMeshEnabled = &off
	hops := uint8(1)
	peer := v3.NewBGPPeer()
	peer.Name = "all-nodes-gtsm"
	peer.Spec.PeerSelector = "all()"
	peer.Spec.TTLSecurity = &hops
	l.create(cfg, peer)
	h1.start()
	h2.start()
	w1 := h1.addWorkload("10.65.1.5")
	w2 := h2.addWorkload("10.65.2.5")

	global := bgpstatus.PeerTypeGlobal
	h1.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.12": global})
	h2.waitEstablished(t, 30*time.Second, map[string]string{"172.31.255.11": global})
	reaches(t, w1, w2)
	reaches(t, w2, w1)
}
