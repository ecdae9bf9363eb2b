// Command calico-direct is the whole calico CNI plugin in one process
// (see package plugin): what the calico binary runs when no
// calico-cni-agent answers.
package main

import "github.com/calico-etcd/calico/cni-plugin/pkg/plugin"

func main() { plugin.Main() }
