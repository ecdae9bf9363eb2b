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
// with one bad resource writes none: read-only kinds, defaults and field
// validation, pool overlaps (with the datastore and within the file),
// policy tiers, and, for create and replace, existence and
// resourceVersion. Stored values that do not decode are left out of the
// checks (see corrupt.go); warn is told about them.
func prevalidate(ctx context.Context, c *client.Client, verb string, rs []v3.Resource, skipExists bool, warn func(error) error) error {
	var pools []*v3.IPPool
	priorPools := map[string]*v3.IPPool{}
	tiers := map[string]bool{client.DefaultTier: true}
	existing := map[string]v3.Resource{}
	listed := map[string]bool{}
	for i, r := range rs {
		fail := func(err error) error { return &resourceError{index: i, r: r, err: err} }
		kind := r.GetTypeMeta().Kind
		if info, _ := kinds.ByKind(kind); info.ReadOnly {
			return fail(readOnlyError(verb, r))
		}
		if kind == v3.KindProfile && r.GetObjectMeta().Name == client.DefaultAllowProfile {
			return fail(builtIn(r))
		}
		// Defaulting in place is harmless: the client defaults again.
		d := r
		d.Default()
		if err := d.Validate(); err != nil {
			return fail(err)
		}
		if verb == "create" || verb == "replace" {
			if !listed[kind] {
				items, _, err := c.List(ctx, kind, client.ListOptions{})
				if err = warn(err); err != nil {
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
		switch d := d.(type) {
		case *v3.IPPool:
			if err := checkPools(ctx, c, d, &pools, &priorPools, rs, warn); err != nil {
				return fail(err)
			}
		case *v3.Tier:
			tiers[d.Name] = true
		case *v3.NetworkPolicy:
			if err := checkTier(ctx, c, d.Spec.Tier, tiers); err != nil {
				return fail(err)
			}
		case *v3.GlobalNetworkPolicy:
			if err := checkTier(ctx, c, d.Spec.Tier, tiers); err != nil {
				return fail(err)
			}
		}
	}
	return nil
}

func builtIn(r v3.Resource) error {
	return &cerrors.Validation{Fields: []cerrors.FieldError{{Field: "Metadata.Name", Value: r.GetObjectMeta().Name,
		Reason: fmt.Sprintf("%s %s is built in and cannot be changed or deleted", r.GetTypeMeta().Kind, r.GetObjectMeta().Name)}}}
}

// checkPools checks p against the stored pools (fetched once into *seen)
// other than those the file rewrites, and against the file's earlier
// pools; a pool the file rewrites must keep its CIDR and block size.
func checkPools(ctx context.Context, c *client.Client, p *v3.IPPool, seen *[]*v3.IPPool, prior *map[string]*v3.IPPool, rs []v3.Resource, warn func(error) error) error {
	if *seen == nil {
		inFile := map[string]bool{}
		for _, r := range rs {
			if r.GetTypeMeta().Kind == v3.KindIPPool {
				inFile[r.GetObjectMeta().Name] = true
			}
		}
		stored, _, err := c.List(ctx, v3.KindIPPool, client.ListOptions{})
		if err = warn(err); err != nil {
			return err
		}
		*seen = []*v3.IPPool{}
		for _, s := range stored {
			if !inFile[s.GetObjectMeta().Name] {
				*seen = append(*seen, s.(*v3.IPPool))
			} else {
				(*prior)[s.GetObjectMeta().Name] = s.(*v3.IPPool)
			}
		}
	}
	if old, ok := (*prior)[p.Name]; ok {
		if err := v3.ValidateIPPoolUpdate(old, p); err != nil {
			return err
		}
	}
	if err := v3.CheckPoolOverlap(p, *seen); err != nil {
		return err
	}
	*seen = append(*seen, p)
	return nil
}

func checkTier(ctx context.Context, c *client.Client, tier string, known map[string]bool) error {
	if tier == "" || known[tier] {
		return nil
	}
	_, err := c.Get(ctx, v3.KindTier, "", tier)
	if errors.Is(err, cerrors.ErrNotFound) {
		return &cerrors.Validation{Fields: []cerrors.FieldError{{Field: "Spec.Tier", Value: tier, Reason: "tier does not exist"}}}
	}
	if err == nil {
		known[tier] = true
	}
	return err
}
