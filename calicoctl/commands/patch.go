package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/spf13/cobra"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func newPatchCmd(env *Env) *cobra.Command {
	var patch, typ, namespace string
	cmd := &cobra.Command{
		Use:   "patch KIND NAME -p PATCH",
		Short: "Patch a resource in place",
		Long: `Patch a resource by kind and name.

Patch types (--type):
  strategic   merge the JSON object into the resource (the default; for
              Calico's resources this is a JSON merge patch, RFC 7386)
  merge       JSON merge patch, RFC 7386
  json        JSON patch, RFC 6902: a list of operations

The result is validated as a whole and written only if the resource has
not changed since it was read.`,
		Example: `  calicoctl patch ippool pool1 -p '{"spec":{"natOutgoing":true}}'
  calicoctl patch node node-0 --type json -p '[{"op":"add","path":"/spec/bgp/routeReflectorClusterID","value":"224.0.0.1"}]'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.runPatch(cmd.Context(), args[0], args[1], namespace, patch, typ)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&patch, "patch", "p", "", "the patch, as JSON")
	fl.StringVarP(&typ, "type", "t", "strategic", "patch type: strategic, merge or json")
	fl.StringVarP(&namespace, "namespace", "n", "", "namespace of the resource (namespaced kinds only)")
	cmd.ValidArgsFunction = env.completeResources(1)
	_ = cmd.MarkFlagRequired("patch")
	return cmd
}

func (env *Env) runPatch(ctx context.Context, kindArg, name, namespace, patch, typ string) error {
	kind, err := resolveKind(kindArg)
	if err != nil {
		return err
	}
	if typ != "strategic" && typ != "merge" && typ != "json" {
		return usagef("unknown patch type %q: use strategic, merge or json", typ)
	}
	rs, err := fromArgs(kind, []string{name})
	if err != nil {
		return err
	}
	r := rs[0]
	fail := func(err error) error {
		return failf(err, "Failed to patch '%s' resource: %v", kind.Kind, err)
	}
	if err := setNamespace(r, namespace, false); err != nil {
		return fail(err)
	}
	if kind.ReadOnly {
		return fail(readOnlyError("patch", r))
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	cur, err := c.Get(ctx, kind.Kind, r.GetObjectMeta().Namespace, name)
	if err != nil {
		return fail(err)
	}
	original, err := json.Marshal(cur)
	if err != nil {
		return fail(err)
	}
	patched, err := applyPatch(original, []byte(patch), typ)
	if err != nil {
		return fail(err)
	}
	next, err := v3.DecodeJSON(patched)
	if err != nil {
		return fail(fmt.Errorf("patched resource is invalid: %w", err))
	}
	nm, cm := next.GetObjectMeta(), cur.GetObjectMeta()
	switch {
	case next.GetTypeMeta().Kind != kind.Kind:
		return fail(fmt.Errorf("a patch may not change the kind"))
	case nm.Name != cm.Name || nm.Namespace != cm.Namespace:
		return fail(fmt.Errorf("a patch may not change the name or namespace"))
	}
	nm.ResourceVersion = cm.ResourceVersion // only write over what was read
	nm.UID, nm.CreationTimestamp = cm.UID, cm.CreationTimestamp
	if _, err := c.Update(ctx, next); err != nil {
		return fail(err)
	}
	fmt.Fprintf(env.Stdout, "Successfully patched 1 '%s' resource\n", kind.Kind)
	return nil
}

// applyPatch applies a merge (RFC 7386) or JSON (RFC 6902) patch.
func applyPatch(original, patch []byte, typ string) ([]byte, error) {
	if strings.TrimSpace(string(patch)) == "" {
		return nil, fmt.Errorf("empty patch")
	}
	if typ == "json" {
		ops, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, fmt.Errorf("decoding JSON patch: %w", err)
		}
		out, err := ops.Apply(original)
		if err != nil {
			return nil, fmt.Errorf("applying JSON patch: %w", err)
		}
		return out, nil
	}
	if !json.Valid(patch) || strings.TrimSpace(string(patch))[0] != '{' {
		return nil, fmt.Errorf("a %s patch must be a JSON object", typ)
	}
	out, err := jsonpatch.MergePatch(original, patch)
	if err != nil {
		return nil, fmt.Errorf("applying merge patch: %w", err)
	}
	return out, nil
}
