// Command calico-lab runs a Calico cluster on one machine (see package
// deploy/lab/internal/lab).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"

	"github.com/calico-etcd/calico/deploy/lab/internal/cli"
	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
)

func main() {
	// The members of a multi-member lab etcd (up --etcd-members) are
	// this program again, running etcd's own main.
	if len(os.Args) > 1 && os.Args[1] == lab.EtcdMemberArg {
		etcdmain.Main(append([]string{"etcd"}, os.Args[2:]...))
		return
	}
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
