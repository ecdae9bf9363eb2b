// Package netpol checks Kubernetes NetworkPolicy with real traffic: it
// reproduces the truth-table cases of Kubernetes' own NetworkPolicy e2e
// suite (test/e2e/network/netpol/network_policy.go, v1.34.4) against a
// lab with Kubernetes (lab.Up with Kubernetes: true), where
// calico-kube-controllers turns each NetworkPolicy into a Calico policy in
// etcd and felix enforces it. The package has only tests and benchmarks.
//
// The model is upstream's: namespaces x, y and z (labelled, as upstream's
// are, kubernetes.io/metadata.name by the API server, e2e-run and the
// pod-security labels at baseline), pods a, b and c in each (label
// pod=<name>, and the lab's lab=pod), each answering TCP and UDP on ports
// 80 and 81, with ports named serve-<port>-<tcp|udp>. Pods a run on host1,
// b on host2 and c on host3, so 54 of the 72 pairs cross hosts:
//
//	host1: x/a y/a z/a     host2: x/b y/b z/b     host3: x/c y/c z/c
//
// Every case probes all 72 pairs (loopback is not probed; upstream
// ignores it) on one port and protocol, from inside the client pod's
// network namespace to the server pod's IP, and compares the whole matrix
// with the expected one, retrying the whole matrix for up to 20 s. On a
// mismatch it prints the expected, observed and comparison truth tables
// as upstream does ("." reachable or equal, "X" blocked or different).
//
// Differences from upstream: one lab and one set of pods serve every case
// (upstream makes fresh namespaces per case); between cases every
// NetworkPolicy in x, y and z is deleted, changed labels are restored, and
// the next case waits until etcd holds no knp.default.* policy there and
// the endpoints' and profiles' labels are back, then until every pair
// answers on the case's ports. Probes go to pod IPs, not to Services (the
// lab runs no kube-proxy). The SCTP cases that probe with SCTP are skipped:
// this kernel has no SCTP sockets (CONFIG_IP_SCTP is not set) and labnet
// serves only TCP and UDP; the two SCTP-policy cases that probe with TCP
// run.
//
// The benchmarks measure, in the same lab, a pod created with kubectl
// until it is Running and answers a probe from another host, and a
// NetworkPolicy created until a probe from another host is blocked, each
// against a lower bound measured in the same run (see bench_test.go).
//
// The tests need root and the Kubernetes programs (deploy/kube/build.sh);
// TestMain runs `make build` first.
package netpol
