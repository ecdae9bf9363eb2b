package health

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestAggregator(t *testing.T) {
	a := NewAggregator()
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	a.Register("calc", 10*time.Second)
	a.Register("dp", 0)
	if ok, _ := a.Summary(false); ok {
		t.Fatal("live before any report")
	}
	a.Report("calc", true, true)
	a.Report("dp", true, false)
	if ok, _ := a.Summary(false); !ok {
		t.Error("not live after reports")
	}
	if ok, detail := a.Summary(true); ok || !strings.Contains(detail, "- dp") || !strings.Contains(detail, "+ calc") {
		t.Errorf("ready = %v %q", ok, detail)
	}
	now = now.Add(11 * time.Second) // calc stops reporting
	if ok, detail := a.Summary(false); ok || !strings.Contains(detail, "- calc") {
		t.Errorf("stale reporter still live: %q", detail)
	}
}

func TestServe(t *testing.T) {
	a := NewAggregator()
	a.Report("felix", true, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", a.Handler(), logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	get := func(p string) int {
		resp, err := http.Get("http://" + addr.String() + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.ReadAll(resp.Body)
		return resp.StatusCode
	}
	if get("/liveness") != 200 || get("/readiness") != 503 {
		t.Error("want live and not ready")
	}
	a.Report("felix", true, true)
	if get("/readiness") != 200 {
		t.Error("want ready")
	}
}
