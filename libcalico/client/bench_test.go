package client_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"
	"github.com/calico-etcd/calico/testutil"
)

func benchClient(b *testing.B) (*client.Client, *clientv3.Client) {
	srv := testutil.StartEtcd(b)
	be, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	// Decoding as calicoctl, felix and confd do (model.Unmarshal).
	return client.New(be, client.WithUnmarshal(gojson.Unmarshal)), srv.RawClient(b)
}

func netset(i int) *v3.GlobalNetworkSet {
	s := v3.NewGlobalNetworkSet()
	s.Name = fmt.Sprintf("set-%06d", i)
	s.Labels = map[string]string{"role": "blocklist", "idx": fmt.Sprint(i % 10)}
	s.Spec.Nets = []string{fmt.Sprintf("10.%d.%d.0/24", i/256%256, i%256), "192.0.2.0/24"}
	return s
}

// BenchmarkCreateVsRawPut: typed-client Create (default, validate, txn)
// against a raw etcd Put of the same bytes, interleaved one for one so
// machine noise hits both alike. Goal: ratio <= 1.3.
func BenchmarkCreateVsRawPut(b *testing.B) {
	const n = 300
	c, raw := benchClient(b)
	if err := c.EnsureInitialized(ctx); err != nil {
		b.Fatal(err)
	}
	var ours, bare time.Duration
	for it := 0; it < b.N; it++ {
		for i := 0; i < n; i++ {
			start := time.Now()
			out, err := c.GlobalNetworkSets().Create(ctx, netset(it*n+i))
			if err != nil {
				b.Fatal(err)
			}
			ours += time.Since(start)
			k, _ := client.KeyFor(out).Path()
			val, _ := jsonCompact(out)
			start = time.Now()
			if _, err := raw.Put(ctx, k+"-raw", val); err != nil {
				b.Fatal(err)
			}
			bare += time.Since(start)
		}
	}
	total := float64(b.N * n)
	b.ReportMetric(float64(ours.Nanoseconds())/total, "create-ns/op")
	b.ReportMetric(float64(bare.Nanoseconds())/total, "rawput-ns/op")
	b.ReportMetric(float64(ours)/float64(bare), "ratio(goal<=1.3)")
}

// BenchmarkList10kVsRawRange: typed List (decode every resource, with
// goccy/go-json as calicoctl lists) against a raw prefix range read of the
// same keys. Goal: ratio <= 2. list-encoding-json-ms is the same List
// decoded with encoding/json, the default.
func BenchmarkList10kVsRawRange(b *testing.B) {
	const n = 10000
	c, raw := benchClient(b)
	if err := c.EnsureInitialized(ctx); err != nil {
		b.Fatal(err)
	}
	tmpl, err := c.GlobalNetworkSets().Create(ctx, netset(n))
	if err != nil {
		b.Fatal(err)
	}
	var ops []clientv3.Op
	for i := 0; i < n; i++ {
		s := netset(i)
		s.UID, s.CreationTimestamp = tmpl.UID, tmpl.CreationTimestamp
		val, _ := jsonCompact(s)
		k, _ := model.ResourceKey{Kind: v3.KindGlobalNetworkSet, Name: s.Name}.Path()
		ops = append(ops, clientv3.OpPut(k, val))
		if len(ops) == 100 || i == n-1 {
			if _, err := raw.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	prefix, _ := model.ResourceListOptions{Kind: v3.KindGlobalNetworkSet}.Prefix()
	// Best of several interleaved rounds: the figure of each side least
	// disturbed by the rest of the machine.
	const rounds = 5
	ours, bare, std := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
	plain := client.New(c.Backend())
	b.ResetTimer()
	for it := 0; it < b.N*rounds; it++ {
		start := time.Now()
		resp, err := raw.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != n+1 {
			b.Fatalf("raw range: %d keys, %v", len(resp.Kvs), err)
		}
		bare = min(bare, time.Since(start))
		start = time.Now()
		items, _, err := c.GlobalNetworkSets().List(ctx, client.ListOptions{})
		if err != nil || len(items) != n+1 {
			b.Fatalf("list: %d items, %v", len(items), err)
		}
		ours = min(ours, time.Since(start))
	}
	for it := 0; it < b.N*rounds; it++ {
		start := time.Now()
		if items, _, err := plain.GlobalNetworkSets().List(ctx, client.ListOptions{}); err != nil || len(items) != n+1 {
			b.Fatalf("list with encoding/json: %d items, %v", len(items), err)
		}
		std = min(std, time.Since(start))
	}
	b.ReportMetric(float64(ours.Microseconds())/1000, "list-ms")
	b.ReportMetric(float64(std.Microseconds())/1000, "list-encoding-json-ms")
	b.ReportMetric(float64(bare.Microseconds())/1000, "rawrange-ms")
	b.ReportMetric(float64(ours)/float64(bare), "ratio(goal<=2)")
}

func jsonCompact(r v3.Resource) (string, error) {
	r.GetTypeMeta().APIVersion = v3.APIVersion
	b, err := jsonMarshal(r)
	return string(b), err
}

var jsonMarshal = json.Marshal
