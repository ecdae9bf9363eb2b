// Package layering holds the workspace's import rules as a test: every
// module may import libcalico and itself, nothing else of the workspace,
// so no daemon imports another and libcalico imports no daemon; and the
// API types import no datastore, kernel or CLI library.
package layering
