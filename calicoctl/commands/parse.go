package commands

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"sync"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// parallelParseMin is the input size from which parseManifests splits the
// work across CPUs.
const parallelParseMin = 64 << 10

// parseManifests is v3.ParseManifests, run on large inputs in parallel:
// the input is cut at "---" lines into one chunk per CPU and each chunk is
// parsed on its own. Errors read as if the whole input had been parsed at
// once (document numbers and lines are of the whole input).
func parseManifests(data []byte) ([]v3.Resource, error) {
	workers := runtime.GOMAXPROCS(0)
	if len(data) < parallelParseMin || workers < 2 {
		return v3.ParseManifests(data)
	}
	chunks := splitChunks(data, workers)
	results := make([][]v3.Resource, len(chunks))
	errs := make([]error, len(chunks))
	var wg sync.WaitGroup
	for i, ch := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = v3.ParseManifests(ch.text)
		}()
	}
	wg.Wait()
	var out []v3.Resource
	for i, rs := range results {
		if errs[i] != nil {
			return nil, rebase(errs[i], chunks[i])
		}
		out = append(out, rs...)
	}
	return out, nil
}

// chunk is a run of whole documents of the input.
type chunk struct {
	text []byte
	// docs and lines before the chunk in the whole input.
	docOffset, lineOffset int
}

// splitChunks cuts data at plain "---" lines into about n chunks.
func splitChunks(data []byte, n int) []chunk {
	lines := bytes.SplitAfter(data, []byte("\n"))
	target := len(data)/n + 1
	var out []chunk
	cur := chunk{}
	start, size, docs := 0, 0, 0
	for i, l := range lines {
		trimmed := bytes.TrimRight(l, " \t\r\n")
		isSep := bytes.Equal(trimmed, []byte("---"))
		if isSep && size >= target && len(out) < n-1 {
			cur.text = bytes.Join(lines[start:i], nil)
			out = append(out, cur)
			docs++ // the document the separator ends
			cur = chunk{docOffset: docs, lineOffset: i + 1}
			start, size = i+1, 0
			continue
		}
		if isSep || bytes.HasPrefix(l, []byte("--- ")) || bytes.HasPrefix(l, []byte("---\t")) || bytes.Equal(trimmed, []byte("...")) {
			docs++
		}
		size += len(l)
	}
	cur.text = bytes.Join(lines[start:], nil)
	return append(out, cur)
}

var (
	docPrefixRe = regexp.MustCompile(`^document (\d+) \(line (\d+)\)`)
	lineNumRe   = regexp.MustCompile(`line (\d+)`)
)

// rebase rewrites a chunk's error to count documents and lines from the
// start of the whole input.
func rebase(err error, ch chunk) error {
	if ch.docOffset == 0 && ch.lineOffset == 0 {
		return err
	}
	msg := err.Error()
	m := docPrefixRe.FindStringSubmatchIndex(msg)
	if m == nil {
		return err
	}
	doc, _ := strconv.Atoi(msg[m[2]:m[3]])
	rest := lineNumRe.ReplaceAllStringFunc(msg[m[3]:], func(s string) string {
		n, _ := strconv.Atoi(s[len("line "):])
		return "line " + strconv.Itoa(n+ch.lineOffset)
	})
	return &rebasedError{msg: fmt.Sprintf("document %d%s", doc+ch.docOffset, rest), err: err}
}

type rebasedError struct {
	msg string
	err error
}

func (e *rebasedError) Error() string { return e.msg }
func (e *rebasedError) Unwrap() error { return errors.Unwrap(e.err) }
