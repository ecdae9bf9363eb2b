package commands

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/calicoctl/internal/kinds"
	"github.com/calico-etcd/calico/libcalico/client"
)

var validateVerb = writeVerb{verb: "validate", past: "validated", hitError: "Hit error", brackets: true}

func newValidateCmd(env *Env) *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "validate -f FILENAME",
		Short: "Validate a resource by file, directory or stdin without applying it",
		Long: `Validate a set of resources by filename or stdin without applying them. JSON
and YAML formats are accepted. Validation runs offline, without the
datastore: the syntax, the kinds and every field are checked as create and
apply check them; what needs the datastore (overlaps with stored pools, a
policy's tier existing, whether a resource exists) is left to them. Every
resource is checked and each invalid one is reported.

Valid resource types are:

` + kinds.ResourceList(),
		Example: `  calicoctl validate -f ./policy.yaml
  cat policy.json | calicoctl validate -f -`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return env.runValidate(&ff)
		},
	}
	ff.register(cmd, "validate", true)
	return cmd
}

func (env *Env) runValidate(ff *fileFlags) error {
	rs, err := env.readFiles(ff)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		fmt.Fprintln(env.Stdout, "No resources specified")
		return nil
	}
	var valid []int
	var errs []error
	for i, r := range rs {
		err := setNamespace(r, ff.namespace, false)
		if err == nil {
			err = client.Validate(r)
		}
		if err != nil {
			errs = append(errs, &resourceError{index: i, r: r, err: err})
			continue
		}
		valid = append(valid, i)
	}
	return env.reportWrite(validateVerb, rs, valid, errors.Join(errs...))
}
