// Command calico-ipam is Calico's IPAM CNI plugin over etcd.
package main

import (
	_ "github.com/calico-etcd/calico/cni-plugin/internal/hugeheap" // first: see its doc
	"github.com/calico-etcd/calico/cni-plugin/pkg/ipamplugin"
)

func main() { ipamplugin.Main() }
