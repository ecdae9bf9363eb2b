// Package commands is calicoctl's command tree. Every command is built by a
// constructor that takes an *Env (streams, the datastore client factory,
// the host probes), so tests run the whole CLI in-process:
//
//	Run(deps, []string{"get", "ippools", "-o", "yaml"}) → exit code
//
// Output follows Calico's calicoctl: the same commands, flags, kind names,
// table columns and messages. Errors go to stderr and give exit code 1.
// Every datastore call is bounded by --timeout.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/calicoctl/internal/checksystem"
	"github.com/calico-etcd/calico/calicoctl/internal/diags"
	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/client"
)

// DefaultTimeout bounds each datastore call unless --timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// DefaultMaxInFlight is how many writes create, apply and replace keep in
// flight. One, as Calico's calicoctl: resources land in file order and a
// failure leaves exactly the first N written. --max-inflight raises it for
// large files (etcd commits concurrent writes together).
const DefaultMaxInFlight = 1

// ClientConfig is what a ClientFactory needs to reach the datastore.
type ClientConfig struct {
	// File is -c/--config; "" means the default file, else the environment.
	File string
	// Timeout bounds every datastore call.
	Timeout time.Duration
	// Getenv reads the environment (ETCD_ENDPOINTS, ...).
	Getenv func(string) string
}

// ClientFactory connects to the datastore. It must not block on the
// network: an unreachable etcd shows up as an error of the first call.
type ClientFactory func(cfg ClientConfig) (*client.Client, error)

// Deps are everything calicoctl takes from its surroundings.
type Deps struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment; os.Getenv when nil.
	Getenv func(string) string
	// NewClient connects to the datastore; DefaultClientFactory when nil.
	NewClient ClientFactory
	// Host answers `node checksystem`'s probes; the real host when nil.
	Host checksystem.Host
	// Runner runs `node diags`' commands; the real ones when nil.
	Runner diags.Runner
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (d *Deps) fill() {
	if d.Stdin == nil {
		d.Stdin = strings.NewReader("")
	}
	if d.Stdout == nil {
		d.Stdout = io.Discard
	}
	if d.Stderr == nil {
		d.Stderr = io.Discard
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	if d.NewClient == nil {
		d.NewClient = DefaultClientFactory
	}
	if d.Host == nil {
		d.Host = checksystem.RealHost()
	}
	if d.Runner == nil {
		d.Runner = diags.ExecRunner{}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
}

// Env is what every command sees: the deps plus the global flags.
type Env struct {
	Deps
	// ConfigFile is -c/--config.
	ConfigFile string
	// Timeout is --timeout.
	Timeout time.Duration
	// MaxInFlight bounds the concurrent writes of create, apply and
	// replace (hidden flag --max-inflight).
	MaxInFlight int
	// LogLevel is -l/--log-level; "" means warn.
	LogLevel string

	client *client.Client
	// warned are the keys of values that do not decode already warned
	// about (see warnCorrupt).
	warned map[string]bool
}

// Client connects to the datastore once per run.
func (e *Env) Client() (*client.Client, error) {
	if e.client != nil {
		return e.client, nil
	}
	if e.Timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive, not %v", e.Timeout)
	}
	c, err := e.NewClient(ClientConfig{File: e.ConfigFile, Timeout: e.Timeout, Getenv: e.Getenv})
	if err != nil {
		return nil, failf(err, "Failed to create Calico API client: %v", err)
	}
	e.client = c
	return c, nil
}

func (e *Env) close() {
	if e.client != nil {
		_ = e.client.Close()
		e.client = nil
	}
}

// DefaultClientFactory reads -c FILE, or /etc/calico/calicoctl.cfg when it
// exists, or else the environment, and connects to etcd.
func DefaultClientFactory(cfg ClientConfig) (*client.Client, error) {
	spec, err := loadSpec(cfg)
	if err != nil {
		return nil, err
	}
	return client.NewFromSpec(spec, cfg.Timeout, client.WithUnmarshal(gojson.Unmarshal))
}

func loadSpec(cfg ClientConfig) (*apiconfig.Spec, error) {
	if cfg.File != "" {
		return apiconfig.Load(cfg.File)
	}
	if _, err := os.Stat(apiconfig.DefaultConfigFile); err == nil {
		return apiconfig.Load(apiconfig.DefaultConfigFile)
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	return apiconfig.FromEnv(getenv)
}

// Group builds a command group to add under the root: NewRoot(env, mk)
// adds the command mk returns. The built-in groups (get, node, ipam, ...)
// are Groups too.
type Group func(*Env) *cobra.Command

// NewRoot builds the command tree. groups are extra command groups.
func NewRoot(env *Env, groups ...Group) *cobra.Command {
	root := &cobra.Command{
		Use:   "calicoctl",
		Short: "Manage Calico resources in an etcd datastore",
		Long: `The calicoctl command line tool is used to manage Calico network and security
policy, to view and manage endpoint configuration, and to manage a Calico
node instance.

Datastore settings come from -c/--config (a CalicoAPIConfig file), else
` + apiconfig.DefaultConfigFile + ` if present, else the environment
(ETCD_ENDPOINTS, ETCD_KEY_FILE, ETCD_CERT_FILE, ETCD_CA_CERT_FILE,
ETCD_USERNAME, ETCD_PASSWORD, optionally prefixed with CALICO_).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Version,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if _, err := logrus.ParseLevel(env.LogLevel); err != nil && env.LogLevel != "" {
				return failf(err, "unknown log level: %s, expected one of: panic, fatal, error, warn, info, debug", env.LogLevel)
			}
			return nil
		},
	}
	root.SetVersionTemplate("Client Version:    {{.Version}}\nGit commit:        " + buildinfo.GitCommit + "\n")
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&env.ConfigFile, "config", "c", "", "path to the file containing connection configuration in YAML or JSON format (default "+apiconfig.DefaultConfigFile+" or the environment)")
	pf.DurationVar(&env.Timeout, "timeout", DefaultTimeout, "bound on each datastore call")
	pf.IntVar(&env.MaxInFlight, "max-inflight", DefaultMaxInFlight, "most writes in flight at once during create, apply and replace")
	pf.StringVarP(&env.LogLevel, "log-level", "l", "", "log level of the messages on stderr of the libraries calicoctl uses: panic, fatal, error, warn, info or debug (default warn)")
	var mismatch bool
	pf.BoolVar(&mismatch, "allow-version-mismatch", false, "allow client and cluster versions mismatch (accepted for compatibility: versions are not compared)")

	for _, mk := range []Group{
		newCreateCmd, newApplyCmd, newReplaceCmd, newDeleteCmd, newGetCmd,
		newPatchCmd, newLabelCmd, newValidateCmd, newConvertCmd, newNodeCmd,
		newConfigCmd, newIPAMCmd, newDatastoreCmd, newClusterCmd, newVersionCmd,
		newCompletionCmd,
	} {
		root.AddCommand(mk(env))
	}
	for _, mk := range groups {
		root.AddCommand(mk(env))
	}
	root.SetHelpCommand(newHelpCmd())
	return root
}

// newGroup makes cmd a command group: without arguments it prints its
// help; an argument that names none of its subcommands is an unknown
// command (cobra would print the help and exit 0).
func newGroup(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
		}
		return usagef("%s", msg)
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	cmd.AddCommand(subs...)
	return cmd
}

// newHelpCmd is `calicoctl help [command]`; unlike cobra's, an unknown
// topic is an error.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Help provides help for any command in the application.\nSimply type calicoctl help [path to command] for full details.",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			target, _, err := c.Root().Find(args)
			if err != nil || target == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []string
			for _, sub := range target.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, sub.Name()+"\t"+sub.Short)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || target == nil || len(rest) > 0 {
				return usagef("unknown help topic %q", strings.Join(args, " "))
			}
			target.InitDefaultHelpFlag()
			target.InitDefaultVersionFlag()
			return target.Help()
		},
	}
}

// Run runs calicoctl with args and returns the exit code: 0 on success, 1
// on any error, which is printed to stderr.
func Run(ctx context.Context, d Deps, args []string, groups ...Group) int {
	d.fill()
	env := &Env{Deps: d}
	defer env.close()
	root := NewRoot(env, groups...)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var pe printedError
		if !errors.As(err, &pe) {
			msg := err.Error()
			if isUsageError(err) {
				msg = fmt.Sprintf("Invalid option: 'calicoctl %s'. Use flag '--help' to read about a specific subcommand.\n%s", strings.Join(args, " "), msg)
			}
			fmt.Fprintln(d.Stderr, strings.TrimRight(msg, "\n"))
		}
		return 1
	}
	return 0
}

// Execute is main's whole body.
func Execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(context.Background(), Deps{Stdin: stdin, Stdout: stdout, Stderr: stderr}, args)
}

// usageError marks a bad command line.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func isUsageError(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "unknown command", "accepts ", "requires at least", "flag needs an argument", "invalid argument", "required flag", "unknown help topic"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// printedError is an error already reported to stderr.
type printedError struct{}

func (printedError) Error() string { return "error already reported" }

// cliError carries a message printed verbatim: Calico's user-facing
// sentences ("Failed to create 'IPPool' resource: [...]") start with a
// capital, unlike Go errors.
type cliError struct {
	msg string
	err error
}

func (c *cliError) Error() string { return c.msg }
func (c *cliError) Unwrap() error { return c.err }

// failf builds a cliError that wraps err (which may be nil).
func failf(err error, format string, a ...any) error {
	return &cliError{msg: fmt.Sprintf(format, a...), err: err}
}
