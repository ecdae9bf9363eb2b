// Package etcdrestore saves snapshots of a testutil.Etcd and restores them
// into it, as an operator does with `etcdctl snapshot save` and `etcdutl
// snapshot restore`. It is apart from testutil so that only the tests that
// restore link etcdutl.
package etcdrestore

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/calico-etcd/calico/testutil"
)

// DefaultClusterToken is the token the embedded etcd is bootstrapped with.
// Restoring with it keeps the cluster ID; any other gives a new one.
const DefaultClusterToken = "etcd-cluster"

// Save writes a snapshot of e's data to path (clientv3 Maintenance.Snapshot).
func Save(ctx context.Context, e *testutil.Etcd, path string) error {
	cfg := clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if e.TLS != nil {
		tc, err := e.TLS.ClientConfig()
		if err != nil {
			return err
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("requesting a snapshot: %w", err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("receiving the snapshot: %w", err)
	}
	return f.Close()
}

// Restore stops e, restores the snapshot at path into a fresh data
// directory for the same member, and starts e on it, on the same URLs.
// The store's revision goes back to the snapshot's; token is the restored
// cluster's (DefaultClusterToken keeps the cluster ID).
func Restore(e *testutil.Etcd, path, token string) error {
	return e.ReplaceData(func(dataDir, name, peerURL string) error {
		return snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
			SnapshotPath:        path,
			Name:                name,
			OutputDataDir:       dataDir,
			PeerURLs:            []string{peerURL},
			InitialCluster:      name + "=" + peerURL,
			InitialClusterToken: token,
		})
	})
}
