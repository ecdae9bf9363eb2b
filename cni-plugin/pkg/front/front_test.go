package front

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoClient keeps the calico binary small: what it links must not
// reach the datastore's or Kubernetes' clients, whose start-up the front
// exists to avoid.
func TestLinksNoClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../../cmd/calico").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{"github.com/calico-etcd/calico/libcalico/buildinfo": true}
	for _, dep := range strings.Fields(string(out)) {
		for _, heavy := range []string{"go.etcd.io/", "k8s.io/", "google.golang.org/", "github.com/calico-etcd/calico/libcalico/",
			"github.com/sirupsen/logrus", "github.com/vishvananda/netlink", "github.com/calico-etcd/calico/cni-plugin/pkg/plugin"} {
			if strings.HasPrefix(dep, heavy) && !allowed[dep] {
				t.Errorf("cmd/calico links %s", dep)
			}
		}
	}
}
