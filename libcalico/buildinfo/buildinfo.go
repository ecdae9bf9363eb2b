// Package buildinfo carries the version stamped into every binary.
package buildinfo

import (
	"fmt"
	"io"
)

// Version and GitCommit are set at link time with -ldflags -X.
var (
	Version   = "v0.1.0-dev"
	GitCommit = "unknown"
)

// String is the one-line version report.
func String(binary string) string {
	return fmt.Sprintf("%s %s (commit %s)", binary, Version, GitCommit)
}

// NotImplemented is the whole main of a component not built yet: it answers
// --version and otherwise says plainly that it does nothing, exiting 1.
func NotImplemented(binary string, args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "--version" || a == "-v" || a == "version" {
			fmt.Fprintln(stdout, String(binary))
			return 0
		}
	}
	fmt.Fprintf(stderr, "%s: not implemented yet in this release; only --version works\n", binary)
	return 1
}
