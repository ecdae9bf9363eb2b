package commands

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/testutil"
)

// commandPaths lists the path of every visible command of the tree.
func commandPaths(t *testing.T) (paths [][]string, groups map[string]bool) {
	t.Helper()
	root := NewRoot(&Env{})
	root.InitDefaultHelpCmd()
	groups = map[string]bool{}
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Hidden {
			return
		}
		paths = append(paths, path)
		if c.HasSubCommands() {
			groups[strings.Join(path, " ")] = true
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(root, nil)
	return paths, groups
}

// offline is a CLI whose etcd does not answer: none of these runs may
// reach the datastore.
func offline(t *testing.T) *cli {
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	c.env["ETCD_ENDPOINTS"] = fmt.Sprintf("http://127.0.0.1:%d", port)
	return c
}

// TestUnknownInputExitsNonZero runs every command of the tree, group or
// not, with an unknown flag, an unknown shorthand flag and unexpected
// arguments (for a group: an unknown subcommand): each must exit 1 with
// a message, not print its help and exit 0 as cobra's groups do.
func TestUnknownInputExitsNonZero(t *testing.T) {
	c := offline(t)
	paths, groups := commandPaths(t)
	if len(paths) < 30 {
		t.Fatalf("only %d commands found", len(paths))
	}
	for _, want := range []string{"datastore migrate", "cluster", "ipam", "node", "config"} {
		if !groups[want] {
			t.Errorf("%q is not a command group", want)
		}
	}
	for _, p := range paths {
		name := "calicoctl " + strings.Join(p, " ")
		for _, extra := range [][]string{
			{"--no-such-flag"},
			{"-Z"},
			{"no-such-command", "x", "x", "x", "x"},
		} {
			args := append(append([]string{}, p...), extra...)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				r := c.run(append(args, "--timeout", "300ms")...)
				if r.code != 1 || strings.TrimSpace(r.stderr) == "" {
					t.Fatalf("%s: want exit 1 and a message:\n%s", name, r)
				}
				if strings.Contains(r.stdout, "Usage:") || strings.Contains(r.stdout, "Successfully") {
					t.Fatalf("%s printed help or success:\n%s", name, r)
				}
				if groups[strings.Join(p, " ")] && extra[0] == "no-such-command" &&
					!strings.Contains(r.stderr, fmt.Sprintf("unknown command %q for %q", "no-such-command", strings.TrimSpace(name))) {
					t.Errorf("%s: stderr does not name the unknown command:\n%s", name, r)
				}
			})
		}
	}
}

// TestExitCodes is the table of the issue: commands a script may run by
// mistake exit non-zero with a message; a bare group prints its help and
// exits 0.
func TestExitCodes(t *testing.T) {
	c := offline(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"bogus"}, 1, `unknown command "bogus" for "calicoctl"`},
		{[]string{"nod"}, 1, "Did you mean this?\n\tnode"},
		{[]string{"node", "bogus"}, 1, `unknown command "bogus" for "calicoctl node"`},
		{[]string{"node", "run"}, 1, "sudo systemctl enable --now calico-felix calico-confd calico-bgpd calico-cni-agent"},
		{[]string{"node", "run", "--ip=autodetect", "--name=n1"}, 1, "calicoctl node run is not supported"},
		{[]string{"ipam", "bogus"}, 1, `unknown command "bogus" for "calicoctl ipam"`},
		{[]string{"ipam", "split", "2"}, 1, "no name or CIDR provided"},
		{[]string{"ipam", "split"}, 1, "accepts 1 arg(s), received 0"},
		{[]string{"config", "bogus"}, 1, `unknown command "bogus" for "calicoctl config"`},
		{[]string{"datastore", "bogus"}, 1, `unknown command "bogus" for "calicoctl datastore"`},
		{[]string{"datastore", "migrate", "bogus"}, 1, `unknown command "bogus" for "calicoctl datastore migrate"`},
		{[]string{"datastore", "migrate", "import"}, 1, `required flag(s) "filename" not set`},
		{[]string{"cluster", "bogus"}, 1, `unknown command "bogus" for "calicoctl cluster"`},
		{[]string{"cluster", "diags", "--since", "2d"}, 1, "invalid duration for since flag (try 10s, 5m, or 1h): 2d"},
		{[]string{"cluster", "diags", "--max-logs", "-1"}, 1, "negative value for max-logs flag"},
		{[]string{"help", "bogus"}, 1, `unknown help topic "bogus"`},
		{[]string{"help", "node", "bogus"}, 1, `unknown help topic "node bogus"`},
		{[]string{"-l", "bogus", "version", "--client"}, 1, "unknown log level: bogus, expected one of: panic, fatal, error, warn, info, debug"},
		{[]string{"get", "-l", "app == 'x'", "pools"}, 1, "unknown log level: app == 'x'"},
		{[]string{"version", "--poll", "soon"}, 1, "invalid poll duration specified: soon"},
		{[]string{"version", "--poll", "-1s"}, 1, "invalid poll duration specified: -1s"},
		{[]string{"completion", "tcsh"}, 1, `invalid argument "tcsh"`},
		{[]string{"node"}, 0, ""},
		{[]string{"datastore", "migrate"}, 0, ""},
		{[]string{"help", "ipam", "split"}, 0, ""},
		{[]string{"node", "run", "--help"}, 0, ""},
		{[]string{"-l", "debug", "version", "--client"}, 0, ""},
		{[]string{"--log-level=warn", "validate", "-f", "testdata/all-kinds.yaml"}, 0, ""},
	} {
		r := c.run(append(tc.args, "--timeout", "300ms")...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("calicoctl %s: want exit %d and %q:\n%s", strings.Join(tc.args, " "), tc.code, tc.stderr, r)
		}
		if tc.code == 0 && tc.args[0] != "-l" && tc.args[0] != "--log-level=warn" && !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("calicoctl %s: want help:\n%s", strings.Join(tc.args, " "), r)
		}
	}
}
