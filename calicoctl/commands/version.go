package commands

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/client"
)

func newVersionCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Display the client and cluster versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(env.Stdout, "Client Version:   ", buildinfo.Version)
			fmt.Fprintln(env.Stdout, "Git commit:       ", buildinfo.GitCommit)
			c, err := env.Client()
			if err != nil {
				return err
			}
			ci, err := c.ClusterInformations().Get(cmd.Context(), "", client.ClusterInformationName)
			if err != nil {
				return failf(err, "Unable to retrieve Cluster Version or Type: %v", err)
			}
			fmt.Fprintln(env.Stdout, "Cluster Version:  ", orDefault(ci.Spec.CalicoVersion, "unknown"))
			fmt.Fprintln(env.Stdout, "Cluster Type:     ", orDefault(ci.Spec.ClusterType, "unknown"))
			return nil
		},
	}
}

func newCompletionCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print a completion script for bash, zsh or fish. For example:

  source <(calicoctl completion bash)`,
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
