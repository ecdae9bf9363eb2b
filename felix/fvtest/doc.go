// Package fvtest holds felix's functional tests: the real calico-felix
// binary, an embedded etcd and real traffic between workload network
// namespaces joined to a "host" namespace by cali veths. They need root;
// see TestMain for how the namespaces are arranged.
package fvtest
