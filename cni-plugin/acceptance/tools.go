//go:build tools

package acceptance

// The reference plugins TestMain builds from the module cache; importing
// them here keeps their requirements and checksums in go.mod and go.sum,
// so that the module builds them outside the workspace too.
import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/ptp"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
