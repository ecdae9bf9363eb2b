package commands

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/calico-etcd/calico/libcalico/ipam"
)

// maxFixPasses bounds the repair passes of --release-leaks.
const maxFixPasses = 3

// releaseLeaks is --release-leaks: it repairs (ipam.Check with Fix)
// and checks again; while something the report before found remains (a
// repair skips a handle that an earlier repair of the same pass
// rewrote), it repairs again, up to maxFixPasses. Then it prints each
// problem of before and whether it was repaired, and fails if any was
// not.
func (env *Env) releaseLeaks(ctx context.Context, ic *ipam.Client, before *ipam.CheckReport, minAge time.Duration) error {
	for pass := 1; ; pass++ {
		fix, err := ic.Check(ctx, ipam.CheckOptions{Fix: true, MinLeakAge: minAge})
		if err != nil {
			return failf(err, "Failed to repair IPAM: %v", err)
		}
		after, err := ic.Check(ctx, ipam.CheckOptions{MinLeakAge: minAge})
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
			continue
		}
		env.printFixes(before, after)
		for _, err := range fix.FixErrors {
			fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		}
		if unfixed > 0 || len(fix.FixErrors) > 0 {
			return failf(errors.Join(fix.FixErrors...), "Failed to fix %d problems; run 'calicoctl ipam check' again to see what remains.", max(unfixed, len(fix.FixErrors)))
		}
		return nil
	}
}

// printFixes prints each problem of before and whether the re-check
// after still finds it.
func (env *Env) printFixes(before, after *ipam.CheckReport) {
	w := env.Stdout
	fmt.Fprintf(w, "\nReleasing leaked IPs, bad handles and affinities of deleted nodes...\n")
	fixed := 0
	forEachFix(before, after, func(ok bool, done, notDone string) {
		if ok {
			fixed++
			fmt.Fprintf(w, "  %s\n", done)
		} else {
			fmt.Fprintf(w, "  Could not %s\n", notDone)
		}
	})
	fmt.Fprintf(w, "Fixed %d problems.\n", fixed)
}

// forEachFix calls f for each problem of before that --release-leaks
// repairs, with whether after no longer has it and the sentences saying
// it was, or could not be, repaired.
func forEachFix(before, after *ipam.CheckReport, f func(ok bool, done, notDone string)) {
	type leakID struct {
		ip  netip.Addr
		seq uint64
	}
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
	for _, a := range sortedLeaks(before.Leaked) {
		h := ""
		if a.Handle != "" {
			h = " (handle " + a.Handle + ")"
		}
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
}
