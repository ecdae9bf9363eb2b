package v3

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles pattern on first use, so programs that never validate
// (a CNI plugin lives for milliseconds) do not pay for it at start.
func lazyRegexp(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
