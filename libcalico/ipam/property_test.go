package ipam

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/testutil"
)

// propertyAllocations is how many addresses the property test allocates
// (and releases) in all. Under the race detector it runs fewer unless
// IPAM_PROPERTY_ALLOCATIONS says otherwise (5,000 takes ~90 s with -race
// on two cores, ~13 s without).
func propertyAllocations() int {
	if s := os.Getenv("IPAM_PROPERTY_ALLOCATIONS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	if raceEnabled {
		return 1500
	}
	return 5000
}

// TestPropertyConcurrentHosts: 4 simulated hosts × 8 goroutines allocate
// and release addresses at random against a real (embedded) etcd, each
// host through its own etcd connection. Throughout, an observer reads the
// whole IPAM state at one revision and checks that no address is held
// twice and every handle's counts equal its allocations; the workers check
// that no address is handed out while another worker holds it. Releasing
// everything leaves no allocation and no handle.
func TestPropertyConcurrentHosts(t *testing.T) {
	runProperty(t, propertyAllocations())
}

func runProperty(t *testing.T, total int) {
	srv := testutil.StartEtcd(t)
	const hosts, workers = 4, 8
	var envs []*env
	for range hosts {
		be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		envs = append(envs, newEnv(t, be, Options{}))
	}
	// Room for everything at once: 5,000 addresses fit in /18 (16,384).
	envs[0].pool("v4", "10.64.0.0/18", 26)
	envs[0].pool("v6", "fd00:64::/108", 122)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var (
		mu      sync.Mutex
		holder  = map[netip.Addr]string{} // address -> handle holding it
		started atomic.Int64
		failed  atomic.Bool
	)
	fail := func(f string, a ...any) { failed.Store(true); t.Errorf(f, a...) }

	stop := make(chan struct{})
	observed := make(chan int)
	go func() { // the observer
		n := 0
		defer func() { observed <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, e := range readState(t, envs[0].be).Check() {
				fail("invariant: %s", e)
			}
			n++
		}
	}()

	var wg sync.WaitGroup
	for h := range hosts {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, host := envs[h], fmt.Sprintf("host-%d", h)
				rnd := rand.New(rand.NewPCG(uint64(h), uint64(w)))
				var mine []string
				ips := map[string][]netip.Addr{}
				release := func(i int) {
					handle := mine[i]
					mine[i] = mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					mu.Lock()
					for _, a := range ips[handle] {
						delete(holder, a)
					}
					mu.Unlock()
					var err error
					if rnd.IntN(2) == 0 {
						err = e.ipam.ReleaseByHandle(ctx, handle)
					} else {
						var opts []ReleaseOptions
						for _, a := range ips[handle] {
							opts = append(opts, ReleaseOptions{Address: a, Handle: handle})
						}
						var na []netip.Addr
						na, err = e.ipam.ReleaseIPs(ctx, opts...)
						if len(na) != 0 {
							fail("%s: release of %v found unassigned %v", handle, ips[handle], na)
						}
					}
					if err != nil {
						fail("%s: release %s: %v", host, handle, err)
					}
					delete(ips, handle)
				}
				for !failed.Load() {
					if len(mine) > 0 && rnd.IntN(100) < 40 {
						release(rnd.IntN(len(mine)))
						continue
					}
					if started.Add(1) > int64(total) {
						break
					}
					handle := fmt.Sprintf("net.%d-%d-%d", h, w, len(ips)+rnd.IntN(1<<30))
					n6 := 0
					if rnd.IntN(10) == 0 {
						n6 = 1
					}
					v4, v6, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, Num6: n6, HandleID: handle, Hostname: host,
						Attrs: map[string]string{AttributeNode: host}})
					if err != nil {
						fail("%s: assign: %v", host, err)
						return
					}
					got := append(v4.Addrs(), v6.Addrs()...)
					mu.Lock()
					for _, a := range got {
						if other, taken := holder[a]; taken {
							fail("%s given to %s while %s holds it", a, handle, other)
						}
						holder[a] = handle
					}
					mu.Unlock()
					mine = append(mine, handle)
					ips[handle] = got
				}
				for len(mine) > 0 {
					release(len(mine) - 1)
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	checks := <-observed
	final := readState(t, envs[0].be)
	final.MustCheck(t)
	if len(final.Owner) != 0 || len(final.Handles) != 0 {
		t.Fatalf("after releasing everything: %d allocations, %d handles", len(final.Owner), len(final.Handles))
	}
	t.Logf("%d allocations by %d hosts x %d goroutines; %d blocks, %d affinities; %d whole-state invariant checks",
		total, hosts, workers, len(final.Blocks), len(final.Affs), checks)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}
