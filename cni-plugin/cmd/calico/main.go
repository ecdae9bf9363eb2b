// Command calico is Calico's CNI plugin over etcd as the runtime runs it:
// a small front to calico-cni-agent (see package front).
package main

import "github.com/calico-etcd/calico/cni-plugin/pkg/front"

func main() { front.Main() }
