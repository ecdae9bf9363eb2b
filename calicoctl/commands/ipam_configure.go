package commands

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func newIPAMConfigureCmd(env *Env) *cobra.Command {
	var strict, maxBlocks string
	cmd := &cobra.Command{
		Use:   "configure [--strictaffinity=true|false] [--max-blocks-per-host=N]",
		Short: "Configure IPAM",
		Long: `Modify configuration for Calico IP address management.

--strictaffinity=true forbids borrowing: a node assigns addresses only from
blocks affine to it. --max-blocks-per-host limits how many blocks a node may
claim (0: no limit); it requires strict affinity. Settings not given are
kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runIPAMConfigure(cmd.Context(), strict, maxBlocks)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&strict, "strictaffinity", "", "set StrictAffinity to true or false; when true, borrowing IP addresses is not allowed")
	fl.StringVar(&maxBlocks, "max-blocks-per-host", "", "set the maximum number of blocks that can be affine to a host (0: no limit)")
	return cmd
}

func (env *Env) runIPAMConfigure(ctx context.Context, strictArg, maxArg string) error {
	var strict *bool
	if strictArg != "" {
		v, err := strconv.ParseBool(strictArg)
		if err != nil {
			return failf(err, "invalid value. Use true or false to set strictaffinity")
		}
		strict = &v
	}
	var maxBlocks *int
	if maxArg != "" {
		v, err := strconv.ParseInt(maxArg, 10, 32)
		if err != nil || v < 0 {
			return failf(err, "invalid value for maxblockhost. Use a valid number")
		}
		n := int(v)
		maxBlocks = &n
	}
	if strict == nil && maxBlocks == nil {
		return failf(nil, "at least one configuration option must be specified")
	}
	_, ic, err := env.ipamClient()
	if err != nil {
		return err
	}
	cfg, err := ic.GetIPAMConfig(ctx)
	if err != nil {
		return failf(err, "error: %v", err)
	}
	if strict != nil {
		cfg.StrictAffinity = *strict
	}
	if maxBlocks != nil {
		cfg.MaxBlocksPerHost = *maxBlocks
	}
	if err := ic.SetIPAMConfig(ctx, cfg); err != nil {
		return failf(err, "error: %v", err)
	}
	if strict != nil {
		fmt.Fprintln(env.Stdout, "Successfully set StrictAffinity to:", *strict)
	}
	if maxBlocks != nil {
		fmt.Fprintln(env.Stdout, "Successfully set MaxBlocksPerHost to:", *maxBlocks)
	}
	return nil
}
