package commands

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/calicoctl/internal/kinds"
	"github.com/calico-etcd/calico/calicoctl/internal/printer"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/selector"
)

type getFlags struct {
	fileFlags
	output        string
	allNamespaces bool
	// allNamespacesA is -a, Calico's alias of -A.
	allNamespacesA bool
	export         bool
	selector       string
}

func newGetCmd(env *Env) *cobra.Command {
	var gf getFlags
	cmd := &cobra.Command{
		Use:   "get (KIND [NAME...] | -f FILENAME)",
		Short: "Display resources by filename, stdin, or kind and names",
		Long: `Display a set of resources by filename or stdin, or by kind and optional
names. Without names, every resource of the kind is listed. The kind is
case-insensitive and may be pluralized or abbreviated as in Calico.

A listed resource whose stored value does not decode is left out, with a
warning on stderr naming its etcd key; the exit status stays 0 (Calico
leaves it out silently). Getting it by name fails with the decode error.

Output formats (-o):
  ps                    a table of the kind's main columns (the default)
  wide                  as ps, with more columns
  custom-columns=A,B    the named columns (NAME,CIDR) or kubectl-style
                        HEADING:.json.path columns
  go-template=T         a Go template over the results
  go-template-file=F    a Go template read from F
  yaml, json            the resources; valid input to create/apply/replace

Valid resource types are:

` + kinds.ResourceList(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.runGet(cmd.Context(), &gf, args)
		},
	}
	gf.register(cmd, "get", false)
	fl := cmd.Flags()
	fl.StringVarP(&gf.output, "output", "o", "ps", "output format: ps, wide, yaml, json, custom-columns=..., go-template=..., go-template-file=...")
	fl.BoolVarP(&gf.allNamespaces, "all-namespaces", "A", false, "list the requested resources across all namespaces")
	// Calico's calicoctl takes -a for -A too (a docopt legacy).
	fl.BoolVarP(&gf.allNamespacesA, "all-namespaces-a", "a", false, "alias for --all-namespaces")
	_ = fl.MarkHidden("all-namespaces-a")
	fl.BoolVar(&gf.export, "export", false, "strip cluster-specific metadata (uid, resourceVersion, creationTimestamp, namespace)")
	fl.StringVar(&gf.selector, "selector", "", "only resources whose labels match this selector, e.g. --selector \"app == 'web'\"")
	cmd.ValidArgsFunction = env.completeResources(-1)
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return outputFormats, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
	return cmd
}

func (env *Env) runGet(ctx context.Context, gf *getFlags, args []string) error {
	gf.allNamespaces = gf.allNamespaces || gf.allNamespacesA
	var c *client.Client
	memo := map[string]string{}
	p, err := printer.New(gf.output, printer.Options{
		ReadFile:       func(name string) ([]byte, error) { return newInputBudget().read(name, nil) },
		PrintNamespace: gf.allNamespaces || gf.namespace != "",
		Config: func(name string) string {
			v, ok := memo[name]
			if !ok {
				v = configValue(ctx, c, name)
				memo[name] = v
			}
			return v
		},
	})
	if err != nil {
		return err
	}
	var sel selector.Selector
	if gf.selector != "" {
		if sel, err = selector.Parse(gf.selector); err != nil {
			return failf(err, "Invalid selector: %v", err)
		}
	}
	var rs []v3.Resource
	listAll := false
	var kind kinds.Info
	switch {
	case gf.filename != "" && len(args) > 0:
		return usagef("give either -f FILENAME or KIND [NAME...], not both")
	case gf.filename != "":
		rs, err = env.readFiles(&gf.fileFlags)
	case len(args) == 0:
		return usagef("get needs KIND [NAME...] or -f FILENAME")
	default:
		if kind, err = resolveKind(args[0]); err == nil {
			if listAll = len(args) == 1; !listAll {
				rs, err = fromArgs(kind, args[1:])
			}
		}
	}
	if err != nil {
		return err
	}
	if c, err = env.Client(); err != nil {
		return err
	}

	var objs []any
	var errs []string
	if listAll {
		probe, _ := v3.New(kind.Kind)
		if err := setNamespace(probe, gf.namespace, gf.allNamespaces); err != nil {
			return failf(err, "Failed to get resources: %v", err)
		}
		l, err := list(ctx, c, kind.Kind, probe.GetObjectMeta().Namespace, sel)
		if err = env.skipCorrupt(err); err != nil {
			return failf(err, "Failed to get resources: %v", err)
		}
		if gf.export {
			for _, it := range l.Items {
				export(it)
			}
		}
		objs = append(objs, l)
	} else {
		for _, r := range rs {
			if info, _ := kinds.ByKind(r.GetTypeMeta().Kind); gf.allNamespaces && info.Namespaced && gf.filename == "" {
				return failf(nil, "Failed to get resources: cannot use --all-namespaces flag for getting a single resource")
			}
			if err := setNamespace(r, gf.namespace, false); err != nil {
				return failf(err, "Failed to get resources: %v", err)
			}
			m := r.GetObjectMeta()
			got, err := c.Get(ctx, r.GetTypeMeta().Kind, m.Namespace, m.Name)
			if err != nil {
				if errors.Is(err, cerrors.ErrUnavailable) {
					return failf(err, "Failed to get resources: %v", err)
				}
				errs = append(errs, err.Error())
				continue
			}
			if sel != nil && !sel.Evaluate(got.GetObjectMeta().Labels) {
				continue
			}
			if gf.export {
				export(got)
			}
			objs = append(objs, got)
		}
	}
	if len(objs) > 0 {
		if err := p.Print(env.Stdout, objs); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return failf(nil, "%s", strings.Join(errs, "\n"))
	}
	return nil
}

// list reads one kind as a *printer.List, filtered by sel; tiers are
// sorted by order as in Calico. Values that do not decode are left out
// and the list is returned with a *cerrors.Partial naming them.
func list(ctx context.Context, c *client.Client, kind, namespace string, sel selector.Selector) (*printer.List, error) {
	items, rev, err := c.List(ctx, kind, client.ListOptions{Namespace: namespace})
	skipped, err := cerrors.Skipped(err)
	if err != nil {
		return nil, err
	}
	l := printer.NewList(kind, strconv.FormatInt(rev, 10))
	for _, it := range items {
		if sel == nil || sel.Evaluate(it.GetObjectMeta().Labels) {
			l.Items = append(l.Items, it)
		}
	}
	if kind == v3.KindTier {
		sort.SliceStable(l.Items, func(i, j int) bool {
			a, b := l.Items[i].(*v3.Tier).Spec.Order, l.Items[j].(*v3.Tier).Spec.Order
			return a != nil && (b == nil || *a < *b)
		})
	}
	return l, cerrors.PartialOf(skipped)
}

// export strips what only makes sense in this cluster.
func export(r v3.Resource) {
	m := r.GetObjectMeta()
	m.Namespace, m.UID, m.ResourceVersion = "", "", ""
	m.CreationTimestamp = v3.Time{}
	m.DeletionTimestamp, m.DeletionGracePeriodSeconds = nil, nil
}

// configValue answers the table function `config`: the cluster's AS number.
func configValue(ctx context.Context, c *client.Client, name string) string {
	if c == nil || strings.ToLower(name) != "asnumber" {
		return ""
	}
	cfg, err := c.BGPConfigurations().Get(ctx, "", "default")
	switch {
	case errors.Is(err, cerrors.ErrNotFound):
		return fmt.Sprint(defaultASNumber)
	case err != nil:
		return "unknown"
	case cfg.Spec.ASNumber != nil:
		return cfg.Spec.ASNumber.String()
	}
	return fmt.Sprint(defaultASNumber)
}

// defaultASNumber is Calico's AS number when none is configured.
const defaultASNumber = 64512
