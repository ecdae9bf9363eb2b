package commands

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/libcalico/nodedelete"
)

// warnLog is a logger for library calls, to stderr: at the level -l
// gives, else warnings and errors.
func (env *Env) warnLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(env.Stderr)
	l.SetLevel(logrus.WarnLevel)
	if lvl, err := logrus.ParseLevel(env.LogLevel); err == nil && env.LogLevel != "" {
		l.SetLevel(lvl)
	}
	return logrus.NewEntry(l)
}

// deleteNode deletes a Node with everything that belongs to it (package
// nodedelete), as Calico's calicoctl does; rv, from a file, must be the
// Node's resourceVersion. A Node that does not exist gives the not-found
// error of any other kind, after what it left behind (endpoints,
// addresses, ...) is removed and, if there was any, reported.
func (env *Env) deleteNode(ctx context.Context, c *client.Client, name, rv string) error {
	log := env.warnLog()
	ic, err := ipam.New(c.Backend(), log, ipam.Options{})
	if err != nil {
		return err
	}
	res, err := nodedelete.DeleteWithOptions(ctx, c, ic, name, nodedelete.Options{ResourceVersion: rv}, log)
	if err != nil {
		return err
	}
	if res.NodeDeleted {
		return nil
	}
	if res.Leftovers() {
		fmt.Fprintf(env.Stdout, "Node %s does not exist; removed what it left behind: %s.\n", name, res.Summary())
	}
	return &cerrors.NotFound{Key: model.ResourceKey{Kind: v3.KindNode, Name: name}.String()}
}
