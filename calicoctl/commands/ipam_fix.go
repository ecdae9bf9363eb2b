package commands

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/libcalico/nodedelete"
)

// maxFixPasses bounds the repair passes of --release-leaks.
const maxFixPasses = 3

// releaseLeaks is --release-leaks. It removes what each deleted node of
// before left behind, through the cascade of `delete node` (package
// nodedelete), then repairs the rest (ipamcheck.Check with Fix) and checks
// again; while something the report before found remains (a repair
// skips a handle that an earlier repair of the same pass rewrote), it
// repairs again, up to maxFixPasses. Then it prints each problem of
// before and whether it was repaired, and fails if any was not.
func (env *Env) releaseLeaks(ctx context.Context, c *client.Client, ic *ipam.Client, before *ipamcheck.Report, minAge time.Duration) error {
	removed := map[string]*nodedelete.Result{}
	deleted := before.DeletedNodes
	for pass := 1; ; pass++ {
		nodeErrs := env.cleanDeletedNodes(ctx, c, ic, deleted, removed)
		fix, err := ipamcheck.Check(ctx, ic, ipamcheck.Options{Fix: true, MinLeakAge: minAge})
		if err != nil {
			return failf(err, "Failed to repair IPAM: %v", err)
		}
		after, err := ipamcheck.Check(ctx, ic, ipamcheck.Options{MinLeakAge: minAge})
		if err != nil {
			return failf(err, "Failed to re-check IPAM after repairs: %v", err)
		}
		unfixed := 0
		forEachFix(before, after, func(ok bool, _, _ string) {
			if !ok {
				unfixed++
			}
		})
		if unfixed > 0 && pass < maxFixPasses {
			deleted = slices.DeleteFunc(slices.Clone(after.DeletedNodes), func(n string) bool { return !slices.Contains(before.DeletedNodes, n) })
			continue
		}
		env.printFixes(before, after, removed)
		errs := append(nodeErrs, fix.FixErrors...)
		for _, err := range errs {
			fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		}
		if unfixed > 0 || len(errs) > 0 {
			return failf(errors.Join(errs...), "Failed to fix %d problems; run 'calicoctl ipam check' again to see what remains.", max(unfixed, len(errs)))
		}
		return nil
	}
}

// cleanDeletedNodes runs the cascade of `delete node` for each of nodes,
// which must still not exist, and adds what it removed to removed.
func (env *Env) cleanDeletedNodes(ctx context.Context, c *client.Client, ic *ipam.Client, nodes []string, removed map[string]*nodedelete.Result) []error {
	var errs []error
	for _, n := range nodes {
		res, err := nodedelete.DeleteWithOptions(ctx, c, ic, n, nodedelete.Options{OnlyIfAbsent: true}, env.warnLog())
		if res != nil {
			sum := removed[n]
			if sum == nil {
				sum = &nodedelete.Result{}
				removed[n] = sum
			}
			sum.HostEndpoints = append(sum.HostEndpoints, res.HostEndpoints...)
			sum.BGPPeers = append(sum.BGPPeers, res.BGPPeers...)
			sum.Configs = append(sum.Configs, res.Configs...)
		}
		if err != nil && !errors.Is(err, nodedelete.ErrNodeExists) { // a node that came back keeps its things
			errs = append(errs, err)
		}
	}
	return errs
}

// printFixes prints each problem of before and whether the re-check
// after still finds it, then what removing deleted nodes removed besides
// (host endpoints, BGP peers, configurations: no IPAM problem).
func (env *Env) printFixes(before, after *ipamcheck.Report, removed map[string]*nodedelete.Result) {
	w := env.Stdout
	fmt.Fprintf(w, "\nReleasing leaked IPs, bad handles and what deleted nodes left behind...\n")
	fixed := 0
	forEachFix(before, after, func(ok bool, done, notDone string) {
		if ok {
			fixed++
			fmt.Fprintf(w, "  %s\n", done)
		} else {
			fmt.Fprintf(w, "  Could not %s\n", notDone)
		}
	})
	for _, n := range slices.Sorted(maps.Keys(removed)) {
		r := removed[n]
		for _, h := range r.HostEndpoints {
			fmt.Fprintf(w, "  Removed host endpoint %s of deleted node %s.\n", h, n)
		}
		for _, p := range r.BGPPeers {
			fmt.Fprintf(w, "  Removed BGP peer %s of deleted node %s.\n", p, n)
		}
		for _, c := range r.Configs {
			fmt.Fprintf(w, "  Removed %s of deleted node %s.\n", c, n)
		}
	}
	fmt.Fprintf(w, "Fixed %d problems.\n", fixed)
}

// leakID identifies one allocation of an address.
type leakID struct {
	ip  netip.Addr
	seq uint64
}

// forEachFix calls f for each problem of before that --release-leaks
// repairs, with whether after no longer has it and the sentences saying
// it was, or could not be, repaired.
func forEachFix(before, after *ipamcheck.Report, f func(ok bool, done, notDone string)) {
	leaks := map[leakID]bool{}
	for _, a := range after.Leaked {
		leaks[leakID{a.IP, a.SequenceNumber}] = true
	}
	badHandles := map[string]bool{}
	for _, p := range after.BadHandles {
		badHandles[p.Handle] = true
	}
	staleHosts := map[string]bool{}
	for _, s := range after.StaleAffinities {
		staleHosts[s.Host] = true
	}
	for _, a := range sortedByIP(before.Leaked) {
		h := handleNote(a.Handle)
		f(!leaks[leakID{a.IP, a.SequenceNumber}], fmt.Sprintf("Released leaked IP %s%s.", a.IP, h), fmt.Sprintf("release leaked IP %s%s.", a.IP, h))
	}
	for _, p := range before.BadHandles {
		if len(p.Actual) == 0 {
			f(!badHandles[p.Handle], "Deleted handle "+p.Handle+", which has no IPs.", "delete handle "+p.Handle+".")
		} else {
			f(!badHandles[p.Handle], "Corrected the counts of handle "+p.Handle+".", "correct the counts of handle "+p.Handle+".")
		}
	}
	for _, id := range before.MissingHandles {
		f(!slices.Contains(after.MissingHandles, id), "Recreated missing handle "+id+".", "recreate missing handle "+id+".")
	}
	hosts := map[string]bool{}
	for _, s := range before.StaleAffinities {
		hosts[s.Host] = true
	}
	for _, h := range slices.Sorted(maps.Keys(hosts)) {
		f(!staleHosts[h], "Released the block affinities of deleted node "+h+".", "release the block affinities of deleted node "+h+".")
	}
	inUse := map[leakID]bool{}
	for _, a := range after.DeletedNodeAllocations {
		inUse[leakID{a.IP, a.SequenceNumber}] = true
	}
	for _, a := range sortedByIP(before.DeletedNodeAllocations) {
		ip := fmt.Sprintf("IP %s%s of deleted node %s.", a.IP, handleNote(a.Handle), a.Attrs[ipam.AttributeNode])
		f(!inUse[leakID{a.IP, a.SequenceNumber}], "Released "+ip, "release "+ip)
	}
	orphans := map[ipamcheck.OrphanedEndpoint]bool{}
	for _, o := range after.OrphanedEndpoints {
		orphans[o] = true
	}
	for _, o := range before.OrphanedEndpoints {
		wep := fmt.Sprintf("workload endpoint %s/%s of deleted node %s.", o.Namespace, o.Name, o.Node)
		f(!orphans[o], "Removed "+wep, "remove "+wep)
	}
}

// handleNote is " (handle H)", or "" for an allocation without handle.
func handleNote(h string) string {
	if h == "" {
		return ""
	}
	return " (handle " + h + ")"
}
