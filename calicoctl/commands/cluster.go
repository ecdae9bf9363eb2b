package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/calico-etcd/calico/calicoctl/internal/diags"
	"github.com/calico-etcd/calico/calicoctl/internal/kinds"
	"github.com/calico-etcd/calico/calicoctl/internal/printer"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
)

type clusterDiagsFlags struct {
	output, since, focusNodes string
	maxLogs, maxParallelism   int
	skipTempDirCleanup        bool
}

// sinceRe is Calico's check of --since: a whole number of s, m or h.
var sinceRe = regexp.MustCompile(`^[0-9]+[smh]$`)

func newClusterCmd(env *Env) *cobra.Command {
	var f clusterDiagsFlags
	diagsCmd := &cobra.Command{
		Use:   "diags",
		Short: "Collect snapshot of diagnostic info and logs related to Calico at the cluster-level",
		Long: `Collect the cluster's view of Calico into one tar.gz: every resource of every
kind (YAML and wide tables), each node's Node resource and felix status
reports (live and last reported) with a summary of which felix is up, the
endpoint status reports, IPAM usage and the output of 'ipam check', the
client and cluster versions, and the datastore settings in use.

Nothing secret goes into the bundle: etcd passwords, tokens and private keys
are redacted, as in 'node diags' (BGP passwords are references to secrets,
kept as references). What lives only on a host (routes, iptables, ipsets,
bgpd's status, logs) is not in the datastore: run 'calicoctl node diags' on
that host. So Calico's flags for the logs of Kubernetes pods (--since,
--max-logs, --max-parallelism, --skip-temp-dir-cleanup) are checked as
Calico checks them and otherwise change nothing; --focus-nodes puts those
nodes first in the summary.

The bundle is written to ./calico-diagnostics-<time>.tar.gz, as in Calico,
or where -o says.`,
		Example: `  calicoctl cluster diags
  calicoctl cluster diags -o /tmp/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runClusterDiags(cmd.Context(), &f)
		},
	}
	fl := diagsCmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "", "the tarball to write, or a directory to write calico-diagnostics-<time>.tar.gz in (default the current directory)")
	fl.StringVar(&f.since, "since", "", "accepted for compatibility (Calico: only collect logs newer than this relative duration, e.g. 30m, 2h)")
	fl.IntVar(&f.maxLogs, "max-logs", 5, "accepted for compatibility (Calico: collect up to this number of logs for each kind of Calico component)")
	fl.IntVar(&f.maxParallelism, "max-parallelism", 10, "accepted for compatibility (Calico: maximum number of parallel threads to use for collecting logs)")
	fl.StringVar(&f.focusNodes, "focus-nodes", "", "comma-separated list of nodes to list first")
	fl.BoolVar(&f.skipTempDirCleanup, "skip-temp-dir-cleanup", false, "accepted for compatibility (the bundle is written directly, without a temporary directory)")
	return newGroup(&cobra.Command{
		Use:   "cluster",
		Short: "Access cluster information",
		Long:  `Access cluster-wide Calico information.`,
	}, diagsCmd)
}

func (env *Env) runClusterDiags(ctx context.Context, f *clusterDiagsFlags) error {
	since := orDefault(f.since, "0s")
	if !sinceRe.MatchString(since) {
		return failf(nil, "Error executing command: invalid duration for since flag (try 10s, 5m, or 1h): %s", f.since)
	}
	if f.maxLogs < 0 {
		return failf(nil, "Error executing command: negative value for max-logs flag")
	}
	if f.maxParallelism < 1 {
		return failf(nil, "Error executing command: max-parallelism must be at least 1, not %d", f.maxParallelism)
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	now := env.Now().UTC()
	base := "calico-diagnostics-" + now.Format("20060102_150405")
	path, err := diags.OutputPath(f.output, base+".tar.gz", ".")
	if err != nil {
		return failf(err, "Error collecting diagnostics: %v", err)
	}
	out := env.Stdout
	fmt.Fprintln(out, "==== Begin collecting diagnostics. ====")
	// Read the datastore before the bundle exists, so that an
	// unreachable etcd leaves no file behind.
	fmt.Fprintln(out, "Collecting cluster information...")
	ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
	if err != nil && !errors.Is(err, cerrors.ErrNotFound) {
		return failf(err, "Error collecting diagnostics: %v", err)
	}
	files := map[string][]byte{
		"date":           []byte(now.Format(time.RFC1123Z) + "\n"),
		"version":        versionReport(ci),
		"datastore.yaml": env.datastoreReport(),
		"README":         []byte(clusterDiagsReadme),
	}
	fmt.Fprintln(out, "Collecting Calico resources...")
	nodes, unreadable, err := env.collectResources(ctx, c, files)
	if err != nil {
		return failf(err, "Error collecting diagnostics: %v", err)
	}
	fmt.Fprintln(out, "Collecting node status...")
	if err := collectNodeStatus(ctx, c, nodes, splitList(f.focusNodes), now, files); err != nil {
		return failf(err, "Error collecting diagnostics: %v", err)
	}
	fmt.Fprintln(out, "Collecting IPAM information...")
	env.collectIPAM(ctx, c, files)
	if len(unreadable) > 0 {
		files["unreadable.txt"] = []byte(strings.Join(unreadable, "\n") + "\n")
	}

	fmt.Fprintln(out, "\n==== Producing a diagnostics bundle. ====")
	a, err := diags.Create(path, base, now)
	if err != nil {
		return failf(err, "Error collecting diagnostics: %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := a.Add(name, files[name]); err != nil {
			a.Abort()
			return failf(err, "Error collecting diagnostics: %v", err)
		}
	}
	if err := a.Close(); err != nil {
		return failf(err, "Error collecting diagnostics: %v", err)
	}
	fmt.Fprintf(out, "Diagnostic bundle created at %s\n", path)
	return nil
}

const clusterDiagsReadme = `Calico cluster diagnostics, written by calicoctl cluster diags.

  version              calicoctl's and the cluster's versions
  datastore.yaml       the datastore settings calicoctl used (secrets redacted)
  resources/           every resource of every kind: <plural>.yaml, <plural>.txt
  nodes/summary.txt    each node: felix up or not, its last report, BGP addresses
  nodes/<node>/        its Node resource and the status reports felix wrote
  ipam/                usage by pool and block, the IPAM configuration, ipam check
  unreadable.txt       stored values that do not decode (if any)

A host's routes, iptables, ipsets, bgpd status and logs are not in the
datastore: run 'calicoctl node diags' on the host for those.
`

func versionReport(ci *v3.ClusterInformation) []byte {
	var b strings.Builder
	fmt.Fprintln(&b, "Client Version:   ", buildinfo.Version)
	fmt.Fprintln(&b, "Git commit:       ", buildinfo.GitCommit)
	if ci != nil {
		fmt.Fprintln(&b, "Cluster Version:  ", orDefault(ci.Spec.CalicoVersion, "unknown"))
		fmt.Fprintln(&b, "Cluster Type:     ", orDefault(ci.Spec.ClusterType, "unknown"))
		fmt.Fprintln(&b, "Cluster GUID:     ", ci.Spec.ClusterGUID)
		fmt.Fprintln(&b, "Datastore ready:  ", ci.Spec.Ready())
	}
	return []byte(b.String())
}

// datastoreReport is the datastore settings in use, as a CalicoAPIConfig;
// Archive.Add redacts the password.
func (env *Env) datastoreReport() []byte {
	spec, err := loadSpec(ClientConfig{File: env.ConfigFile, Getenv: env.Getenv})
	if err != nil {
		return []byte(fmt.Sprintf("# reading the datastore settings: %v\n", err))
	}
	data, err := yaml.Marshal(map[string]any{"apiVersion": v3.APIVersion, "kind": "CalicoAPIConfig", "spec": spec})
	if err != nil {
		return []byte(fmt.Sprintf("# %v\n", err))
	}
	return data
}

// collectResources lists every kind into resources/, and returns the
// nodes and the values that did not decode.
func (env *Env) collectResources(ctx context.Context, c *client.Client, files map[string][]byte) ([]*v3.Node, []string, error) {
	var nodes []*v3.Node
	var unreadable []string
	for _, in := range kinds.All() {
		l, err := list(ctx, c, in.Kind, "", nil)
		skipped, err := cerrors.Skipped(err)
		if err != nil {
			return nil, nil, fmt.Errorf("listing %s: %w", in.Plural, err)
		}
		for _, s := range skipped {
			unreadable = append(unreadable, s.Error())
		}
		var y, t bytes.Buffer
		if err := (printer.YAML{}).Print(&y, []any{l}); err != nil {
			return nil, nil, err
		}
		tp, _ := printer.New("wide", printer.Options{PrintNamespace: in.Namespaced, Config: func(name string) string { return configValue(ctx, c, name) }})
		if err := tp.Print(&t, []any{l}); err != nil {
			return nil, nil, err
		}
		files["resources/"+in.Plural+".yaml"] = y.Bytes()
		files["resources/"+in.Plural+".txt"] = t.Bytes()
		if in.Kind == v3.KindNode {
			for _, it := range l.Items {
				nodes = append(nodes, it.(*v3.Node))
			}
		}
	}
	return nodes, unreadable, nil
}

// felixReport is the value of felix's status keys.
type felixReport struct {
	Time   string  `json:"time"`
	Uptime float64 `json:"uptime"`
}

// collectNodeStatus writes each node's Node resource and status reports,
// and the summary; hosts that report without a Node are included.
func collectNodeStatus(ctx context.Context, c *client.Client, nodes []*v3.Node, focus []string, now time.Time, files map[string][]byte) error {
	kvs, err := c.Backend().List(ctx, model.FelixStatusListOptions{})
	if err != nil {
		return fmt.Errorf("listing felix status reports: %w", err)
	}
	byName := map[string]*v3.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	live, last := map[string][]byte{}, map[string][]byte{}
	endpoints := map[string]map[string]json.RawMessage{}
	for _, kv := range kvs.KVPairs {
		switch k := kv.Key.(type) {
		case model.FelixStatusKey:
			if k.Last {
				last[k.Hostname] = kv.Value
			} else {
				live[k.Hostname] = kv.Value
			}
		case model.WorkloadEndpointStatusKey:
			if endpoints[k.Hostname] == nil {
				endpoints[k.Hostname] = map[string]json.RawMessage{}
			}
			p, _ := k.Path()
			endpoints[k.Hostname][p] = json.RawMessage(kv.Value)
		}
	}
	names := map[string]bool{}
	for _, m := range []map[string][]byte{live, last} {
		for h := range m {
			names[h] = true
		}
	}
	for n := range byName {
		names[n] = true
	}
	order := orderNodes(slices.Sorted(maps.Keys(names)), focus)

	var rows [][]string
	for _, name := range order {
		dir := "nodes/" + name + "/"
		n := byName[name]
		if n != nil {
			y, err := yaml.Marshal(n)
			if err != nil {
				return err
			}
			files[dir+"node.yaml"] = y
		}
		if v, ok := live[name]; ok {
			files[dir+"felix-status.json"] = indentJSON(v)
		}
		if v, ok := last[name]; ok {
			files[dir+"felix-last-reported-status.json"] = indentJSON(v)
		}
		if eps := endpoints[name]; len(eps) > 0 {
			b, _ := json.MarshalIndent(eps, "", "  ")
			files[dir+"endpoint-status.json"] = append(b, '\n')
		}
		rows = append(rows, summaryRow(name, n, live[name], last[name], now))
	}
	var b bytes.Buffer
	writeBoxTable(&b, []string{"Node", "Felix", "Last report", "Uptime", "IPv4 address", "IPv6 address", "AS number"}, rows)
	files["nodes/summary.txt"] = b.Bytes()
	return nil
}

// orderNodes puts the --focus-nodes first, in their order.
func orderNodes(names, focus []string) []string {
	var out []string
	for _, f := range focus {
		if slices.Contains(names, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func summaryRow(name string, n *v3.Node, live, last []byte, now time.Time) []string {
	state := "never reported"
	switch {
	case live != nil:
		state = "up"
	case last != nil:
		state = "down"
	}
	if n == nil {
		state += " (no Node resource)"
	}
	reported, uptime := "-", "-"
	rep := live
	if rep == nil {
		rep = last
	}
	var r felixReport
	if rep != nil && json.Unmarshal(rep, &r) == nil {
		if t, err := time.Parse(time.RFC3339, r.Time); err == nil {
			reported = fmt.Sprintf("%s (%s ago)", r.Time, now.Sub(t).Round(time.Second))
		}
		uptime = (time.Duration(r.Uptime) * time.Second).String()
	}
	v4, v6, asn := "-", "-", "-"
	if n != nil && n.Spec.BGP != nil {
		v4, v6 = orDefault(n.Spec.BGP.IPv4Address, "-"), orDefault(n.Spec.BGP.IPv6Address, "-")
		if n.Spec.BGP.ASNumber != nil {
			asn = n.Spec.BGP.ASNumber.String()
		}
	}
	return []string{name, state, reported, uptime, v4, v6, asn}
}

func indentJSON(v []byte) []byte {
	var b bytes.Buffer
	if json.Indent(&b, v, "", "  ") != nil {
		return v
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// collectIPAM runs ipam show and ipam check into ipam/, each into a
// buffer of its own; a failure is recorded in its file.
func (env *Env) collectIPAM(ctx context.Context, c *client.Client, files map[string][]byte) {
	for _, run := range []struct {
		file string
		fn   func(sub *Env) error
	}{
		{"ipam/show-blocks.txt", func(sub *Env) error { return sub.runIPAMShow(ctx, &ipamShowFlags{blocks: true}) }},
		{"ipam/show-configuration.txt", func(sub *Env) error { return sub.runIPAMShow(ctx, &ipamShowFlags{configuration: true}) }},
		{"ipam/show-borrowed.txt", func(sub *Env) error { return sub.runIPAMShow(ctx, &ipamShowFlags{borrowed: true}) }},
		{"ipam/check.txt", func(sub *Env) error {
			return sub.runIPAMCheck(ctx, &ipamCheckFlags{showProblems: true, minLeakAge: DefaultMinLeakAge})
		}},
	} {
		var b bytes.Buffer
		sub := &Env{Deps: env.Deps, ConfigFile: env.ConfigFile, Timeout: env.Timeout, LogLevel: env.LogLevel, client: c, warned: map[string]bool{}}
		sub.Stdout, sub.Stderr = &b, &b
		if err := run.fn(sub); err != nil {
			fmt.Fprintf(&b, "\n# %v\n", err)
		}
		files[run.file] = b.Bytes()
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
