// Command calicoctl is not implemented yet: it answers --version and exits.
package main

import (
	"os"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
)

func main() { os.Exit(buildinfo.NotImplemented("calicoctl", os.Args[1:], os.Stdout, os.Stderr)) }
