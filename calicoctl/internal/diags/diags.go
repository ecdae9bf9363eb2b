// Package diags gathers diagnostics into tar.gz bundles: a node's
// (routes, addresses, iptables and ipsets dumps, bgpd's status and
// calico's logs; commands run through a Runner so tests can script them)
// and, through the same Archive, the cluster's (written by calicoctl
// cluster diags). Everything added to an Archive is passed through Redact
// first, so no bundle carries a password or a private key.
package diags

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DefaultLogDir is where calico's daemons log when logging to files.
const DefaultLogDir = "/var/log/calico"

// Runner runs a diagnostic command.
type Runner interface {
	// Run runs name with args and returns its combined output.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs real programs.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// Command is one diagnostic: what to run and the file it lands in.
type Command struct {
	Info string
	Args []string
	File string
}

// Commands are run in order.
var Commands = []Command{
	{"", []string{"hostname"}, "hostname"},
	{"Dumping routes (IPv4)", []string{"ip", "-4", "route"}, "ipv4_route"},
	{"Dumping routes (IPv6)", []string{"ip", "-6", "route"}, "ipv6_route"},
	{"Dumping interface info (IPv4)", []string{"ip", "-4", "addr"}, "ipv4_addr"},
	{"Dumping interface info (IPv6)", []string{"ip", "-6", "addr"}, "ipv6_addr"},
	{"Dumping links", []string{"ip", "-d", "link"}, "links"},
	{"Dumping iptables (IPv4)", []string{"iptables-save", "-c"}, "ipv4_tables"},
	{"Dumping iptables (IPv6)", []string{"ip6tables-save", "-c"}, "ipv6_tables"},
	{"Dumping ipsets", []string{"ipset", "list"}, "ipsets"},
}

// Options say what to gather and where to write it.
type Options struct {
	// Output is the tarball's path, or a directory to create
	// diags-<time>.tar.gz in; os.TempDir() when empty.
	Output string
	// LogDir is copied into logs/ when it exists; DefaultLogDir when empty.
	LogDir string
	// BGPStatus returns bgpd's status for bgpd_status.
	BGPStatus func(ctx context.Context) ([]byte, error)
	Runner    Runner
	Now       time.Time
	// Progress receives one line per step.
	Progress io.Writer
}

// Collect writes the tarball and returns its path. A diagnostic command
// that fails is recorded in its file and reported on Progress; only a
// failure to write the tarball is an error.
func Collect(ctx context.Context, o Options) (path string, err error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.LogDir == "" {
		o.LogDir = DefaultLogDir
	}
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	path, err = OutputPath(o.Output, fmt.Sprintf("diags-%s.tar.gz", o.Now.Format("20060102_150405")), os.TempDir())
	if err != nil {
		return "", err
	}
	w, err := Create(path, "diagnostics", o.Now)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()

	fmt.Fprintln(o.Progress, "Collecting diagnostics")
	if err := w.Add("date", []byte(o.Now.Format(time.RFC1123Z)+"\n")); err != nil {
		return "", err
	}
	for _, c := range Commands {
		if c.Info != "" {
			fmt.Fprintln(o.Progress, c.Info)
		}
		out, rerr := o.Runner.Run(ctx, c.Args[0], c.Args[1:]...)
		if rerr != nil {
			fmt.Fprintf(o.Progress, "Failed to run command: %s\nError: %v\n", strings.Join(c.Args, " "), rerr)
			out = append(out, fmt.Sprintf("\n# %s: %v\n", strings.Join(c.Args, " "), rerr)...)
		}
		if err := w.Add(c.File, out); err != nil {
			return "", err
		}
	}
	if o.BGPStatus != nil {
		fmt.Fprintln(o.Progress, "Dumping bgpd status")
		out, serr := o.BGPStatus(ctx)
		if serr != nil {
			fmt.Fprintf(o.Progress, "Failed to read bgpd status: %v\n", serr)
			out = []byte(fmt.Sprintf("bgpd status unavailable: %v\n", serr))
		}
		if err := w.Add("bgpd_status", out); err != nil {
			return "", err
		}
	}
	if err := addLogs(w, o.LogDir, o.Progress); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return path, nil
}

// OutputPath is where a bundle goes: out itself, or the file name in the
// directory out names, or in defDir when out is empty ("." gives
// "./name").
func OutputPath(out, name, defDir string) (string, error) {
	if out == "" {
		if defDir == "." {
			return "./" + name, nil
		}
		return filepath.Join(defDir, name), nil
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return filepath.Join(out, name), nil
	}
	if strings.HasSuffix(out, string(filepath.Separator)) {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return "", err
		}
		return filepath.Join(out, name), nil
	}
	return out, nil
}

// addLogs copies the regular files under dir into logs/.
func addLogs(w *Archive, dir string, progress io.Writer) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(progress, "No logs found in %s; skipping log copying\n", dir)
		return nil
	case err != nil:
		fmt.Fprintf(progress, "Error copying log files: %v\n", err)
		return nil
	case !st.IsDir():
		fmt.Fprintf(progress, "No logs found in %s; skipping log copying\n", dir)
		return nil
	}
	fmt.Fprintln(progress, "Copying Calico logs")
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(progress, "Error copying log file %s: %v\n", p, err)
			return nil
		}
		return w.Add("logs/"+filepath.ToSlash(rel), data)
	})
}
