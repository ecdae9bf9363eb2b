package iptables

import (
	"context"
	"os/exec"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dataplane/runner"
)

// Backends.
const (
	BackendNFT    = "nft"
	BackendLegacy = "legacy"
)

// BinaryName returns the iptables binary for an IP version, backend
// ("nft"/"legacy") and verb ("save"/"restore"): iptables-nft-save when it
// exists, else iptables-save.
func BinaryName(ipVersion int, backend, verb string, lookPath func(string) (string, error)) string {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	base := "iptables"
	if ipVersion == 6 {
		base = "ip6tables"
	}
	for _, c := range []string{base + "-" + backend + "-" + verb, base + "-" + verb} {
		if _, err := lookPath(c); err == nil {
			return c
		}
	}
	return base + "-" + verb
}

func countRules(out []byte) int {
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-") {
			n++
		}
	}
	return n
}

// DetectBackend returns specified when it is "nft" or "legacy"; for "auto"
// (or "") it counts the rules each backend holds, as Calico does: legacy
// when it has 10 or more, else whichever has more. On a tie (a fresh host
// or namespace) it takes the backend the plain `iptables` binary uses.
func DetectBackend(ctx context.Context, r runner.Runner, specified string, lookPath func(string) (string, error), log *logrus.Entry) string {
	specified = strings.ToLower(specified)
	if specified == BackendNFT || specified == BackendLegacy {
		return specified
	}
	// The four saves run concurrently, to be done sooner.
	var counts [2][2]int
	var wg sync.WaitGroup
	for bi, backend := range []string{BackendLegacy, BackendNFT} {
		for vi, v := range []int{4, 6} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := r.Run(ctx, nil, BinaryName(v, backend, "save", lookPath))
				if err != nil {
					log.WithError(err).WithField("backend", backend).Debug("iptables save for detection failed")
					return
				}
				counts[bi][vi] = countRules(out)
			}()
		}
	}
	wg.Wait()
	legacy, nft := counts[0][0]+counts[0][1], counts[1][0]+counts[1][1]
	detected := ""
	if legacy >= 10 {
		detected = BackendLegacy
	} else {
		switch {
		case legacy > nft:
			detected = BackendLegacy
		case nft > legacy:
			detected = BackendNFT
		default:
			detected = BackendLegacy
			if out, err := r.Run(ctx, nil, "iptables", "-V"); err == nil && strings.Contains(string(out), "nf_tables") {
				detected = BackendNFT
			}
		}
	}
	log.WithField("backend", detected).Info("detected iptables backend")
	return detected
}
