package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func newLabelCmd(env *Env) *cobra.Command {
	var namespace string
	var overwrite, remove bool
	cmd := &cobra.Command{
		Use:   "label KIND NAME (key=value | key --remove)",
		Short: "Add, update or remove a label of a resource",
		Long: `Add or update a label on a resource, or remove one with --remove.
Changing the value of an existing label needs --overwrite; removing a label
that is not there is an error.`,
		Example: `  calicoctl label nodes node1 cluster=backend
  calicoctl label nodes node1 cluster=frontend --overwrite
  calicoctl label nodes node1 cluster --remove`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if overwrite && remove {
				return usagef("--overwrite cannot be used with --remove")
			}
			return env.runLabel(cmd.Context(), args, namespace, overwrite, remove)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&namespace, "namespace", "n", "", "namespace of the resource (namespaced kinds only)")
	cmd.ValidArgsFunction = env.completeResources(1)
	fl.BoolVar(&overwrite, "overwrite", false, "replace the value of a label that is already set")
	fl.BoolVar(&remove, "remove", false, "remove the label with the given key")
	return cmd
}

func (env *Env) runLabel(ctx context.Context, args []string, namespace string, overwrite, remove bool) error {
	kindArg, name, spec := args[0], args[1], args[2]
	kind, err := resolveKind(kindArg)
	if err != nil {
		return err
	}
	key, value := spec, ""
	if !remove {
		kv := strings.Split(spec, "=")
		if len(kv) != 2 || kv[0] == "" {
			return failf(nil, "invalid label %s", spec)
		}
		key, value = kv[0], kv[1]
	}
	rs, err := fromArgs(kind, []string{name})
	if err != nil {
		return err
	}
	if err := setNamespace(rs[0], namespace, false); err != nil {
		return err
	}
	if kind.ReadOnly {
		return readOnlyError("label", rs[0])
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	r, err := c.Get(ctx, kind.Kind, rs[0].GetObjectMeta().Namespace, name)
	if err != nil {
		return failf(err, "failed to get %s %s, error %v", kindArg, name, err)
	}
	m := r.GetObjectMeta()
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	old, had := m.Labels[key]
	switch {
	case remove && !had:
		return failf(nil, "cannot remove label of %s %s, key %s does not exist", kindArg, name, key)
	case remove:
		delete(m.Labels, key)
	case had && old != value && !overwrite:
		return failf(nil, "failed to update label of %s %s, key %s is already present. please use '--overwrite' to set a new value.", kindArg, name, key)
	default:
		m.Labels[key] = value
	}
	if _, err := c.Update(ctx, v3.Resource(r)); err != nil {
		return failf(err, "failed to update %s %s, label not changed: %v", kindArg, name, err)
	}
	switch {
	case remove:
		fmt.Fprintf(env.Stdout, "Successfully removed label %s from %s %s\n", key, kindArg, name)
	case had:
		fmt.Fprintf(env.Stdout, "Successfully updated label %s on %s %s\n", key, kindArg, name)
	default:
		fmt.Fprintf(env.Stdout, "Successfully set label %s on %s %s\n", key, kindArg, name)
	}
	return nil
}
