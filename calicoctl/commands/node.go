package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/calicoctl/internal/checksystem"
	"github.com/calico-etcd/calico/calicoctl/internal/diags"
	"github.com/calico-etcd/calico/libcalico/bgpstatus"
)

func newNodeCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Check the Calico node on this host",
		Long: `Commands that run on a Calico node: report BGP peering status, check that
the host has what felix needs, and gather diagnostics. The node's services
are systemd units (see 'calicoctl node run --help').`,
	}
	var runDir string
	cmd.PersistentFlags().StringVar(&runDir, "run-dir", "", "calico's run directory holding bgpd.ctl (default $CALICO_RUN_DIR or "+bgpstatus.DefaultRunDir+")")
	socket := func() string {
		if runDir == "" {
			runDir = env.Getenv("CALICO_RUN_DIR")
		}
		return bgpstatus.SocketPath(orDefault(runDir, bgpstatus.DefaultRunDir))
	}
	return newGroup(cmd, newNodeStatusCmd(env, socket), newCheckSystemCmd(env), newDiagsCmd(env, socket), newNodeRunCmd())
}

// nodeRunText says what replaces Calico's `calicoctl node run`.
const nodeRunText = `calicoctl node run is not supported: there is no calico/node container to
start. Each host runs felix, confd, bgpd and the CNI agent as systemd units
instead:

  sudo systemctl enable --now calico-felix calico-confd calico-bgpd calico-cni-agent

The settings 'node run' took as flags go in /etc/calico/calico.env, read by
felix, confd and bgpd: --name as NODENAME, --ip and --ip6 as IP and IP6, --as as
AS, --ip-autodetection-method as IP_AUTODETECTION_METHOD, and the datastore
as ETCD_ENDPOINTS and ETCD_*_FILE (see docs/install.md).`

// newNodeRunCmd answers Calico's `node run`, whatever its flags, with
// what to run instead, and fails.
func newNodeRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "run",
		Short:              "Not supported: start calico-felix, calico-confd and calico-bgpd with systemd",
		Long:               nodeRunText,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "-h" || a == "--help" {
					return cmd.Help()
				}
			}
			return failf(nil, "%s", nodeRunText)
		},
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func newNodeStatusCmd(env *Env, socket func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the BGP peering status of this node",
		Long: `Check the status of the Calico node on this host: whether bgpd is running
(it answers on its control socket) and the state of each BGP peering.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), env.Timeout)
			defer cancel()
			st, err := bgpstatus.NewClient(socket()).Status(ctx)
			if err != nil {
				return failf(err, "Calico process is not running.")
			}
			fmt.Fprintln(env.Stdout, "Calico process is running.")
			printPeers(env.Stdout, "4", st.Peers4)
			printPeers(env.Stdout, "6", st.Peers6)
			fmt.Fprintln(env.Stdout)
			return nil
		},
	}
}

// printPeers prints one address family's peers as Calico's node status does.
func printPeers(w io.Writer, ipv string, peers []bgpstatus.Peer) {
	fmt.Fprintf(w, "\nIPv%s BGP status\n", ipv)
	if len(peers) == 0 {
		fmt.Fprintf(w, "No IPv%s peers found.\n", ipv)
		return
	}
	rows := make([][]string, len(peers))
	for i, p := range peers {
		rows[i] = []string{p.Address, p.Type, p.State, p.Since, p.Info}
	}
	writeBoxTable(w, []string{"Peer address", "Peer type", "State", "Since", "Info"}, rows)
}

// writeBoxTable draws the bordered table calicoctl prints: upper-case
// centred headings, left-aligned cells.
func writeBoxTable(w io.Writer, headings []string, rows [][]string) {
	writeTable(w, headings, rows, nil)
}

// writeTable is writeBoxTable with the cells for which right (when not
// nil) holds aligned right.
func writeTable(w io.Writer, headings []string, rows [][]string, right func(string) bool) {
	widths := make([]int, len(headings))
	for i, h := range headings {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	var sep strings.Builder
	sep.WriteString("+")
	for _, wd := range widths {
		sep.WriteString(strings.Repeat("-", wd+2) + "+")
	}
	line := func(cells []string, centre bool) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			gap := widths[i] - len(c)
			left := 0
			if centre {
				left = gap / 2
			} else if right != nil && right(c) {
				left = gap
			}
			b.WriteString(" " + strings.Repeat(" ", left) + c + strings.Repeat(" ", gap-left) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	fmt.Fprintln(w, sep.String())
	upper := make([]string, len(headings))
	for i, h := range headings {
		upper[i] = strings.ToUpper(h)
	}
	line(upper, true)
	fmt.Fprintln(w, sep.String())
	for _, r := range rows {
		line(r, false)
	}
	fmt.Fprintln(w, sep.String())
}

func newCheckSystemCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "checksystem",
		Short: "Check that this host can run Calico",
		Long: `Check the kernel version, the iptables and ipset tools, and the kernel
modules felix needs (iptables, ipsets, conntrack, VXLAN, IPIP), reporting
each item. Exits 1 if something required is missing; a missing optional item
(IPv6, VXLAN, IPIP) is a warning.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			r := checksystem.Check(env.Host)
			r.Write(env.Stdout)
			if !r.OK() {
				return failf(nil, "System doesn't meet one or more minimum systems requirements to run Calico")
			}
			fmt.Fprintln(env.Stdout, "System meets minimum system requirements to run Calico!")
			return nil
		},
	}
}

func newDiagsCmd(env *Env, socket func() string) *cobra.Command {
	var logDir, output string
	cmd := &cobra.Command{
		Use:   "diags",
		Short: "Gather diagnostics of this node into a tarball",
		Long: `Gather a node's diagnostics into one tar.gz: routes, addresses and links,
iptables-save, ipset list, bgpd's status and the calico logs directory. The
path of the tarball is printed at the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := diags.Collect(cmd.Context(), diags.Options{
				Output:   output,
				LogDir:   logDir,
				Runner:   env.Runner,
				Now:      env.Now(),
				Progress: env.Stdout,
				BGPStatus: func(ctx context.Context) ([]byte, error) {
					ctx, cancel := context.WithTimeout(ctx, min(env.Timeout, 5*time.Second))
					defer cancel()
					st, err := bgpstatus.NewClient(socket()).Status(ctx)
					if err != nil {
						return nil, err
					}
					return json.MarshalIndent(st, "", "  ")
				},
			})
			if err != nil {
				return failf(err, "Error collecting diagnostics: %v", err)
			}
			fmt.Fprintf(env.Stdout, "\nDiags saved to %s\n", path)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&logDir, "log-dir", diags.DefaultLogDir, "the directory of calico's log files, included in the bundle")
	fl.StringVarP(&output, "output", "o", "", "the tarball to write, or a directory to write diags-<time>.tar.gz in (default the temp dir)")
	return cmd
}
