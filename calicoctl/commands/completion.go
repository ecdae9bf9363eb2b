package commands

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/calicoctl/internal/kinds"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
)

// completionTimeout bounds the datastore reads of shell completion, so a
// TAB never hangs on an unreachable etcd.
const completionTimeout = 2 * time.Second

func newCompletionCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print a completion script for bash, zsh or fish. For example:

  source <(calicoctl completion bash)

Besides commands and flags, it completes resource kinds and, reading the
datastore (for at most 2 seconds, silently), the names of resources.`,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(env.Stdout, true)
			case "zsh":
				return root.GenZshCompletion(env.Stdout)
			default:
				return root.GenFishCompletion(env.Stdout, true)
			}
		},
	}
}

// completePrefix returns the words that start with prefix.
func completePrefix(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	return out
}

// completeKinds offers the plural name of every kind, or, once something
// is typed, every name of a kind that starts with it.
func completeKinds(toComplete string) []string {
	seen := map[string]bool{}
	var out []string
	for _, in := range kinds.All() {
		names := []string{in.Plural}
		if toComplete != "" {
			names = append(names, strings.ToLower(in.Kind))
			names = append(names, in.Aliases...)
		}
		for _, n := range names {
			if !seen[n] && strings.HasPrefix(n, strings.ToLower(toComplete)) {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// completeResources completes KIND, then up to maxNames (-1: any number)
// names of that kind read from the datastore, in the namespace of -n
// (all with -A). A datastore that cannot be read offers no names and
// prints nothing.
func (env *Env) completeResources(maxNames int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		const none = cobra.ShellCompDirectiveNoFileComp
		if len(args) == 0 {
			return completeKinds(toComplete), none
		}
		if maxNames >= 0 && len(args) > maxNames {
			return nil, none
		}
		kind, ok := kinds.Lookup(args[0])
		if !ok {
			return nil, none
		}
		ns, _ := cmd.Flags().GetString("namespace")
		if all, _ := cmd.Flags().GetBool("all-namespaces"); all {
			ns = ""
		} else if ns == "" && kind.Namespaced {
			ns = v3.DefaultNamespace
		}
		if !kind.Namespaced {
			ns = ""
		}
		names := env.resourceNames(cmd.Context(), kind.Kind, ns)
		var out []string
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) && !slices.Contains(args[1:], n) {
				out = append(out, n)
			}
		}
		return out, none
	}
}

// resourceNames lists the names of kind within completionTimeout, or
// none on any error.
func (env *Env) resourceNames(ctx context.Context, kind, namespace string) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	env.Timeout = min(env.Timeout, completionTimeout)
	if env.Timeout <= 0 {
		env.Timeout = completionTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	c, err := env.Client()
	if err != nil {
		return nil
	}
	items, _, _ := c.List(ctx, kind, client.ListOptions{Namespace: namespace})
	names := make([]string, 0, len(items))
	for _, it := range items {
		names = append(names, it.GetObjectMeta().Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// outputFormats are get's -o values, for completion.
var outputFormats = []string{"ps", "wide", "yaml", "json", "custom-columns=", "go-template=", "go-template-file="}
