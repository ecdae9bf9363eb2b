package commands

import (
	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/calicoctl/internal/printer"
	"github.com/calico-etcd/calico/calicoctl/internal/v1convert"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func newConvertCmd(env *Env) *cobra.Command {
	var file, output string
	var ignoreValidation bool
	cmd := &cobra.Command{
		Use:   "convert -f FILENAME",
		Short: "Convert Calico v1 manifests to projectcalico.org/v3",
		Long: `Convert config files from the Calico v1 API (apiVersion: v1; kinds ipPool,
policy, profile, hostEndpoint, workloadEndpoint, bgpPeer, node) to
projectcalico.org/v3. Both YAML and JSON are accepted; the result is printed
to stdout, in YAML by default. v1 policies become GlobalNetworkPolicies in
the default tier.`,
		Example: `  calicoctl convert -f ./policy.yaml -o yaml
  cat policy.json | calicoctl convert -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p printer.Printer
			switch output {
			case "yaml", "yml":
				p = printer.YAML{}
			case "json":
				p = printer.JSON{}
			default:
				return failf(nil, "unrecognized output format '%s'", output)
			}
			data, err := newInputBudget().read(file, env.Stdin)
			if err != nil {
				return failf(err, "Failed to execute command: %v", err)
			}
			rs, err := v1convert.Convert(data)
			if err != nil {
				return failf(err, "Failed to execute command: %v", err)
			}
			if len(rs) == 0 {
				return failf(nil, "No resources specified in file %s", file)
			}
			objs := make([]any, len(rs))
			for i, r := range rs {
				if !ignoreValidation {
					d := v3.Clone(r)
					d.Default()
					if err := d.Validate(); err != nil {
						return failf(err, "Converted manifest resource(s) failed validation: %v\nRe-run the command with '--ignore-validation' flag to see the converted output.", err)
					}
				}
				objs[i] = r
			}
			if err := p.Print(env.Stdout, objs); err != nil {
				return failf(err, "Failed to execute command: %v", err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&file, "filename", "f", "", `file to convert; "-" reads stdin (64 MiB at most)`)
	fl.StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	fl.BoolVar(&ignoreValidation, "ignore-validation", false, "skip validation of the converted resources")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}
