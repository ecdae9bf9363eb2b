package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/libcalico/model"
)

// ipamReport is the file `ipam check -o` writes and `ipam release
// --from-report` reads, in the JSON of Calico's calicoctl so that either
// tool can read the other's.
type ipamReport struct {
	// Version of the calicoctl that produced the report.
	Version             string `json:"version"`
	ClusterGUID         string `json:"clusterGUID"`
	DatastoreLocked     bool   `json:"datastoreLocked"`
	ClusterInfoRevision string `json:"clusterInformationRevision"`
	ClusterType         string `json:"clusterType"`
	// Allocations maps each allocated address to its allocations; InUse
	// false marks the leaks the check found.
	Allocations   map[string][]reportAllocation `json:"allocations"`
	LeakedHandles []reportHandle                `json:"leakedHandles,omitempty"`
}

type reportAllocation struct {
	IP                string   `json:"ip"`
	Handle            string   `json:"handle,omitempty"`
	SequenceNumber    *uint64  `json:"sequenceNumber,omitempty"`
	Pod               string   `json:"pod,omitempty"`
	Namespace         string   `json:"namespace,omitempty"`
	Node              string   `json:"node,omitempty"`
	Type              string   `json:"type,omitempty"`
	CreationTimestamp string   `json:"creationTimestamp,omitempty"`
	InUse             bool     `json:"inUse"`
	Borrowed          bool     `json:"borrowed,omitempty"`
	Owners            []string `json:"owners"`
}

// reportHandle is a handle with no IPs, with the revision at which the
// check saw it: --from-report deletes it only at that revision.
type reportHandle struct {
	ID       string
	Revision string
}

func newReportAllocation(a ipam.Allocation, inUse bool, owners []string) reportAllocation {
	seq := a.SequenceNumber
	node := allocNode(a)
	return reportAllocation{
		IP: a.IP.String(), Handle: a.Handle, SequenceNumber: &seq,
		Pod: a.Attrs[ipam.AttributePod], Namespace: a.Attrs[ipam.AttributeNamespace], Node: node,
		Type: a.Attrs[ipam.AttributeType], CreationTimestamp: a.Attrs[ipam.AttributeTimestamp],
		InUse: inUse, Borrowed: node != a.BlockHost, Owners: owners,
	}
}

// buildIPAMReport turns a check into a report. Leaks come from the
// check's own consistent read; the other allocations from st.
func buildIPAMReport(st *ipamState, r *ipamcheck.Report, inUse map[netip.Addr][]string) *ipamReport {
	rep := &ipamReport{Version: buildinfo.Version, Allocations: map[string][]reportAllocation{}}
	if ci := st.clusterInfo; ci != nil {
		rep.ClusterGUID, rep.ClusterType, rep.ClusterInfoRevision = ci.Spec.ClusterGUID, ci.Spec.ClusterType, ci.ResourceVersion
		rep.DatastoreLocked = !ci.Spec.Ready()
	}
	type key struct {
		ip  netip.Addr
		seq uint64
	}
	leaked := map[key]bool{}
	for _, a := range r.Leaked {
		leaked[key{a.IP, a.SequenceNumber}] = true
		ip := a.IP.String()
		rep.Allocations[ip] = append(rep.Allocations[ip], newReportAllocation(a, false, nil))
	}
	for _, a := range st.allocs {
		if leaked[key{a.IP, a.SequenceNumber}] {
			continue
		}
		ip := a.IP.String()
		owners := inUse[a.IP]
		if owners == nil {
			owners = []string{}
		}
		rep.Allocations[ip] = append(rep.Allocations[ip], newReportAllocation(a, true, owners))
	}
	for _, p := range r.BadHandles {
		if rev, ok := st.handleRevs[p.Handle]; ok && len(p.Actual) == 0 {
			rep.LeakedHandles = append(rep.LeakedHandles, reportHandle{ID: p.Handle, Revision: strconv.FormatInt(rev, 10)})
		}
	}
	return rep
}

func writeIPAMReport(path string, rep *ipamReport) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func readIPAMReport(path string) (*ipamReport, error) {
	data, err := newInputBudget().read(path, nil)
	if err != nil {
		return nil, err
	}
	var rep ipamReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("reading report %s: %w", path, err)
	}
	return &rep, nil
}

// releaseFromReports releases what every report marks leaked, with
// Calico's safeguards: the reports must be of this cluster, one must be
// current (taken since ClusterInformation last changed), and the
// datastore must be locked (ClusterInformation datastoreReady false),
// the last two unless force. Each address is released only if its handle
// and sequence number are still those of the report, each handle only at
// the report's revision.
func (env *Env) releaseFromReports(ctx context.Context, c *client.Client, ic *ipam.Client, files []string, force bool) error {
	w := env.Stdout
	ci, err := c.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
	if err != nil {
		return failf(err, "Failed to read ClusterInformation: %v", err)
	}
	var reports []*ipamReport
	current := false
	for _, f := range files {
		rep, err := readIPAMReport(f)
		if err != nil {
			return failf(err, "Failed to read report: %v", err)
		}
		if rep.ClusterGUID != ci.Spec.ClusterGUID {
			return failf(nil, "cluster does not match the provided report (%s): mismatched cluster GUID. Refusing to release", f)
		}
		if rep.Version != buildinfo.Version {
			if !force {
				return failf(nil, "the provided report (%s) was produced using a different version (%s) of calicoctl. Refusing to release", f, rep.Version)
			}
			fmt.Fprintln(w, "WARNING: Report was produced using a different version of calicoctl. Ignoring due to --force option")
		}
		current = current || rep.ClusterInfoRevision == ci.ResourceVersion
		reports = append(reports, rep)
	}
	if !current {
		return failf(nil, "the provided reports are all stale - at least one should be up-to-date. Please generate a new report while the data store is locked and try again")
	}
	if ci.Spec.Ready() {
		if !force {
			return failf(nil, "data store is not locked. Either lock the data store, or re-run with --force")
		}
		fmt.Fprintln(w, "WARNING: Data store is not locked. Ignoring due to --force option")
	}
	ips, handles, err := mergeReports(reports)
	if err != nil {
		return failf(err, "Failed to read report: %v", err)
	}

	var errs []error
	if len(ips) == 0 {
		fmt.Fprintln(w, "Report didn't contain any leaked IPs to clean up.")
	} else {
		fmt.Fprintf(w, "Releasing %d old IPs...\n", len(ips))
		release, gone, changed, err := stillLeaked(ctx, ic, ips, env.skipCorrupt)
		if err != nil {
			return failf(err, "Failed to read IPAM allocations: %v", err)
		}
		var unallocated []netip.Addr
		if len(release) > 0 {
			unallocated, err = ic.ReleaseIPs(ctx, release...)
		}
		if err != nil {
			fmt.Fprintf(w, "An error occurred while releasing some IPs: %v.  Problems are often caused by an out-of-date IPAM report.  Try regenerating the IPAM report and retry.\n", err)
			errs = append(errs, err)
		} else {
			fmt.Fprintf(w, "Released %d IPs successfully\n", len(release)-len(unallocated))
		}
		if n := gone + len(unallocated); n != 0 {
			fmt.Fprintf(w, "%d addresses marked as leaked in the report had already been cleaned up.\n", n)
		}
		if changed != 0 {
			fmt.Fprintf(w, "%d addresses marked as leaked in the report have been assigned again since; left them alone.\n", changed)
		}
	}
	if len(handles) == 0 {
		fmt.Fprintln(w, "Report didn't contain any handles to clean up.")
	} else if err := env.deleteHandles(ctx, c, handles); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return failf(err, "Failed to release everything the report lists: %v", err)
	}
	fmt.Fprintln(w, "You may now unlock the data store.")
	return nil
}

// stillLeaked splits the report's leaks by what the cluster holds now:
// those still allocated with the report's handle and sequence number (to
// release), those no longer allocated, and those assigned again since.
// ReleaseIPs checks handle and sequence number again as it writes; this
// pass only keeps one changed address from failing the release of the
// others in its block.
func stillLeaked(ctx context.Context, ic *ipam.Client, ips []ipam.ReleaseOptions, warn func(error) error) (release []ipam.ReleaseOptions, gone, changed int, err error) {
	// An address in a block that does not decode counts as gone: it
	// cannot be released.
	allocs, err := ic.Allocations(ctx)
	if err = warn(err); err != nil {
		return nil, 0, 0, err
	}
	now := make(map[netip.Addr]ipam.Allocation, len(allocs))
	for _, a := range allocs {
		now[a.IP] = a
	}
	for _, o := range ips {
		a, ok := now[o.Address]
		handle, _, _ := strings.Cut(o.Handle, "\r")
		switch {
		case !ok:
			gone++
		case o.SequenceNumber != nil && *o.SequenceNumber != a.SequenceNumber, handle != "" && handle != a.Handle:
			changed++
		default:
			release = append(release, o)
		}
	}
	return release, gone, changed, nil
}

// mergeReports returns the leaks common to every report: addresses by
// address (with the last report's handle and sequence number), handles
// by ID and revision.
func mergeReports(reports []*ipamReport) ([]ipam.ReleaseOptions, map[string]int64, error) {
	var ips map[string]ipam.ReleaseOptions
	var handles map[string]int64
	for _, rep := range reports {
		merged := map[string]ipam.ReleaseOptions{}
		for _, allocs := range rep.Allocations {
			for _, a := range allocs {
				if a.InUse {
					continue
				}
				if _, ok := ips[a.IP]; ips != nil && !ok {
					continue
				}
				addr, err := netip.ParseAddr(a.IP)
				if err != nil {
					return nil, nil, fmt.Errorf("bad address %q: %w", a.IP, err)
				}
				merged[a.IP] = ipam.ReleaseOptions{Address: addr.Unmap(), Handle: a.Handle, SequenceNumber: a.SequenceNumber}
			}
		}
		ips = merged
		mh := map[string]int64{}
		for _, h := range rep.LeakedHandles {
			rev, err := strconv.ParseInt(h.Revision, 10, 64)
			if err == nil && rev <= 0 {
				err = errors.New("not positive")
			}
			if err != nil {
				return nil, nil, fmt.Errorf("bad revision %q of handle %s: %w", h.Revision, h.ID, err)
			}
			if old, ok := handles[h.ID]; handles == nil || (ok && old == rev) {
				mh[h.ID] = rev
			}
		}
		handles = mh
	}
	out := make([]ipam.ReleaseOptions, 0, len(ips))
	for _, k := range slices.Sorted(maps.Keys(ips)) {
		out = append(out, ips[k])
	}
	return out, handles, nil
}

// deleteHandles deletes leaked handles, each only at its report revision.
func (env *Env) deleteHandles(ctx context.Context, c *client.Client, handles map[string]int64) error {
	w := env.Stdout
	fmt.Fprintf(w, "Deleting %d handles...\n", len(handles))
	fmt.Fprintln(w, "Key: '.' = Deleted OK; 'x' = skip, handle missing/changed.")
	var released, skipped int
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(handles)) {
		_, err := c.Backend().Delete(ctx, model.HandleKey{HandleID: id}, handles[id])
		switch {
		case err == nil:
			released++
			fmt.Fprint(w, ".")
		case errors.Is(err, cerrors.ErrNotFound), errors.Is(err, cerrors.ErrConflict):
			skipped++
			fmt.Fprint(w, "x")
		default:
			errs = append(errs, err)
			fmt.Fprintf(w, "\nDeleting handle %s failed: %v.\n", id, err)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Released %d handles; %d skipped; %d errors.\n", released, skipped, len(errs))
	return errors.Join(errs...)
}
