package kubeapi_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/kubeapi"
)

// The server serves the API with the harness's token, and comes back on
// the same address after a restart with its data (kept in etcd).
func TestAPIServerServesAndRestarts(t *testing.T) {
	e := testutil.StartEtcd(t)
	a := kubeapi.Start(t, e.Endpoint)
	get := func(path string) (int, map[string]any) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test server
		req, _ := http.NewRequest(http.MethodGet, a.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+kubeapi.Token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, body := get("/api/v1/namespaces/default")
	if code != http.StatusOK || body["kind"] != "Namespace" {
		t.Fatalf("GET namespace default: %d %v", code, body)
	}
	uid := body["metadata"].(map[string]any)["uid"]
	a.Stop()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	code, body = get("/api/v1/namespaces/default")
	if code != http.StatusOK || body["metadata"].(map[string]any)["uid"] != uid {
		t.Fatalf("after restart: %d %v, want uid %v", code, body, uid)
	}
}
