package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

// counting wraps a backend and counts round trips: every call is one.
type counting struct {
	backend.Client
	tx backend.Transactor
	n  atomic.Int64
}

var (
	_ backend.Client     = (*counting)(nil)
	_ backend.Transactor = (*counting)(nil)
)

func newCounting(be backend.Client) *counting {
	return &counting{Client: be, tx: be.(backend.Transactor)}
}

func (c *counting) Create(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	c.n.Add(1)
	return c.Client.Create(ctx, kv)
}

func (c *counting) Update(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	c.n.Add(1)
	return c.Client.Update(ctx, kv)
}

func (c *counting) Apply(ctx context.Context, kv *backend.KVPair) (*backend.KVPair, error) {
	c.n.Add(1)
	return c.Client.Apply(ctx, kv)
}

func (c *counting) Delete(ctx context.Context, k model.Key, rev int64) (*backend.KVPair, error) {
	c.n.Add(1)
	return c.Client.Delete(ctx, k, rev)
}

func (c *counting) Get(ctx context.Context, k model.Key) (*backend.KVPair, error) {
	c.n.Add(1)
	return c.Client.Get(ctx, k)
}

func (c *counting) List(ctx context.Context, o model.ListOptions) (*backend.KVList, error) {
	c.n.Add(1)
	return c.Client.List(ctx, o)
}

func (c *counting) Read(ctx context.Context, cons backend.Consistency, ops []backend.ReadOp) (*backend.ReadResult, error) {
	c.n.Add(1)
	return c.tx.Read(ctx, cons, ops)
}

func (c *counting) Txn(ctx context.Context, ops []backend.TxnOp) (*backend.TxnResult, error) {
	c.n.Add(1)
	return c.tx.Txn(ctx, ops)
}

func benchBackend(b *testing.B, srv *testutil.Etcd) *etcd.Client {
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	return be
}

// rawTxnRate measures uncontended guarded etcd transactions per second:
// workers goroutines on distinct keys, so none conflicts. With value
// empty it is the smallest such txn (one key, one byte); otherwise the
// shape of the write an allocation commits: a block-sized value and a
// handle, both guarded.
func rawTxnRate(b *testing.B, cli *clientv3.Client, workers, perWorker int, tag string, value []byte) float64 {
	ctx := context.Background()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("/bench/raw/%s/%d", tag, w)
			var rev int64
			for range perWorker {
				cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}
				puts := []clientv3.Op{clientv3.OpPut(key, "x")}
				if len(value) > 0 {
					cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key+"/h"), "=", rev))
					puts = []clientv3.Op{clientv3.OpPut(key, string(value)), clientv3.OpPut(key+"/h", `{"block":{"10.0.0.0/26":1},"deleted":false}`)}
				}
				resp, err := cli.Txn(ctx).If(cmps...).Then(puts...).Commit()
				if err != nil || !resp.Succeeded {
					b.Errorf("raw txn: %v", err)
					return
				}
				rev = resp.Header.Revision
			}
		}()
	}
	wg.Wait()
	return float64(workers*perWorker) / time.Since(start).Seconds()
}

// BenchmarkAllocation reports, from one run against an embedded etcd:
// the raw rate of the guarded txn an allocation commits (serial and 8
// concurrent writers; also the smallest guarded txn), allocations
// per second serially on one host and with 8 hosts concurrently, the
// concurrent rate as a share of the raw concurrent txn rate (each the best
// of three interleaved rounds), and etcd
// round trips per serial allocation for a long-lived client (warm, which
// commits from its cache: warm.go) and for a fresh client per allocation
// as the CNI binary has (cold, with the block hint passed on). The goal
// of 8 hosts at ≥50% of the raw rate is the ratio raw/ours ≤ 2. Each
// iteration does a fixed amount of work, so -benchtime=1x is meaningful.
func BenchmarkAllocation(b *testing.B) {
	const perIter, hosts = 1600, 8
	srv := testutil.StartEtcd(b)
	be := benchBackend(b, srv)
	cnt := newCounting(be)
	e := newEnv(b, cnt, Options{})
	e.pool("bench", "10.128.0.0/12", 26)
	var conc []*Client
	for range hosts {
		c, err := New(benchBackend(b, srv), testLog(b), Options{Cache: NewCache()})
		if err != nil {
			b.Fatal(err)
		}
		conc = append(conc, c)
	}
	ctx := context.Background()
	// The raw txn writes a block as an allocation commits it on average:
	// half its addresses taken, each by its own handle.
	half := newBlock(netip.MustParsePrefix("10.0.0.0/26"), "some-host", time.Now())
	for j := range half.NumAddresses() / 2 {
		assignFromBlock(half, 1, fmt.Sprintf("raw.%d", j), nil, reservations{})
		half.SequenceNumber++
	}
	blockValue, _ := json.Marshal(half)
	var rawTiny, rawSerial, rawConc, serial, concurrent, rtWarm, rtCold float64
	for i := 0; i < b.N; i++ {
		rawTiny += rawTxnRate(b, be.Raw(), hosts, perIter/2, fmt.Sprint("t", i), nil)
		rawSerial += rawTxnRate(b, be.Raw(), 1, perIter, fmt.Sprint("s", i), blockValue)

		host := fmt.Sprintf("serial-%d", i)
		before := cnt.n.Load()
		start := time.Now()
		for j := range perIter {
			if _, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("s.%d.%d", i, j), Hostname: host}); err != nil {
				b.Fatal(err)
			}
		}
		serial += perIter / time.Since(start).Seconds()
		rtWarm += float64(cnt.n.Load()-before) / perIter

		// Cold: a new client per allocation, given the block hint the
		// previous one left, as the CNI plugin passes it in its lock file.
		const cold = 50
		before = cnt.n.Load()
		var hint netip.Prefix
		for j := range cold {
			c, err := New(cnt, testLog(b), Options{Cache: NewCache()})
			if err != nil {
				b.Fatal(err)
			}
			c.SetHint(host, hint)
			if _, _, err := c.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("cold.%d.%d", i, j), Hostname: host}); err != nil {
				b.Fatal(err)
			}
			hint = c.Hint(host)
		}
		rtCold += float64(cnt.n.Load()-before) / cold

		// The concurrent rates, raw and ours, interleaved: the best of
		// several rounds of each, the figure least disturbed by the rest
		// of the machine (one round of each differed by up to 2x).
		const rounds = 3
		var bestRaw, best float64
		for r := range rounds {
			bestRaw = max(bestRaw, rawTxnRate(b, be.Raw(), hosts, perIter/2, fmt.Sprint("c", i, ".", r), blockValue))
			var wg sync.WaitGroup
			start = time.Now()
			for h, c := range conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range perIter / hosts {
						if _, _, err := c.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("c.%d.%d.%d.%d", i, r, h, j), Hostname: fmt.Sprintf("conc-%d-%d", i, h)}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			best = max(best, perIter/time.Since(start).Seconds())
		}
		rawConc += bestRaw
		concurrent += best
	}
	n := float64(b.N)
	b.ReportMetric(rawTiny/n, "raw-tiny-txn-8w/s")
	b.ReportMetric(rawSerial/n, "raw-txn/s")
	b.ReportMetric(rawConc/n, "raw-txn-8w/s")
	b.ReportMetric(serial/n, "alloc-serial/s")
	b.ReportMetric(concurrent/n, "alloc-8hosts/s")
	b.ReportMetric(100*concurrent/rawConc, "8hosts-%-of-raw-8w")
	b.ReportMetric(rawConc/concurrent, "raw-8w-over-8hosts-ratio(goal<=2)")
	b.ReportMetric(rtWarm/n, "rt/alloc-warm")
	b.ReportMetric(rtCold/n, "rt/alloc-cold")
}

// BenchmarkClaim reports the time and round trips for a host to claim its
// first block when the pool already holds 10 or 10,000 blocks, beside the
// time to list every block (what Calico does on each claim).
func BenchmarkClaim(b *testing.B) {
	for _, existing := range []int{10, 10000} {
		b.Run(fmt.Sprintf("blocks=%d", existing), func(b *testing.B) {
			const claims = 20
			srv := testutil.StartEtcd(b)
			be := benchBackend(b, srv)
			cnt := newCounting(be)
			e := newEnv(b, cnt, Options{})
			// /12 of /26 blocks: 16,384 blocks, so 10,000 fill 61% of it.
			e.pool("claim", "10.16.0.0/12", 26)
			p, err := newPool(mustPool(b, e))
			if err != nil {
				b.Fatal(err)
			}
			preload(b, be.Raw(), p, existing)
			ctx := context.Background()
			var perClaim, rts, listAll float64
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := be.List(ctx, model.BlockListOptions{}); err != nil {
					b.Fatal(err)
				}
				listAll += float64(time.Since(start).Microseconds()) / 1000
				before := cnt.n.Load()
				start = time.Now()
				for j := range claims {
					host := fmt.Sprintf("new-%d-%d", i, j)
					if _, _, err := e.ipam.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: host, Hostname: host}); err != nil {
						b.Fatal(err)
					}
				}
				perClaim += float64(time.Since(start).Microseconds()) / 1000 / claims
				rts += float64(cnt.n.Load()-before) / claims
			}
			n := float64(b.N)
			b.ReportMetric(perClaim/n, "ms/claim")
			b.ReportMetric(rts/n, "rt/claim")
			b.ReportMetric(listAll/n, "ms/list-all-blocks")
		})
	}
}

func mustPool(b *testing.B, e *env) *v3.IPPool {
	pools, _, err := e.cl.IPPools().List(context.Background(), client.ListOptions{})
	if err != nil || len(pools) != 1 {
		b.Fatalf("pools %v %v", pools, err)
	}
	return pools[0]
}

// preload writes n blocks at random places in p, 100 per transaction.
func preload(b *testing.B, cli *clientv3.Client, p pool, n int) {
	rnd := rand.New(rand.NewPCG(1, 2))
	seen := map[uint64]bool{}
	now := time.Now().Add(-time.Hour)
	var ops []clientv3.Op
	flush := func() {
		if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for len(seen) < n {
		i := rnd.Uint64N(p.numBlocks())
		if seen[i] {
			continue
		}
		seen[i] = true
		cidr := p.blockAt(i)
		blk := newBlock(cidr, fmt.Sprintf("old-%d", len(seen)%50), now)
		v, _ := json.Marshal(blk)
		key, _ := model.BlockKey{CIDR: cidr}.Path()
		ops = append(ops, clientv3.OpPut(key, string(v)))
		if len(ops) == 100 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
}
