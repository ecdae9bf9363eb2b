// Package ipam is Calico's block IPAM over etcd, with Calico's keys and
// JSON, so that it can share a datastore with the reference implementation.
// It is the allocator (AutoAssign, AssignIP, Plan; releases by address,
// handle or node; block affinities; usage) and the Cache its caller may
// keep for it. Checking IPAM against the endpoints and nodes that use it,
// and repairing it, is package ipamcheck's job, through what ipam exports
// for it: DecodeAllocations, Transactor and the guarded writes ReleaseIPs,
// SetHandleCounts and ReleaseHostAffinities.
//
// Pools are cut into blocks (/26 and /122 by default). A host claims
// blocks and assigns addresses from them; each assignment is recorded in
// the block (allocations, a FIFO of unallocated ordinals, attributes) and
// counted in a handle, so that a workload's addresses can be released by
// handle:
//
//	/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26   AllocationBlock
//	/calico/ipam/v2/host/<node>/ipv4/block/10.0.0.0-26  BlockAffinity (pending → confirmed → pendingDeletion)
//	/calico/ipam/v2/handle/<handle>                     IPAMHandle {block: {cidr: count}}
//	/calico/ipam/v2/config                              IPAMConfig
//
// Where it differs from Calico, it is in how it talks to etcd, not in
// what it stores:
//
//   - A block and the handles it affects are written in one etcd
//     transaction guarded by both revisions (backend.Transactor), so a
//     handle's counts always equal its allocations; Calico writes them one
//     after the other.
//   - A failed transaction returns the current values, so a retry under
//     contention costs no extra read. Retries are bounded and jittered.
//   - Reads are batched: an assignment from an affine block with room is
//     two round trips (state with the hinted block, write), three without
//     a hint.
//   - A Client keeps no state of its own. Its caller may give it a Cache
//     (Options.Cache, cache.go), which remembers per host the block last
//     used (the hint above) and serves the host's next assignment in one
//     round trip: a transaction that also guards the Node, the block's
//     pool and every IPReservation (and the block by value as well as
//     revision), and falls back to the full path if any of them moved
//     (warm.go). The client's own releases keep the Cache current. The CNI
//     plugin carries its Cache across processes in its lock file (Hint,
//     SetHint, SaveWarm, LoadWarm), so each plugin process assigns in one
//     round trip too.
//   - An assignment can be planned and committed in two steps (Plan,
//     Plan.Commit; AutoAssign is both): from a cached state the plan
//     names its addresses without any I/O, and the caller's own writes
//     that depend on them (the CNI plugin's WorkloadEndpoint) commit in
//     the assignment's transaction. IPAM never calls back into its
//     caller.
//   - A host looking for a new block probes random candidate block keys of
//     the pool (keys only, one round trip for 32 of them) instead of
//     listing every block in the cluster, so a claim costs the same with
//     ten blocks or ten thousand. Only a pool that probing finds (nearly)
//     full is read as a whole, to find the last free block, reclaim an
//     empty one or borrow.
//   - A request may be idempotent per handle (AutoAssignArgs.ReuseHandle,
//     reuse.go): what the handle holds counts towards it, so a CNI ADD
//     retried after a crash gets its first addresses back. The common
//     case pays nothing for it.
//   - The block of an address is found by reading the key of every block
//     size an address could be in (one round trip), without listing pools
//     or blocks.
//
// Not supported: LoadBalancer (virtual) affinities, Windows reserved
// addresses on new blocks, namespace selectors, KubeVirt persistence.
package ipam
