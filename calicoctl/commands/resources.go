package commands

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/calicoctl/internal/kinds"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
)

// fileFlags are the flags of commands that read resources from files.
type fileFlags struct {
	filename  string
	recursive bool
	skipEmpty bool
	namespace string
}

func (f *fileFlags) register(cmd *cobra.Command, verb string, required bool) {
	fl := cmd.Flags()
	fl.StringVarP(&f.filename, "filename", "f", "", "file to "+verb+` the resources from: "-" reads stdin, a directory reads each .yaml, .yml and .json file in it (64 MiB at most in all)`)
	fl.BoolVarP(&f.recursive, "recursive", "R", false, "process the directory given with -f recursively")
	fl.BoolVar(&f.skipEmpty, "skip-empty", false, "do not fail when the files hold no resources")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the resources (NetworkPolicy, NetworkSet, WorkloadEndpoint); default \"default\"")
	if required {
		_ = cmd.MarkFlagRequired("filename")
	}
}

// readFiles loads every resource -f names, in order, reading at most
// MaxInputBytes in all.
func (e *Env) readFiles(f *fileFlags) ([]v3.Resource, error) {
	files, err := e.expandFiles(f.filename, f.recursive)
	if err != nil {
		return nil, failf(err, "Failed to execute command: %v", err)
	}
	var out []v3.Resource
	budget := newInputBudget()
	for _, name := range files {
		data, err := budget.read(name, e.Stdin)
		if err != nil {
			return nil, failf(err, "Failed to execute command: %v", err)
		}
		rs, err := parseManifests(data)
		if err != nil {
			if name != "-" && len(files) > 1 {
				err = fmt.Errorf("%s: %w", name, err)
			}
			return nil, failf(err, "Failed to execute command: %v", err)
		}
		if len(rs) == 0 && !f.skipEmpty {
			if name == "-" {
				name = "stdin"
			}
			return nil, failf(nil, "No resources specified in file %s", name)
		}
		out = append(out, rs...)
	}
	if len(out) == 0 && len(files) != 1 && !f.skipEmpty {
		return nil, failf(nil, "No resources specified in directory %s", f.filename)
	}
	return out, nil
}

// expandFiles turns -f into the files to read.
func (e *Env) expandFiles(name string, recursive bool) ([]string, error) {
	if name == "-" {
		return []string{"-"}, nil
	}
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{name}, nil
	}
	var files []string
	err = filepath.WalkDir(name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != name && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// resolveKind turns a KIND argument into its kind.
func resolveKind(arg string) (kinds.Info, error) {
	in, ok := kinds.Lookup(arg)
	if !ok {
		return kinds.Info{}, failf(nil, "resource type '%s' is not supported", arg)
	}
	return in, nil
}

// fromArgs builds empty resources named by KIND NAME... arguments.
func fromArgs(kind kinds.Info, names []string) ([]v3.Resource, error) {
	var out []v3.Resource
	for _, n := range names {
		if n == "" {
			return nil, failf(nil, "resource name may not be empty")
		}
		r, err := v3.New(kind.Kind)
		if err != nil {
			return nil, err
		}
		r.GetObjectMeta().Name = n
		out = append(out, r)
	}
	return out, nil
}

// setNamespace applies -n and -A to a resource as Calico does, except
// that -A is ignored for kinds that have no namespace.
func setNamespace(r v3.Resource, cliNS string, allNS bool) error {
	kind := r.GetTypeMeta().Kind
	info, _ := kinds.ByKind(kind)
	m := r.GetObjectMeta()
	if !info.Namespaced {
		switch {
		case m.Namespace != "":
			return fmt.Errorf("namespace should not be specified for a non-namespaced resource. %s is not a namespaced resource", kind)
		case cliNS != "":
			return fmt.Errorf("%s is not namespaced", kind)
		}
		return nil
	}
	switch {
	case allNS && cliNS != "":
		return errors.New("cannot use both --namespace and --all-namespaces flags at the same time")
	case allNS:
		m.Namespace = ""
	case m.Namespace == "" && cliNS != "":
		m.Namespace = cliNS
	case m.Namespace == "":
		m.Namespace = v3.DefaultNamespace
	case cliNS != "" && m.Namespace != cliNS:
		return fmt.Errorf("resource namespace does not match client namespace. %s != %s", m.Namespace, cliNS)
	}
	return nil
}

// ident names a resource as libcalico's errors do: Kind(ns/name).
func ident(r v3.Resource) string {
	m := r.GetObjectMeta()
	if m.Namespace != "" {
		return fmt.Sprintf("%s(%s/%s)", r.GetTypeMeta().Kind, m.Namespace, m.Name)
	}
	return fmt.Sprintf("%s(%s)", r.GetTypeMeta().Kind, m.Name)
}

// kindSummary returns the one kind of rs, or "" when they are mixed.
func kindSummary(rs []v3.Resource) string {
	kind := ""
	for i, r := range rs {
		k := r.GetTypeMeta().Kind
		if i > 0 && k != kind {
			return ""
		}
		kind = k
	}
	return kind
}

// stripForWrite keeps only the metadata an operator may set (name,
// namespace, resourceVersion, labels, annotations), as Calico's calicoctl
// does, so uid and timestamps of exported manifests never conflict. It
// edits r in place.
func stripForWrite(r v3.Resource) {
	m := r.GetObjectMeta()
	*m = v3.ObjectMeta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion,
		Labels: m.Labels, Annotations: m.Annotations}
}

// resourceError is the failure of one resource of a command.
type resourceError struct {
	index int
	r     v3.Resource
	err   error
}

func (e *resourceError) Error() string { return e.err.Error() }
func (e *resourceError) Unwrap() error { return e.err }

// describe prefixes the error with the resource it is about when the
// command handles several and the error does not name it already.
func (e *resourceError) describe(total int) string {
	msg := e.err.Error()
	if total > 1 && !strings.Contains(msg, ident(e.r)) {
		return ident(e.r) + ": " + msg
	}
	return msg
}

func readOnlyError(verb string, r v3.Resource) error {
	return fmt.Errorf("operation %s is not supported on %s: resource is readonly", verb, r.GetTypeMeta().Kind)
}

// prevalidate checks every resource before anything is written, so a file
// with one bad resource writes none: read-only kinds, then libcalico's
// checks (client.Validate, and a client.Checker for pool overlaps and
// policy tiers, which sees the file's earlier resources as written) and,
// for create and replace, existence and resourceVersion. Stored values
// that do not decode are left out of the checks, with a warning (see
// corrupt.go).
func (env *Env) prevalidate(ctx context.Context, c *client.Client, verb string, rs []v3.Resource, skipExists bool) error {
	chk := c.NewChecker(rs)
	chk.Skipped = env.warnCorrupt
	existing := map[string]v3.Resource{}
	listed := map[string]bool{}
	for i, r := range rs {
		fail := func(err error) error { return &resourceError{index: i, r: r, err: err} }
		kind := r.GetTypeMeta().Kind
		if info, _ := kinds.ByKind(kind); info.ReadOnly {
			return fail(readOnlyError(verb, r))
		}
		if err := client.Validate(r); err != nil {
			return fail(err)
		}
		if verb == "create" || verb == "replace" {
			if !listed[kind] {
				items, _, err := c.List(ctx, kind, client.ListOptions{})
				if err = env.skipCorrupt(err); err != nil {
					return fail(err)
				}
				for _, it := range items {
					existing[ident(it)] = it
				}
				listed[kind] = true
			}
			cur, ok := existing[ident(r)]
			switch {
			case verb == "create" && ok && !skipExists:
				return fail(&cerrors.Exists{Key: ident(r)})
			case verb == "replace" && !ok:
				return fail(&cerrors.NotFound{Key: ident(r)})
			case verb == "replace" && r.GetObjectMeta().ResourceVersion != "" &&
				r.GetObjectMeta().ResourceVersion != cur.GetObjectMeta().ResourceVersion:
				return fail(fmt.Errorf("update conflict: %s: resourceVersion '%s' is out of date (latest: %s); update the resource YAML/JSON in order to make changes",
					ident(r), r.GetObjectMeta().ResourceVersion, cur.GetObjectMeta().ResourceVersion))
			}
		}
		if err := chk.Check(ctx, r); err != nil {
			return fail(err)
		}
	}
	return nil
}
