// Command calicoctl manages Calico resources in an etcd datastore and
// checks the Calico node it runs on. See package commands.
package main

import (
	"os"

	"github.com/calico-etcd/calico/calicoctl/commands"
)

func main() { os.Exit(commands.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
