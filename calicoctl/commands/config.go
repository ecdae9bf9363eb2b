package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
)

// Config names, as the original calicoctl spelled them.
const (
	cfgMesh     = "nodeToNodeMesh"
	cfgASNumber = "asNumber"
	cfgLogLevel = "logLevel"
)

var logLevels = map[string]string{
	"debug": "Debug", "info": "Info", "warning": "Warning", "warn": "Warning",
	"error": "Error", "fatal": "Fatal", "critical": "Fatal",
}

func newConfigCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Get, set and unset cluster-wide or per-node settings",
		Long: `Get, set or unset a few common settings without editing resources by hand:

  nodeToNodeMesh  on|off        BGP full mesh between nodes (cluster-wide only)
  asNumber        AS number     the cluster's AS, or with --node that node's AS
  logLevel        debug|info|warning|error|fatal
                                felix's and bgpd's screen log level, cluster-wide
                                or with --node for one node

They are stored in BGPConfiguration (default or node.<name>),
FelixConfiguration (default or node.<name>) and Node resources. With
--node, get says "(inherited from global)" when the node has no value of its
own; unset then returns the node to the cluster-wide value, and unset
without --node returns the cluster to the default.

--raw=bgp or --raw=felix gets, sets or unsets any field of the spec of
BGPConfiguration or FelixConfiguration (default, or node.<NODE> with
--node), named as in the resource (reportingInterval, logSeverityScreen,
...; the case does not matter). The value is read as YAML (10, true, 30s,
[a, b]); the resource is validated before it is written. get prints
"(unset)" for a field that is not set.`,
		Example: `  # Turn off the full BGP node-to-node mesh
  calicoctl config set nodeToNodeMesh off

  # Set log level to info for node "node1"
  calicoctl config set logLevel info --node=node1

  # Set felix's reporting interval on node1 only, then remove it again
  calicoctl config set --raw=felix reportingInterval 60s --node=node1
  calicoctl config unset --raw=felix reportingInterval --node=node1`,
	}
	var node, raw string
	pf := cmd.PersistentFlags()
	pf.StringVarP(&node, "node", "n", "", "the node the setting applies to, instead of the whole cluster")
	pf.StringVar(&raw, "raw", "", "bgp or felix: a field of BGPConfiguration or FelixConfiguration instead of a named setting")
	where := func() string {
		if node != "" {
			return "node " + node
		}
		return "the cluster"
	}
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a setting",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v string
			var err error
			if raw != "" {
				v, err = env.rawGet(cmd.Context(), raw, args[0], node)
			} else {
				v, err = env.configGet(cmd.Context(), args[0], node)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, v)
			return nil
		},
	}
	set := &cobra.Command{
		Use:   "set NAME VALUE",
		Short: "Change a setting",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if raw != "" {
				err = env.rawSet(cmd.Context(), raw, args[0], &args[1], node)
			} else {
				err = env.configSet(cmd.Context(), args[0], args[1], node)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "Successfully set %s to %s for %s\n", args[0], args[1], where())
			return nil
		},
	}
	unset := &cobra.Command{
		Use:   "unset NAME",
		Short: "Return a setting to its default (with --node, to the cluster-wide value)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if raw != "" {
				err = env.rawSet(cmd.Context(), raw, args[0], nil, node)
			} else {
				err = env.configUnset(cmd.Context(), args[0], node)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "Successfully unset %s for %s\n", args[0], where())
			return nil
		},
	}
	for _, c := range []*cobra.Command{get, set, unset} {
		c.ValidArgsFunction = func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 || raw != "" {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completePrefix([]string{cfgMesh, cfgASNumber, cfgLogLevel}, toComplete), cobra.ShellCompDirectiveNoFileComp
		}
	}
	_ = cmd.RegisterFlagCompletionFunc("raw", cobra.FixedCompletions([]string{"bgp", "felix"}, cobra.ShellCompDirectiveNoFileComp))
	return newGroup(cmd, get, set, unset)
}

func canonicalConfigName(name, node string) (string, error) {
	for _, n := range []string{cfgMesh, cfgASNumber, cfgLogLevel} {
		if strings.EqualFold(name, n) {
			if n == cfgMesh && node != "" {
				return "", failf(nil, "%s is a cluster-wide setting: --node is not allowed", cfgMesh)
			}
			return n, nil
		}
	}
	return "", failf(nil, "unknown config name %q: use %s, %s or %s", name, cfgMesh, cfgASNumber, cfgLogLevel)
}

func configResourceName(node string) string {
	if node == "" {
		return "default"
	}
	return "node." + node
}

func (env *Env) configGet(ctx context.Context, name, node string) (string, error) {
	name, err := canonicalConfigName(name, node)
	if err != nil {
		return "", err
	}
	c, err := env.Client()
	if err != nil {
		return "", err
	}
	global, err := getOptional(ctx, c.BGPConfigurations(), "default")
	if err != nil {
		return "", err
	}
	// inherited marks a node's value taken from the cluster's, as the
	// original calicoctl did.
	inherited := ""
	if node != "" {
		inherited = " (inherited from global)"
	}
	switch name {
	case cfgMesh:
		if global != nil && global.Spec.NodeToNodeMeshEnabled != nil && !*global.Spec.NodeToNodeMeshEnabled {
			return "off", nil
		}
		return "on", nil
	case cfgASNumber:
		if node != "" {
			n, err := c.Nodes().Get(ctx, "", node)
			if err != nil {
				return "", err
			}
			if n.Spec.BGP != nil && n.Spec.BGP.ASNumber != nil {
				return n.Spec.BGP.ASNumber.String(), nil
			}
		}
		if global != nil && global.Spec.ASNumber != nil {
			return global.Spec.ASNumber.String() + inherited, nil
		}
		return fmt.Sprint(defaultASNumber) + inherited, nil
	default:
		if node != "" {
			nc, err := getOptional(ctx, c.BGPConfigurations(), configResourceName(node))
			if err != nil {
				return "", err
			}
			if nc != nil && nc.Spec.LogSeverityScreen != "" {
				return strings.ToLower(nc.Spec.LogSeverityScreen), nil
			}
		}
		if global != nil && global.Spec.LogSeverityScreen != "" {
			return strings.ToLower(global.Spec.LogSeverityScreen) + inherited, nil
		}
		return "info" + inherited, nil
	}
}

// configUnset removes a setting: a node's own value (which then comes
// from the cluster's) or the cluster's (which then is the default).
// Resources that do not exist hold nothing to remove.
func (env *Env) configUnset(ctx context.Context, name, node string) error {
	name, err := canonicalConfigName(name, node)
	if err != nil {
		return err
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	rn := configResourceName(node)
	switch name {
	case cfgMesh:
		return clearIfExists(ctx, c.BGPConfigurations(), rn, func(b *v3.BGPConfiguration) { b.Spec.NodeToNodeMeshEnabled = nil })
	case cfgASNumber:
		if node == "" {
			return clearIfExists(ctx, c.BGPConfigurations(), rn, func(b *v3.BGPConfiguration) { b.Spec.ASNumber = nil })
		}
		if _, err := c.Nodes().Get(ctx, "", node); err != nil {
			return err
		}
		return clearIfExists(ctx, c.Nodes(), node, func(n *v3.Node) {
			if n.Spec.BGP != nil {
				n.Spec.BGP.ASNumber = nil
			}
		})
	default:
		if err := clearIfExists(ctx, c.BGPConfigurations(), rn, func(b *v3.BGPConfiguration) { b.Spec.LogSeverityScreen = "" }); err != nil {
			return err
		}
		return clearIfExists(ctx, c.FelixConfigurations(), rn, func(f *v3.FelixConfiguration) { f.Spec.LogSeverityScreen = nil })
	}
}

func (env *Env) configSet(ctx context.Context, name, value, node string) error {
	name, err := canonicalConfigName(name, node)
	if err != nil {
		return err
	}
	var mesh bool
	var asn v3.ASNumber
	var level string
	switch name {
	case cfgMesh:
		switch strings.ToLower(value) {
		case "on", "true":
			mesh = true
		case "off", "false":
		default:
			return failf(nil, "error with field %s = '%s' (must be on or off)", cfgMesh, value)
		}
	case cfgASNumber:
		if asn, err = v3.ASNumberFromString(value); err != nil {
			return failf(err, "error with field %s = '%s' (must be an AS number)", cfgASNumber, value)
		}
	case cfgLogLevel:
		var ok bool
		if level, ok = logLevels[strings.ToLower(value)]; !ok {
			return failf(nil, "error with field %s = '%s' (must be one of debug, info, warning, error, fatal)", cfgLogLevel, value)
		}
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	switch name {
	case cfgMesh:
		return upsert(ctx, c.BGPConfigurations(), v3.NewBGPConfiguration, "default", func(b *v3.BGPConfiguration) {
			b.Spec.NodeToNodeMeshEnabled = &mesh
		})
	case cfgASNumber:
		if node == "" {
			return upsert(ctx, c.BGPConfigurations(), v3.NewBGPConfiguration, "default", func(b *v3.BGPConfiguration) {
				b.Spec.ASNumber = &asn
			})
		}
		n, err := c.Nodes().Get(ctx, "", node)
		if err != nil {
			return err
		}
		if n.Spec.BGP == nil {
			n.Spec.BGP = &v3.NodeBGPSpec{}
		}
		n.Spec.BGP.ASNumber = &asn
		_, err = c.Nodes().Update(ctx, n)
		return err
	default:
		rn := configResourceName(node)
		if err := upsert(ctx, c.BGPConfigurations(), v3.NewBGPConfiguration, rn, func(b *v3.BGPConfiguration) {
			b.Spec.LogSeverityScreen = level
		}); err != nil {
			return err
		}
		return upsert(ctx, c.FelixConfigurations(), v3.NewFelixConfiguration, rn, func(f *v3.FelixConfiguration) {
			f.Spec.LogSeverityScreen = &level
		})
	}
}

// getOptional reads a cluster-scoped resource, nil when absent.
func getOptional[T v3.Resource](ctx context.Context, rc client.Resources[T], name string) (T, error) {
	var zero T
	r, err := rc.Get(ctx, "", name)
	if errors.Is(err, cerrors.ErrNotFound) {
		return zero, nil
	}
	return r, err
}

// clearIfExists changes a cluster-scoped resource if it exists; the
// update is guarded by the revision read.
func clearIfExists[T v3.Resource](ctx context.Context, rc client.Resources[T], name string, change func(T)) error {
	for attempt := 0; ; attempt++ {
		r, err := rc.Get(ctx, "", name)
		if errors.Is(err, cerrors.ErrNotFound) {
			return nil
		}
		if err == nil {
			change(r)
			_, err = rc.Update(ctx, r)
		}
		if errors.Is(err, cerrors.ErrConflict) && attempt < 3 {
			continue
		}
		return err
	}
}

// upsert changes a cluster-scoped resource, creating it when absent; the
// update is guarded by the revision read.
func upsert[T v3.Resource](ctx context.Context, rc client.Resources[T], mk func() T, name string, change func(T)) error {
	for attempt := 0; ; attempt++ {
		r, err := rc.Get(ctx, "", name)
		switch {
		case errors.Is(err, cerrors.ErrNotFound):
			r = mk()
			r.GetObjectMeta().Name = name
			change(r)
			_, err = rc.Create(ctx, r)
		case err == nil:
			change(r)
			_, err = rc.Update(ctx, r)
		}
		if (errors.Is(err, cerrors.ErrConflict) || errors.Is(err, cerrors.ErrExists)) && attempt < 3 {
			continue
		}
		return err
	}
}
