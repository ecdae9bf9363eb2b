// Command calico-lab runs a Calico cluster on one machine (see package
// deploy/lab/internal/lab).
package main

import (
	"os"

	"github.com/calico-etcd/calico/deploy/lab/internal/cli"
	_ "github.com/calico-etcd/calico/libcalico/api/v3/fastdecode"
)

func main() { os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr)) }
