// Package layering holds the workspace's import rules as a test: every
// module may import libcalico and itself, nothing else of the workspace,
// so no daemon imports another and libcalico imports no daemon; testutil
// (embedded etcd and other test helpers) imports no other module and is
// imported only by test code and the lab, so libcalico and the daemons
// build without the etcd server; and the API types import no datastore,
// kernel or CLI library.
package layering
