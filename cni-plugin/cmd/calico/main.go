// Command calico is Calico's CNI plugin over etcd: see package plugin.
package main

import (
	"github.com/calico-etcd/calico/cni-plugin/pkg/plugin"
)

func main() { plugin.Main() }
