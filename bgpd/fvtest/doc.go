// Package fvtest holds bgpd's and confd's functional tests: the real
// calico-confd and calico-bgpd binaries (built by TestMain) on hosts that
// are network namespaces.
//
//	┌──────────── bridge netns ─────────────┐
//	│ br0 172.31.255.254/24 (etcd proxy)     │ br1
//	└──┬────────┬────────┬────────┬──────────┘  │
//	 h1 .11   h2 .12   tor .2   router .1 ── .1 ┴── h3 172.31.254.10
//
// etcd is the embedded test server on 127.0.0.1 in the root namespace. The
// daemons inside the host namespaces reach it through a TCP proxy whose
// listening socket was created inside the bridge namespace, on
// 172.31.255.254 (an address of a namespace the test made), and which
// dials 127.0.0.1 from the root namespace. Hosts behind the router reach
// the proxy through it. No address outside the test's namespaces is used.
//
// Workloads are namespaces joined to their host by a veth named cali…,
// with the route felix would program (<ip>/32 dev caliX scope link proto
// 3); traffic is checked with TCP connections made from inside them, and
// gaps with ICMP echo streams every 10 ms whose lost answers are counted.
//
// Other speakers run in namespaces of their own: BIRD 2 as a ToR, or as a
// Calico node configured by testdata/calico-node-bird2.conf.tmpl (Calico's
// template in BIRD 2 syntax, rendered with text/template as confd renders
// it), and Debian's gobgpd as a peer without graceful restart.
package fvtest
