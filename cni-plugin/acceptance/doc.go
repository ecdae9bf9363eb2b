// Package acceptance drives the real calico and calico-ipam binaries the
// way kubelet and containerd do: through libcni, with real network
// namespaces and an embedded etcd. It holds only tests and benchmarks.
//
// TestMain builds the plugins into a temporary bin directory, together
// with containernetworking's portmap, ptp and host-local from the module
// cache (for chaining and for the benchmark baseline).
//
// The root network namespace is never touched. Each test makes a "host"
// namespace (nettest.NewHost: an address on lo, a default route out of an
// uplink veth, IPv6 forwarding, as felix leaves a real host) and does all
// of its work from inside it:
//
//   - etcd is started from a thread locked into the host namespace
//     (testutil.NetNS.RunIn), so its listener is 127.0.0.1 of that
//     namespace;
//   - every libcni call runs on a thread locked into the host namespace,
//     so the plugin processes it forks start there and put the host side
//     of each veth, its routes and sysctls (and portmap its iptables
//     rules) in the host namespace, as they would in the root one;
//   - pods are further namespaces, and pings run inside them.
//
// The test process itself reads etcd for its assertions through a small
// TCP forwarder from a root-namespace loopback port into the host
// namespace; that is the only traffic outside the namespaces a test made.
package acceptance
