package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam"
	"github.com/calico-etcd/calico/testutil"
)

// TestIPAMBadArgs fails with a clear message, exit 1 and no change.
func TestIPAMBadArgs(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	before := dump(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ipam", "show", "--ip=10.0.0.300"}, "Error executing command: invalid IP address specified: 10.0.0.300"},
		{[]string{"ipam", "show", "--ip=10.0.0.0/26"}, "invalid IP address specified: 10.0.0.0/26"},
		{[]string{"ipam", "release", "--ip=bogus"}, "invalid IP address specified: bogus"},
		{[]string{"ipam", "release", "--ip="}, "ipam release needs --ip=IP or --from-report=REPORT"},
		{[]string{"ipam", "release"}, "Invalid option"},
		{[]string{"ipam", "release", "--ip=10.0.0.1", "--from-report=r.json"}, "either --ip or --from-report"},
		{[]string{"ipam", "release", "--from-report=/nonexistent/r.json", "--force"}, "no such file or directory"},
		{[]string{"ipam", "show", "--ip=10.0.0.1", "--show-blocks"}, "at most one of"},
		{[]string{"ipam", "show", "extra"}, "Invalid option"},
		{[]string{"ipam", "check", "--min-leak-age=-1s"}, "must not be negative"},
		{[]string{"ipam", "check", "-o", "/nonexistent/dir/r.json"}, "Failed to write the report"},
		{[]string{"ipam", "configure", "--max-blocks-per-host=-2"}, "invalid value for maxblockhost"},
	} {
		r := e.run(tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: want exit 1 and %q:\n%s", tc.args, tc.want, r)
		}
		if strings.Contains(r.stdout, "Successfully") {
			t.Errorf("%v: stdout claims success:\n%s", tc.args, r)
		}
	}
	if after := dump(t); !maps.Equal(before, after) {
		t.Errorf("the datastore changed")
	}
}

// TestIPAMEtcdUnreachable fails within the --timeout bound, naming the
// endpoint.
func TestIPAMEtcdUnreachable(t *testing.T) {
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := newCLI(t)
	c.env["ETCD_ENDPOINTS"] = ep
	for _, args := range [][]string{
		{"ipam", "show"}, {"ipam", "show", "--show-blocks"}, {"ipam", "show", "--show-borrowed"},
		{"ipam", "show", "--show-configuration"}, {"ipam", "show", "--ip=10.0.0.1"},
		{"ipam", "release", "--ip=10.0.0.1"}, {"ipam", "configure", "--strictaffinity=true"},
		{"ipam", "check"}, {"ipam", "check", "--release-leaks"},
	} {
		start := time.Now()
		r := c.run(append(args, "--timeout", "500ms")...)
		took := time.Since(start)
		if r.code != 1 || !strings.Contains(r.stderr, ep) || !strings.Contains(r.stderr, "datastore unavailable") {
			t.Errorf("%v: want exit 1 naming %s:\n%s", args, ep, r)
		}
		if took > 3*time.Second {
			t.Errorf("%v took %v with --timeout 500ms", args, took)
		}
	}
}

func readReport(t *testing.T, path string) *ipamReport {
	t.Helper()
	rep, err := readIPAMReport(path)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (e *ipamEnv) setLocked(locked bool) {
	e.t.Helper()
	ctx := context.Background()
	ci, err := e.cl.ClusterInformations().Get(ctx, "", client.ClusterInformationName)
	if err != nil {
		e.t.Fatal(err)
	}
	ready := !locked
	ci.Spec.DatastoreReady = &ready
	if _, err := e.cl.ClusterInformations().Update(ctx, ci); err != nil {
		e.t.Fatal(err)
	}
}

// TestIPAMReportAndReleaseFromReport writes Calico's report and releases
// from it with Calico's safeguards.
func TestIPAMReportAndReleaseFromReport(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	e.leaky()
	dir := t.TempDir()
	r1 := filepath.Join(dir, "r1.json")
	e.mustRun("ipam", "check", "-o", r1)

	ci, err := e.cl.ClusterInformations().Get(context.Background(), "", client.ClusterInformationName)
	if err != nil {
		t.Fatal(err)
	}
	rep := readReport(t, r1)
	if rep.Version != buildinfo.Version || rep.ClusterGUID == "" || rep.ClusterGUID != ci.Spec.ClusterGUID ||
		rep.ClusterInfoRevision != ci.ResourceVersion || rep.DatastoreLocked {
		t.Fatalf("report metadata %+v", rep)
	}
	if a := rep.Allocations["10.0.0.0"]; len(a) != 1 || a[0].InUse || a[0].Handle != "net.leaked" || a[0].SequenceNumber == nil || a[0].Pod != "gone" {
		t.Fatalf("leak 10.0.0.0: %+v", a)
	}
	if a := rep.Allocations["10.0.0.2"]; len(a) != 1 || !a[0].InUse || !a[0].Borrowed || a[0].Node != "node2" ||
		len(a[0].Owners) != 1 || a[0].Owners[0] != "Workload(ns/node2-k8s-db-eth0)" {
		t.Fatalf("in use 10.0.0.2: %+v", a)
	}
	if len(rep.Allocations) != 6 || len(rep.LeakedHandles) != 1 || rep.LeakedHandles[0].ID != "orphan" {
		t.Fatalf("report %+v", rep)
	}

	before := dump(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--from-report=" + r1}, "data store is not locked. Either lock the data store, or re-run with --force"},
		{[]string{"--from-report=" + rewriteReport(t, r1, func(r *ipamReport) { r.ClusterGUID = "other" }), "--force"}, "mismatched cluster GUID"},
		{[]string{"--from-report=" + rewriteReport(t, r1, func(r *ipamReport) { r.Version = "v9" })}, "different version (v9) of calicoctl"},
		{[]string{"--from-report=" + rewriteReport(t, r1, func(r *ipamReport) { r.ClusterInfoRevision = "1" })}, "the provided reports are all stale"},
	} {
		r := e.run(append([]string{"ipam", "release"}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: want %q:\n%s", tc.args, tc.want, r)
		}
	}
	if !maps.Equal(before, dump(t)) {
		t.Fatal("a refused release changed the datastore")
	}

	// Locking changes ClusterInformation: r1 is now stale, but may be
	// combined with a current report.
	e.setLocked(true)
	if r := e.run("ipam", "release", "--from-report="+r1); r.code != 1 || !strings.Contains(r.stderr, "stale") {
		t.Fatal(r)
	}
	r2 := filepath.Join(dir, "r2.json")
	e.mustRun("ipam", "check", "-o", r2)
	if !readReport(t, r2).DatastoreLocked {
		t.Fatal("r2 does not record the lock")
	}
	r := e.mustRun("ipam", "release", "--from-report="+r1, "--from-report="+r2)
	want := "Releasing 2 old IPs...\nReleased 2 IPs successfully\nDeleting 1 handles...\n" +
		"Key: '.' = Deleted OK; 'x' = skip, handle missing/changed.\n.\nReleased 1 handles; 0 skipped; 0 errors.\nYou may now unlock the data store.\n"
	if r.stdout != want {
		t.Fatalf("got:\n%s\nwant:\n%s", r.stdout, want)
	}
	// Only the ghost's affinity is left, which reports do not release.
	if r := e.mustRun("ipam", "check"); !strings.Contains(r.stdout, "Check complete; found 1 problems.") {
		t.Fatal(r)
	}
	r = e.mustRun("ipam", "release", "--from-report="+r2)
	if !strings.Contains(r.stdout, "2 addresses marked as leaked in the report had already been cleaned up.") ||
		!strings.Contains(r.stdout, "Released 0 handles; 1 skipped; 0 errors.") {
		t.Fatal(r)
	}
}

// TestIPAMReleaseFromStaleReportSparesReassigned never frees an address
// assigned again since the report, even under the same handle, and still
// releases the other leaks.
func TestIPAMReleaseFromStaleReportSparesReassigned(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	e.leaky()
	e.setLocked(true)
	rp := filepath.Join(t.TempDir(), "r.json")
	e.mustRun("ipam", "check", "-o", rp)
	e.mustRun("ipam", "release", "--ip=10.0.0.0")
	if err := e.ipam.AssignIP(context.Background(), ipam.AssignIPArgs{IP: netip.MustParseAddr("10.0.0.0"), HandleID: "net.leaked", Hostname: "node1"}); err != nil {
		t.Fatal(err)
	}
	r := e.mustRun("ipam", "release", "--from-report="+rp)
	if !strings.Contains(r.stdout, "Released 1 IPs successfully\n") ||
		!strings.Contains(r.stdout, "1 addresses marked as leaked in the report have been assigned again since; left them alone.") {
		t.Fatal(r)
	}
	if r := e.mustRun("ipam", "show", "--ip=10.0.0.0"); !strings.Contains(r.stdout, "IP 10.0.0.0 is in use") {
		t.Fatal(r)
	}
	if r := e.mustRun("ipam", "show", "--ip=10.0.1.5"); r.stdout != "10.0.1.5 is not assigned\n" {
		t.Fatal(r)
	}
}

func rewriteReport(t *testing.T, path string, mod func(*ipamReport)) string {
	t.Helper()
	rep := readReport(t, path)
	mod(rep)
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "mod.json")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
