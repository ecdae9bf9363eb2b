package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--version"}, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "calico-felix ") {
		t.Errorf("--version: code %d, out %q, err %q", code, out.String(), errOut.String())
	}
}

func TestBadFlagAndMissingConfigFile(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--no-such-flag"}, nil, &out, &errOut); code != 2 {
		t.Errorf("bad flag: code %d", code)
	}
	errOut.Reset()
	if code := run([]string{"--config-file", "/nonexistent/felix.cfg"}, []string{"NODENAME=n"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "reading config file") {
		t.Errorf("missing config file: code %d, log %q", code, errOut.String())
	}
}
