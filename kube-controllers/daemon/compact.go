package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// compact compacts etcd's history every period, up to the revision seen
// one period earlier, as Calico's kube-controllers does in etcd mode:
// watchers always have a period's worth of history to resume from.
func compact(ctx context.Context, cli *clientv3.Client, period time.Duration, log *logrus.Entry) {
	t := time.NewTicker(period)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := cli.Get(cctx, "/calico/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && last > 0 {
			_, err = cli.Compact(cctx, last)
			if errors.Is(err, rpctypes.ErrCompacted) {
				err = nil
			}
			if err == nil {
				log.WithField("revision", last).Info("compacted etcd")
			}
		}
		cancel()
		if err != nil {
			log.WithError(err).Warn("etcd compaction failed; will retry next period")
			continue
		}
		last = resp.Header.Revision
	}
}
