package plugin

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
)

// CalicoIPAM is the ipam type served in-process.
const CalicoIPAM = "calico-ipam"

// Config is the calico plugin's network configuration: the fields both
// Calico plugins read (netconf) and those only this one does.
type Config struct {
	netconf.NetConf
	// ContainerSettings is Calico's per-pod knob set; only
	// allow_ip_forwarding is supported.
	ContainerSettings ContainerSettings `json:"container_settings"`
	// DNS is copied into the result.
	DNS types.DNS `json:"dns"`
	// Routes are the pod's routes via its gateway (Calico reads them from
	// a host-local ipam section); the default routes when empty.
	Routes []netip.Prefix `json:"-"`
	// Raw is the configuration as read, passed on to a delegated IPAM.
	Raw []byte `json:"-"`
}

// ContainerSettings is the "container_settings" section.
type ContainerSettings struct {
	AllowIPForwarding bool `json:"allow_ip_forwarding"`
}

// extra is what Config reads beyond netconf.
type extra struct {
	ContainerSettings ContainerSettings `json:"container_settings"`
	DNS               types.DNS         `json:"dns"`
	IPAM              struct {
		Routes []types.Route `json:"routes"`
	} `json:"ipam"`
}

// ParseConfig decodes and checks a network configuration.
func ParseConfig(data []byte) (*Config, error) {
	nc, err := netconf.Parse(data)
	if err != nil {
		return nil, err
	}
	var x extra
	if err := json.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("parsing network config: %w", err)
	}
	if nc.IPAM.Type == "" {
		return nil, fmt.Errorf("network config has no ipam type")
	}
	if nc.MTU < 0 || (nc.MTU > 0 && nc.MTU < 68) {
		return nil, fmt.Errorf("mtu %d is out of range", nc.MTU)
	}
	c := &Config{NetConf: *nc, ContainerSettings: x.ContainerSettings, DNS: x.DNS, Raw: data}
	for _, r := range x.IPAM.Routes {
		p, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			return nil, fmt.Errorf("ipam route %s has no destination", r.Dst.String())
		}
		ones, _ := r.Dst.Mask.Size()
		if p.Is4In6() {
			p = p.Unmap()
		}
		c.Routes = append(c.Routes, netip.PrefixFrom(p, ones).Masked())
	}
	return c, nil
}

// cniArgs are the CNI_ARGS keys the plugin reads; others are ignored.
type cniArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive // CNI_ARGS key
}

// parseArgs reads CNI_ARGS, ignoring keys it does not know, as Calico
// does (runtimes pass K8S_POD_UID, K8S_POD_INFRA_CONTAINER_ID, ...).
func parseArgs(s string) (ns, pod string, err error) {
	var a cniArgs
	if err := types.LoadArgs(withIgnoreUnknown(s), &a); err != nil {
		return "", "", fmt.Errorf("parsing CNI_ARGS: %w", err)
	}
	return string(a.K8S_POD_NAMESPACE), string(a.K8S_POD_NAME), nil
}

func withIgnoreUnknown(s string) string {
	if s == "" {
		return "IgnoreUnknown=1"
	}
	return "IgnoreUnknown=1;" + s
}
