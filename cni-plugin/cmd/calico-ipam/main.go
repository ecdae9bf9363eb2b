// Command calico-ipam is Calico's IPAM CNI plugin over etcd.
package main

import (
	"github.com/calico-etcd/calico/cni-plugin/pkg/ipamplugin"
)

func main() { ipamplugin.Main() }
