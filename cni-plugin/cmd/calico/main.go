// Command calico is Calico's CNI plugin over etcd: see package plugin.
package main

import (
	_ "github.com/calico-etcd/calico/cni-plugin/internal/hugeheap" // first: see its doc
	"github.com/calico-etcd/calico/cni-plugin/pkg/plugin"
)

func main() { plugin.Main() }
