package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/calico-etcd/calico/calicoctl/internal/kinds"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/felixparams"
)

// writeVerb is one of create, apply, replace.
type writeVerb struct {
	verb, past string
	// hitError is the prefix of a part-way failure, as Calico words it.
	hitError string
	// brackets says whether errors print as Calico's [err] lists.
	brackets bool
	do       func(ctx context.Context, c *client.Client, r v3.Resource) (v3.Resource, error)
}

var (
	createVerb = writeVerb{verb: "create", past: "created", hitError: "Hit error", brackets: true,
		do: func(ctx context.Context, c *client.Client, r v3.Resource) (v3.Resource, error) {
			return c.Create(ctx, r)
		}}
	applyVerb   = writeVerb{verb: "apply", past: "applied", hitError: "Hit error(s)", brackets: true, do: applyOne}
	replaceVerb = writeVerb{verb: "replace", past: "replaced", hitError: "Hit error", brackets: false,
		do: func(ctx context.Context, c *client.Client, r v3.Resource) (v3.Resource, error) {
			return c.Update(ctx, r)
		}}
)

// applyOne creates r or replaces it. With a resourceVersion, the replace
// is checked against it, as in Calico.
func applyOne(ctx context.Context, c *client.Client, r v3.Resource) (v3.Resource, error) {
	if r.GetObjectMeta().ResourceVersion == "" {
		return c.Apply(ctx, r)
	}
	rc := v3.Clone(r)
	rc.GetObjectMeta().ResourceVersion = ""
	out, err := c.Create(ctx, rc)
	if errors.Is(err, cerrors.ErrExists) {
		return c.Update(ctx, r)
	}
	return out, err
}

func newCreateCmd(env *Env) *cobra.Command {
	var ff fileFlags
	var skipExists bool
	cmd := &cobra.Command{
		Use:   "create -f FILENAME",
		Short: "Create resources by filename or stdin",
		Long: `Create a set of resources by filename or stdin. JSON and YAML formats are
accepted. Creating a resource that already exists fails unless --skip-exists
is set. Every resource is validated before any is written; they are then
created in order, and a failure part-way says which were written.

Valid resource types are:

` + kinds.ResourceList(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runWrite(cmd.Context(), &ff, createVerb, skipExists)
		},
	}
	ff.register(cmd, "create", true)
	cmd.Flags().BoolVar(&skipExists, "skip-exists", false, "skip over and treat as successful any attempts to create an entry that already exists")
	return cmd
}

func newApplyCmd(env *Env) *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILENAME",
		Short: "Apply resources by filename or stdin",
		Long: `Create or replace a set of resources by filename or stdin. JSON and YAML
formats are accepted. A resource that does not exist is created; one that
exists has its specification replaced in its entirety. Every resource is
validated before any is written.

Valid resource types are:

` + kinds.ResourceList(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runWrite(cmd.Context(), &ff, applyVerb, false)
		},
	}
	ff.register(cmd, "apply", true)
	return cmd
}

func newReplaceCmd(env *Env) *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "replace -f FILENAME",
		Short: "Replace resources by filename or stdin",
		Long: `Replace a set of existing resources by filename or stdin. JSON and YAML
formats are accepted. Replacing a resource that does not exist fails; a
metadata.resourceVersion in the file must be the current one.

Valid resource types are:

` + kinds.ResourceList(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runWrite(cmd.Context(), &ff, replaceVerb, false)
		},
	}
	ff.register(cmd, "replace", true)
	return cmd
}

// runWrite is create, apply and replace: load, validate all, write,
// report.
func (env *Env) runWrite(ctx context.Context, ff *fileFlags, v writeVerb, skipExists bool) error {
	rs, err := env.readFiles(ff)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		fmt.Fprintln(env.Stdout, "No resources specified")
		return nil
	}
	for i, r := range rs {
		if err := setNamespace(r, ff.namespace, false); err != nil {
			return env.reportWrite(v, rs, nil, &resourceError{index: i, r: r, err: err})
		}
		stripForWrite(r)
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	if err := env.prevalidate(ctx, c, v.verb, rs, skipExists); err != nil {
		return env.reportWrite(v, rs, nil, err)
	}
	env.warnUnsupported(rs)
	written, err := writeAll(ctx, c, rs, v, skipExists, env.MaxInFlight)
	return env.reportWrite(v, rs, written, err)
}

// warnUnsupported warns, on stderr, about each FelixConfiguration field
// set to something felix does not act on (libcalico/felixparams). The
// write goes ahead: a Calico manifest must apply unchanged.
func (env *Env) warnUnsupported(rs []v3.Resource) {
	for _, r := range rs {
		fc, ok := r.(*v3.FelixConfiguration)
		if !ok {
			continue
		}
		fc = v3.Clone(fc) // as stored: defaulted
		fc.Default()
		for _, ref := range felixparams.Refusals(&fc.Spec) {
			fmt.Fprintf(env.Stderr, "Warning: FelixConfiguration %q: %s\n", fc.Name, ref)
		}
	}
}

// writeAll writes rs in input order, one at a time, and stops at the
// first failure. It returns the indexes written, in order, and the
// failures. With inflight > 1 it hands over to writeConcurrent.
func writeAll(ctx context.Context, c *client.Client, rs []v3.Resource, v writeVerb, skipExists bool, inflight int) ([]int, error) {
	if inflight > 1 {
		return writeConcurrent(ctx, c, rs, v, skipExists, inflight)
	}
	var written []int
	for i := range rs {
		if err := writeOne(ctx, c, v, skipExists, i, rs[i]); err != nil {
			return written, err
		}
		written = append(written, i)
	}
	return written, nil
}

// writeOne writes r, the i-th resource; the client validates it again
// first.
func writeOne(ctx context.Context, c *client.Client, v writeVerb, skipExists bool, i int, r v3.Resource) error {
	_, err := v.do(ctx, c, r)
	if err == nil || skipExists && errors.Is(err, cerrors.ErrExists) {
		return nil
	}
	return &resourceError{index: i, r: r, err: err}
}

// writeConcurrent is writeAll with up to inflight writes at a time. Where
// order matters rs is cut into runs written one after the other: a Tier
// is a run of its own (its policies need it), and a resource already in
// the current run starts a new one (the later copy must win). No write
// starts once one has failed; those in flight finish.
func writeConcurrent(ctx context.Context, c *client.Client, rs []v3.Resource, v writeVerb, skipExists bool, inflight int) ([]int, error) {
	errs := make([]error, len(rs))
	done := make([]bool, len(rs))
	var failed atomic.Bool
	for _, run := range orderedRuns(rs) {
		var g errgroup.Group
		g.SetLimit(inflight)
		for _, i := range run {
			g.Go(func() error { // waits for a free slot
				if failed.Load() {
					return nil
				}
				if errs[i] = writeOne(ctx, c, v, skipExists, i, rs[i]); errs[i] != nil {
					failed.Store(true)
					return errs[i]
				}
				done[i] = true
				return nil
			})
		}
		if g.Wait() != nil {
			break
		}
	}
	var written []int
	for i := range rs {
		if done[i] {
			written = append(written, i)
		}
	}
	return written, errors.Join(errs...)
}

// orderedRuns cuts the indexes of rs into runs whose writes may happen in
// any order (see writeConcurrent).
func orderedRuns(rs []v3.Resource) [][]int {
	var runs [][]int
	var cur []int
	inRun := map[string]bool{}
	cut := func() {
		if len(cur) > 0 {
			runs = append(runs, cur)
		}
		cur = nil
		clear(inRun)
	}
	for i, r := range rs {
		isTier := r.GetTypeMeta().Kind == v3.KindTier
		if isTier || inRun[ident(r)] {
			cut()
		}
		cur = append(cur, i)
		inRun[ident(r)] = true
		if isTier {
			cut()
		}
	}
	cut()
	return runs
}

// reportWrite prints Calico's messages: success, failure of all, or a
// part-way failure listing what was written.
func (env *Env) reportWrite(v writeVerb, rs []v3.Resource, written []int, err error) error {
	kind := kindSummary(rs)
	if err == nil {
		if kind != "" {
			fmt.Fprintf(env.Stdout, "Successfully %s %d '%s' resource(s)\n", v.past, len(written), kind)
		} else {
			fmt.Fprintf(env.Stdout, "Successfully %s %d resource(s)\n", v.past, len(written))
		}
		return nil
	}
	var msgs []string
	for _, e := range unjoin(err) {
		var re *resourceError
		if errors.As(e, &re) {
			msgs = append(msgs, re.describe(len(rs)))
		} else {
			msgs = append(msgs, e.Error())
		}
	}
	msg := strings.Join(msgs, " ")
	if v.brackets {
		msg = "[" + msg + "]"
	}
	if len(written) == 0 {
		switch {
		case len(rs) == 1:
			return failf(err, "Failed to %s '%s' resource: %s", v.verb, kind, msg)
		case kind != "":
			return failf(err, "Failed to %s any '%s' resources: %s", v.verb, kind, msg)
		default:
			return failf(err, "Failed to %s any resources: %s", v.verb, msg)
		}
	}
	which := "the first "
	if written[len(written)-1] != len(written)-1 {
		which = "" // a later write finished before an earlier one failed
	}
	if kind != "" {
		fmt.Fprintf(env.Stdout, "Partial success: %s %s%d out of %d '%s' resources:\n", v.past, which, len(written), len(rs), kind)
	} else {
		fmt.Fprintf(env.Stdout, "Partial success: %s %s%d out of %d resources:\n", v.past, which, len(written), len(rs))
	}
	for _, i := range written {
		fmt.Fprintf(env.Stdout, "  %s\n", ident(rs[i]))
	}
	return failf(err, "%s: %s", v.hitError, msg)
}

// unjoin lists the errors an errors.Join holds.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func newDeleteCmd(env *Env) *cobra.Command {
	var ff fileFlags
	var skipNotExists bool
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILENAME)",
		Short: "Delete resources by filename, stdin, or kind and names",
		Long: `Delete a set of resources by filename or stdin, or by kind and names. Deleting
a resource that does not exist fails unless --skip-not-exists is set. The
kind is case-insensitive and may be pluralized or abbreviated as in Calico
(ippool, pools, gnp, hep, wep, bgpp, ...).

Deleting a Node also removes, as Calico does, its workload endpoints and
host endpoints, its BGP peers, its node.<name> Felix and BGP configurations,
the IP addresses allocated to it (tunnel addresses included) and its block
affinities. For a Node that no longer exists, whatever it left behind is
removed all the same, before the not-found error.

A delete needs no decoding: a resource whose stored value does not decode
(which get and the other commands skip) is deleted by name all the same.

Valid resource types are:

` + kinds.ResourceList(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.runDelete(cmd.Context(), &ff, args, skipNotExists)
		},
	}
	ff.register(cmd, "delete", false)
	cmd.Flags().BoolVarP(&skipNotExists, "skip-not-exists", "s", false, "skip over and treat as successful resources that don't exist")
	cmd.ValidArgsFunction = env.completeResources(-1)
	return cmd
}

func (env *Env) runDelete(ctx context.Context, ff *fileFlags, args []string, skipNotExists bool) error {
	var rs []v3.Resource
	var err error
	switch {
	case ff.filename != "" && len(args) > 0:
		return usagef("give either -f FILENAME or KIND NAME..., not both")
	case ff.filename != "":
		rs, err = env.readFiles(ff)
	case len(args) == 0:
		return usagef("delete needs KIND NAME... or -f FILENAME")
	case len(args) == 1:
		return usagef("delete needs the names of the %s resources to delete", args[0])
	default:
		var kind kinds.Info
		if kind, err = resolveKind(args[0]); err == nil {
			rs, err = fromArgs(kind, args[1:])
		}
	}
	if err != nil {
		return err
	}
	kind := kindSummary(rs)
	var errs []string
	handled := 0
	var c *client.Client
	for _, r := range rs {
		err := setNamespace(r, ff.namespace, false)
		if err == nil {
			if info, _ := kinds.ByKind(r.GetTypeMeta().Kind); info.ReadOnly {
				err = readOnlyError("delete", r)
			}
		}
		if err == nil && c == nil {
			if c, err = env.Client(); err != nil {
				return err
			}
		}
		if err == nil {
			m := r.GetObjectMeta()
			if r.GetTypeMeta().Kind == v3.KindNode {
				err = env.deleteNode(ctx, c, m.Name, m.ResourceVersion)
			} else {
				_, err = c.Delete(ctx, r.GetTypeMeta().Kind, m.Namespace, m.Name, m.ResourceVersion)
			}
			if skipNotExists && errors.Is(err, cerrors.ErrNotFound) {
				err = nil
			}
		}
		if err != nil {
			re := &resourceError{r: r, err: err}
			if kind != "" {
				errs = append(errs, fmt.Sprintf("Failed to delete '%s' resource: %s", kind, re.describe(len(rs))))
			} else {
				errs = append(errs, fmt.Sprintf("Failed to delete resource: %s", re.describe(len(rs))))
			}
			continue
		}
		handled++
	}
	if handled > 0 {
		if kind != "" {
			fmt.Fprintf(env.Stdout, "Successfully deleted %d '%s' resource(s)\n", handled, kind)
		} else {
			fmt.Fprintf(env.Stdout, "Successfully deleted %d resource(s)\n", handled)
		}
	}
	if len(errs) > 0 {
		return failf(nil, "%s", strings.Join(errs, "\n"))
	}
	return nil
}
