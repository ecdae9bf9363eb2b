package mirror_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend/memory"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/model"

	"github.com/calico-etcd/calico/kube-controllers/mirror"
)

func profile(name string, labels map[string]string) *v3.Profile {
	p := v3.NewProfile()
	p.Name = name
	p.Spec.LabelsToApply = labels
	return p
}

var kind = mirror.Kind[*v3.Profile]{
	Name:  "test",
	Owns:  func(k mirror.Key) bool { return strings.HasPrefix(k.Name, "kns.") },
	Same:  func(want, have *v3.Profile) bool { return want.Spec.LabelsToApply["x"] == have.Spec.LabelsToApply["x"] },
	Merge: func(want, have *v3.Profile) *v3.Profile { out := v3.Clone(have); out.Spec = want.Spec; return out },
}

// feed copies the store into the mirror's etcd view, as the syncer would.
func feed(t *testing.T, c *client.Client, m *mirror.Mirror[*v3.Profile]) {
	t.Helper()
	ps, _, err := c.Profiles().List(context.Background(), client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		m.OnEtcdUpdate(model.ResourceKey{Kind: v3.KindProfile, Name: p.Name}, p)
	}
}

func TestMirrorConverges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memory.New()
	defer store.Close()
	c := client.New(store)
	for _, p := range []*v3.Profile{profile("kns.stale", nil), profile("kns.old", map[string]string{"x": "1"}), profile("mine", nil)} {
		if _, err := c.Profiles().Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	m := mirror.New(kind, c.Profiles(), logrus.NewEntry(l), nil)
	go m.Run(ctx, 2, 0)
	m.Want(profile("kns.old", map[string]string{"x": "2"}))
	m.Want(profile("kns.new", nil))
	feed(t, c, m)
	time.Sleep(100 * time.Millisecond)
	// Neither side is complete: nothing may have been written.
	if _, err := c.Profiles().Get(ctx, "", "kns.new"); !errors.Is(err, cerrors.ErrNotFound) {
		t.Fatalf("written before sync: %v", err)
	}
	m.OnEtcdStatus(true)
	if m.Ready() {
		t.Fatal("ready before the source synced")
	}
	m.SourceSynced()
	deadline := time.Now().Add(5 * time.Second)
	for {
		old, err1 := c.Profiles().Get(ctx, "", "kns.old")
		_, err2 := c.Profiles().Get(ctx, "", "kns.new")
		_, err3 := c.Profiles().Get(ctx, "", "kns.stale")
		if err1 == nil && old.Spec.LabelsToApply["x"] == "2" && err2 == nil && errors.Is(err3, cerrors.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged: old %v %v, new %v, stale %v", old, err1, err2, err3)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Profiles().Get(ctx, "", "mine"); err != nil {
		t.Errorf("a profile not owned was touched: %v", err)
	}
	if !m.Ready() || m.QueueLen() != 0 {
		t.Errorf("ready %v, queue %d", m.Ready(), m.QueueLen())
	}
}
