package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/client"
)

func newVersionCmd(env *Env) *cobra.Command {
	var poll string
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Display the version of this binary",
		Long: `Display the version of calicoctl and, unless --client is given, the Calico
version and type of the cluster (from ClusterInformation). --poll=DURATION
keeps reading the cluster's and prints them again whenever they change,
until interrupted.`,
		Example: `  # Show client and cluster versions.
  calicoctl version

  # Show only the client version.
  calicoctl version --client`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runVersion(cmd.Context(), poll, clientOnly)
		},
	}
	cmd.Flags().StringVar(&poll, "poll", "", "poll for changes to the cluster information at a frequency specified using POLL duration")
	cmd.Flags().BoolVar(&clientOnly, "client", false, "display the client version only")
	return cmd
}

func (env *Env) runVersion(ctx context.Context, poll string, clientOnly bool) error {
	var every time.Duration
	if poll != "" {
		d, err := time.ParseDuration(poll)
		if err != nil || d < 0 {
			return failf(err, "invalid poll duration specified: %s", poll)
		}
		every = d
	}
	fmt.Fprintln(env.Stdout, "Client Version:   ", buildinfo.Version)
	fmt.Fprintln(env.Stdout, "Git commit:       ", buildinfo.GitCommit)
	if clientOnly {
		return nil
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	var shownVersion, shownType string
	for {
		ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
		if every > 0 && ctx.Err() != nil {
			return nil // interrupted
		}
		if err != nil {
			err = failf(err, "Unable to retrieve Cluster Version or Type: %v", err)
			shownVersion, shownType = "", "" // shown again once read again
		} else {
			if v := orDefault(ci.Spec.CalicoVersion, "unknown"); v != shownVersion {
				fmt.Fprintln(env.Stdout, "Cluster Version:  ", v)
				shownVersion = v
			}
			if t := orDefault(ci.Spec.ClusterType, "unknown"); t != shownType {
				fmt.Fprintln(env.Stdout, "Cluster Type:     ", t)
				shownType = t
			}
		}
		if every == 0 {
			return err
		}
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
