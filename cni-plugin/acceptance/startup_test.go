package acceptance

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHugeHeapInitialisesFirst checks, on the built binaries, the init
// order package hugeheap relies on: it runs before protobuf, gRPC and
// etcd's packages allocate.
func TestHugeHeapInitialisesFirst(t *testing.T) {
	for _, bin := range []string{"calico", "calico-ipam"} {
		cmd := exec.Command(filepath.Join(binDir, bin))
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", "CNI_COMMAND=VERSION")
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s VERSION: %v\n%s", bin, err, stderr.String())
		}
		var order []string
		for _, line := range strings.Split(stderr.String(), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
				order = append(order, f[1])
			}
		}
		const grpc = "google.golang.org/grpc" // the package itself
		// Light packages ready earlier (gRPC's backoff, say) may go first.
		at := func(prefix string) int {
			for i, p := range order {
				if p == prefix || strings.HasPrefix(p, prefix+"/") && prefix != grpc {
					return i
				}
			}
			return -1
		}
		hh := at("github.com/calico-etcd/calico/cni-plugin/internal/hugeheap")
		if hh < 0 {
			t.Fatalf("%s: hugeheap not initialised; init order %v", bin, order)
		}
		for _, heavy := range []string{"google.golang.org/protobuf", "google.golang.org/genproto", "go.etcd.io/etcd", "github.com/golang/protobuf", grpc} {
			if i := at(heavy); i < 0 || i < hh {
				t.Errorf("%s: %s initialised at %d, hugeheap at %d", bin, heavy, i, hh)
			}
		}
	}
}
