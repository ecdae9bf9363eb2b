package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/calicoctl/internal/migrate"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
)

// importMaxInFlight is the least number of writes datastore migrate
// import keeps in flight (see --max-inflight): a move writes every
// endpoint of the cluster.
const importMaxInFlight = 8

func newDatastoreCmd(env *Env) *cobra.Command {
	migrateCmd := newGroup(&cobra.Command{
		Use:   "migrate",
		Short: "Export the datastore to a file, import it into an empty etcd, lock and unlock it",
		Long: `Move the contents of a Calico etcd datastore to another etcd cluster, or back
them up and restore them. As in Calico: lock the datastore, export its
contents (the v3 resources and the IPAM state) to a file, import the file
into an empty datastore, and unlock when done.

  calicoctl datastore migrate lock
  calicoctl datastore migrate export > datastore.yaml
  calicoctl datastore migrate unlock          # the source, if it stays in use
  ETCD_ENDPOINTS=https://new:2379 calicoctl datastore migrate import -f datastore.yaml
  ETCD_ENDPOINTS=https://new:2379 calicoctl datastore migrate unlock

A locked datastore has ClusterInformation datastoreReady false. The file is
Calico's export format, so files move between this calicoctl and Calico's.`,
	}, newMigrateExportCmd(env), newMigrateImportCmd(env), newMigrateLockCmd(env), newMigrateUnlockCmd(env))
	return newGroup(&cobra.Command{
		Use:   "datastore",
		Short: "Calico datastore management",
		Long:  `Manage the Calico datastore: move its contents to another etcd, back it up and restore it.`,
	}, migrateCmd)
}

func newMigrateExportCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Export the contents of the etcdv3 datastore to yaml",
		Long: `Export every resource and the IPAM state (block affinities, blocks, handles,
IPAM configuration) to stdout, read at one revision, for 'calicoctl
datastore migrate import'. Unlike Calico's, the export also holds
WorkloadEndpoints and Profiles, which Calico leaves to Kubernetes: it is a
whole copy of the datastore. uid, resourceVersion and creationTimestamp
are left out, as in Calico. The datastore must be locked.`,
		Example: `  calicoctl datastore migrate export > datastore.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runExport(cmd.Context())
		},
	}
}

func newMigrateImportCmd(env *Env) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "import -f FILENAME",
		Short: "Store the exported resources and IPAM state into an empty etcdv3 datastore",
		Long: `Import a file written by 'calicoctl datastore migrate export' into a datastore
that holds no Calico resources (beyond its ClusterInformation and built-in
tiers) and no IPAM state. The whole file is read and checked before anything
is written. The datastore is locked, the resources are applied, the
ClusterInformation takes the exported cluster GUID and Calico version, and
the IPAM keys are created as they were. The datastore stays locked: unlock
it with 'calicoctl datastore migrate unlock'.`,
		Example: `  calicoctl datastore migrate import -f datastore.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.runImport(cmd.Context(), file)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", `filename to use to import resources ("-" reads stdin)`)
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func newMigrateLockCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "lock",
		Short: "Lock the datastore to prevent changes during migration",
		Long: `Lock the datastore: set ClusterInformation datastoreReady to false. Export,
ipam split and ipam release --from-report (without --force) need it. While it is
locked the CNI plugin refuses ADD and DEL (try again later).`,
		Example: `  calicoctl datastore migrate lock`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := env.Client()
			if err != nil {
				return err
			}
			return env.lock(cmd.Context(), c)
		},
	}
}

func newMigrateUnlockCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:     "unlock",
		Short:   "Unlock the datastore to allow changes after migration",
		Long:    `Unlock the datastore: set ClusterInformation datastoreReady to true.`,
		Example: `  calicoctl datastore migrate unlock`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := env.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := setDatastoreReady(ctx, c, true); err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "Datastore unlocked.")
			return nil
		},
	}
}

// lock initializes the datastore if need be and locks it.
func (env *Env) lock(ctx context.Context, c *client.Client) error {
	if err := c.EnsureInitialized(ctx); err != nil {
		return failf(err, "unable to initialize cluster information for the datastore migration: %v", err)
	}
	if err := setDatastoreReady(ctx, c, false); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "Datastore locked.")
	return nil
}

// setDatastoreReady sets ClusterInformation datastoreReady, retrying
// when another writer got there first.
func setDatastoreReady(ctx context.Context, c *client.Client, ready bool) error {
	what := "locking"
	if ready {
		what = "unlocking"
	}
	for attempt := 0; ; attempt++ {
		ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
		if err != nil {
			return failf(err, "error retrieving ClusterInformation for %s: %v", what, err)
		}
		ci.Spec.DatastoreReady = &ready
		_, err = c.ClusterInformations().Update(ctx, ci)
		if errors.Is(err, cerrors.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return failf(err, "error updating ClusterInformation for %s: %v", what, err)
		}
		return nil
	}
}

// checkLocked reports whether ClusterInformation says datastoreReady
// false.
func checkLocked(ctx context.Context, c *client.Client) (bool, error) {
	ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
	if err != nil {
		return false, fmt.Errorf("error retrieving ClusterInformation: %w", err)
	}
	return !ci.Spec.Ready(), nil
}

func (env *Env) runExport(ctx context.Context) error {
	c, err := env.Client()
	if err != nil {
		return err
	}
	locked, err := checkLocked(ctx, c)
	if err != nil {
		return failf(err, "error while checking if datastore was locked: %v", err)
	}
	if !locked {
		return failf(nil, "datastore is not locked. Run the `calicoctl datastore migrate lock` command in order to begin migration")
	}
	snap, err := migrate.Read(ctx, c.Backend())
	if err != nil {
		return failf(err, "error reading the datastore for export: %v", err)
	}
	env.warnCorrupt(snap.Skipped...)
	if err := snap.Write(env.Stdout); err != nil {
		return failf(err, "error writing the export: %v", err)
	}
	return nil
}

// runImport checks the whole file and the target before it writes.
func (env *Env) runImport(ctx context.Context, file string) error {
	data, err := newInputBudget().read(file, env.Stdin)
	if err != nil {
		return failf(err, "error while reading migration file: %v", err)
	}
	parts, err := migrate.Split(data)
	if err != nil {
		return failf(err, "error while reading migration file: imported file: %s is improperly formatted (%v). Try recreating with 'calicoctl datastore migrate export'", displayName(file), err)
	}
	yamlPart, _, err := migrate.DropUnknownLists(parts.Resources)
	if err != nil {
		return failf(err, "failed to import v3 resources: %v", err)
	}
	rs, err := parseManifests(yamlPart)
	if err != nil {
		return failf(err, "failed to import v3 resources: %v", err)
	}
	for i, r := range rs {
		if err := setNamespace(r, "", false); err != nil {
			return failf(err, "failed to import v3 resources: %s: %v", ident(r), err)
		}
		stripForWrite(rs[i])
	}
	ci, err := migrate.ParseClusterInfo(parts.ClusterInfo)
	if err != nil {
		return failf(err, "failed to update cluster information: error reading exported cluster info for migration: %v", err)
	}
	entries, err := migrate.ParseIPAM(parts.IPAM)
	if err != nil {
		return failf(err, "failed to read IPAM resources: %v", err)
	}

	c, err := env.Client()
	if err != nil {
		return err
	}
	if err := migrate.CheckEmpty(ctx, c.Backend()); err != nil {
		return failf(err, "datastore already has Calico resources: %v. Import needs an empty datastore: remove everything under /calico/ first", err)
	}
	if err := env.prevalidate(ctx, c, applyVerb.verb, rs, false); err != nil {
		err = env.reportWrite(applyVerb, rs, nil, err)
		return failf(err, "failed to import v3 resources: %v", err)
	}

	if err := c.EnsureInitialized(ctx); err != nil {
		return failf(err, "unable to initialize cluster information for the datastore migration: %v", err)
	}
	locked, err := checkLocked(ctx, c)
	if err != nil {
		return failf(err, "error while checking if datastore was locked: %v", err)
	}
	if !locked {
		if err := env.lock(ctx, c); err != nil {
			return failf(err, "error while attempting to lock the datastore for import: %v", err)
		}
	}
	written, err := writeAll(ctx, c, rs, applyVerb, false, max(env.MaxInFlight, importMaxInFlight))
	if err := env.reportWrite(applyVerb, rs, written, err); err != nil {
		return failf(err, "failed to import v3 resources: %v", err)
	}
	if err := adoptClusterInfo(ctx, c, ci); err != nil {
		return failf(err, "failed to update cluster information: %v", err)
	}

	fmt.Fprintln(env.Stdout, "Importing IPAM resources")
	n, err := migrate.WriteIPAM(ctx, c.Backend(), entries)
	switch {
	case err != nil && n == 0:
		return failf(err, "failed to import any IPAM resources: %v", err)
	case err != nil:
		fmt.Fprintf(env.Stdout, "Partial success: applied the first %d out of %d IPAM resources\n", n, len(entries))
		return failf(err, "hit error(s): %v", err)
	}
	fmt.Fprintf(env.Stdout, "Successfully applied %d IPAM resource(s)\n", n)
	fmt.Fprintln(env.Stdout, "Datastore information successfully imported. Please refer to the datastore migration documentation for next steps.")
	return nil
}

// adoptClusterInfo gives the datastore the exported cluster's GUID and
// Calico version, as Calico's import does.
func adoptClusterInfo(ctx context.Context, c *client.Client, from *v3.ClusterInformation) error {
	for attempt := 0; ; attempt++ {
		ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
		if err != nil {
			return fmt.Errorf("error retrieving current cluster info for migration: %w", err)
		}
		if from.Spec.ClusterGUID != "" {
			ci.Spec.ClusterGUID = from.Spec.ClusterGUID
		}
		if from.Spec.CalicoVersion != "" {
			ci.Spec.CalicoVersion = from.Spec.CalicoVersion
		}
		_, err = c.ClusterInformations().Update(ctx, ci)
		if errors.Is(err, cerrors.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("error updating current cluster info for migration: %w", err)
		}
		return nil
	}
}

func displayName(file string) string {
	if file == "-" {
		return "stdin"
	}
	return file
}
