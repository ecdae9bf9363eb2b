// Package secrets resolves BGP password secretKeyRefs without Kubernetes:
// a secret is a directory and each key a file in it, the layout a
// Kubernetes secret volume mount has, so
//
//	secretKeyRef: {name: bgp-secrets, key: tor-r1}
//
// reads <dir>/bgp-secrets/tor-r1 (one trailing newline is dropped).
package secrets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/calico-etcd/calico/confd/calc"
)

// DefaultDir is where secrets live unless configured.
const DefaultDir = "/etc/calico/secrets"

// Dir reads secrets from files under a directory.
type Dir string

var _ calc.Secrets = Dir("")

// Lookup implements calc.Secrets.
func (d Dir) Lookup(name, key string) (string, error) {
	for _, part := range []string{name, key} {
		if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "/\x00") {
			return "", fmt.Errorf("secret name %q / key %q is not a plain file name", name, key)
		}
	}
	if d == "" {
		return "", errors.New("no secrets directory configured")
	}
	path := filepath.Join(string(d), name, key)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading secret: %w", err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return v, nil
}
