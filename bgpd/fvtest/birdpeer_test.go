package fvtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/calico-etcd/calico/testutil"
)

// birdPeer is a BIRD 2 daemon inside a namespace of the lab.
type birdPeer struct {
	t    testing.TB
	ns   *testutil.NetNS
	sock string
	proc *proc
}

// startBird runs BIRD 2 in ns with the given configuration text.
func (l *lab) startBird(name string, ns *testutil.NetNS, config string) *birdPeer {
	l.t.Helper()
	bird, birdc := sbin("bird"), sbin("birdc")
	if bird == "" || birdc == "" {
		l.t.Fatal("BIRD 2 is needed (Debian package bird2; .ci/install-deps installs it)")
	}
	conf := filepath.Join(l.dir, name+".conf")
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		l.t.Fatal(err)
	}
	b := &birdPeer{t: l.t, ns: ns, sock: filepath.Join(l.dir, name+".ctl")}
	b.proc = l.spawn(name, ns, bird, "-f", "-c", conf, "-s", b.sock, "-P", filepath.Join(l.dir, name+".pid"))
	return b
}

// birdc runs one birdc command against b.
func (b *birdPeer) birdc(args ...string) (string, error) {
	out, err := exec.Command(sbin("birdc"), append([]string{"-s", b.sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// neighborCaps returns the "Neighbor capabilities" block of a BGP
// protocol in `birdc show protocols all`.
func (b *birdPeer) neighborCaps(protocol string) (string, error) {
	out, err := b.birdc("show", "protocols", "all", protocol)
	if err != nil {
		return "", err
	}
	_, caps, ok := strings.Cut(out, "Neighbor capabilities")
	if !ok {
		return "", fmt.Errorf("no neighbor capabilities for %s:\n%s", protocol, out)
	}
	// The block ends where the indentation drops back to the session's.
	var lines []string
	for _, line := range strings.Split(caps, "\n")[1:] {
		if !strings.HasPrefix(line, "      ") {
			break
		}
		lines = append(lines, strings.TrimSpace(line))
	}
	return strings.Join(lines, "\n"), nil
}
