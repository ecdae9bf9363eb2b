// Package ipamcheck checks Calico's IPAM state (package ipam) against the
// WorkloadEndpoints and Nodes that use it, and repairs what it can: the
// library behind `calicoctl ipam check` and the tests' consistency checks.
//
// Check reads blocks, handles, affinities, Nodes and WorkloadEndpoints at
// one revision and reports leaked addresses (allocated, but used by no
// endpoint and no node tunnel), handles whose counts disagree with the
// blocks or that do not exist, and what deleted nodes left behind. With
// Options.Fix it repairs leaks, handles and affinities through the
// guarded writes of ipam.Client (ReleaseIPs, SetHandleCounts,
// ReleaseHostAffinities), so that nothing that changed since the read is
// touched. Removing a deleted node's endpoints and in-use addresses is
// package nodedelete's job.
package ipamcheck
