package status

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/model"
)

var log = logrus.NewEntry(logrus.New())

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestReporterWritesBothKeys(t *testing.T) {
	be := memory.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := NewReporter(be, "h1", 50*time.Millisecond, 200*time.Millisecond, time.Now().Add(-time.Minute), log)
	go r.Run(ctx)
	var rep Report
	waitFor(t, "a second report", func() bool {
		kv, err := be.Get(ctx, model.FelixStatusKey{Hostname: "h1"})
		return err == nil && json.Unmarshal(kv.Value, &rep) == nil && !rep.FirstUpdate
	})
	if rep.Uptime < 60 || rep.Time == "" {
		t.Errorf("report = %+v", rep)
	}
	if _, err := be.Get(ctx, model.FelixStatusKey{Hostname: "h1", Last: true}); err != nil {
		t.Errorf("last_reported_status: %v", err)
	}
	cancel()
	// The live key has a lease: it goes once felix stops refreshing it.
	waitFor(t, "the live key to expire", func() bool {
		_, err := be.Get(context.Background(), model.FelixStatusKey{Hostname: "h1"})
		return err != nil
	})
	if _, err := be.Get(context.Background(), model.FelixStatusKey{Hostname: "h1", Last: true}); err != nil {
		t.Errorf("last_reported_status must stay: %v", err)
	}
}

func TestEndpointReporter(t *testing.T) {
	be := memory.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stale := EndpointKey("h1", "k8s", "ns/old", "eth0")
	if _, err := be.Apply(ctx, &backend.KVPair{Key: stale, Value: []byte(`{"status":"up"}`)}); err != nil {
		t.Fatal(err)
	}
	e := NewEndpointReporter(be, "h1", 0, log)
	go e.Run(ctx)
	k1, k2 := EndpointKey("h1", "k8s", "ns/a", "eth0"), EndpointKey("h1", "k8s", "ns/b", "eth0")
	if k1.WorkloadID != "ns%2fa" {
		t.Errorf("workload ID = %q", k1.WorkloadID)
	}
	keys := func() map[model.WorkloadEndpointStatusKey]string {
		l, err := be.List(ctx, model.FelixStatusListOptions{Hostname: "h1"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[model.WorkloadEndpointStatusKey]string{}
		for _, kv := range l.KVPairs {
			if k, ok := kv.Key.(model.WorkloadEndpointStatusKey); ok {
				out[k] = string(kv.Value)
			}
		}
		return out
	}
	e.Set(map[model.WorkloadEndpointStatusKey]string{k1: "up", k2: "up"})
	waitFor(t, "two up, stale gone", func() bool {
		k := keys()
		return len(k) == 2 && k[k1] == `{"status":"up"}` && k[k2] == `{"status":"up"}`
	})
	e.Set(map[model.WorkloadEndpointStatusKey]string{k1: "down"})
	waitFor(t, "k1 down, k2 gone", func() bool {
		k := keys()
		return len(k) == 1 && k[k1] == `{"status":"down"}`
	})
}
