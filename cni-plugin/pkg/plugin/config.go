package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/cni-plugin/pkg/k8s"
	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"

	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// CalicoIPAM is the ipam type served in-process.
const CalicoIPAM = netconf.CalicoIPAM

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
	// Kubernetes, Policy and FeatureControl are Calico's sections for
	// Kubernetes mode (see KubeConfig).
	Kubernetes     KubernetesSection `json:"kubernetes"`
	Policy         PolicySection     `json:"policy"`
	FeatureControl FeatureControl    `json:"feature_control"`
	// MTUFile is where calico-felix writes the pod MTU, read at ADD when
	// the configuration sets no mtu (default DefaultMTUFile, as Calico's;
	// a field of this implementation so that hosts sharing a filesystem
	// can each have their own). RequireMTUFile makes a missing file fail
	// the ADD instead of leaving the kernel's default MTU (1500).
	MTUFile        string `json:"mtu_file"`
	RequireMTUFile bool   `json:"require_mtu_file"`
	// AgentSocket is read by the calico binary in front of the agent
	// (package front); checked here, so that a bad one is refused.
	AgentSocket string `json:"agent_socket"`
	// Warnings name settings that are accepted but not acted on; the
	// plugin logs them.
	Warnings []string `json:"-"`
}

// KubernetesSection is the "kubernetes" section.
type KubernetesSection struct {
	Kubeconfig string `json:"kubeconfig"`
	K8sAPIRoot string `json:"k8s_api_root"`
	NodeName   string `json:"node_name"`
}

// PolicySection is the "policy" section: type "k8s" (Kubernetes
// NetworkPolicy, enforced through kube-controllers) or none, and
// overrides of the kubeconfig.
type PolicySection struct {
	Type                    string `json:"type"`
	K8sAPIRoot              string `json:"k8s_api_root"`
	K8sAuthToken            string `json:"k8s_auth_token"`
	K8sClientCertificate    string `json:"k8s_client_certificate"`
	K8sClientKey            string `json:"k8s_client_key"`
	K8sCertificateAuthority string `json:"k8s_certificate_authority"`
}

// FeatureControl is the "feature_control" section: pod annotations that
// are refused unless enabled here.
type FeatureControl struct {
	IPAddrsNoIpam bool `json:"ip_addrs_no_ipam"`
	FloatingIPs   bool `json:"floating_ips"`
}

// KubeConfig is how to reach the Kubernetes API server; not Enabled
// when the configuration names none (etcd mode).
func (c *Config) KubeConfig() k8s.Config {
	root := c.Kubernetes.K8sAPIRoot
	if root == "" {
		root = c.Policy.K8sAPIRoot
	}
	return k8s.Config{
		Kubeconfig: c.Kubernetes.Kubeconfig, APIRoot: root, Token: c.Policy.K8sAuthToken,
		ClientCert: c.Policy.K8sClientCertificate, ClientKey: c.Policy.K8sClientKey, CA: c.Policy.K8sCertificateAuthority,
	}
}

// knownFields are the top-level keys the calico plugin reads or that
// the CNI spec and runtimes add; others draw a warning.
var knownFields = []string{
	"cniVersion", "name", "type", "ipam", "mtu", "nodename", "nodename_file", "nodename_file_optional",
	"datastore_type", "etcd_endpoints", "etcd_key_file", "etcd_cert_file", "etcd_ca_cert_file",
	"etcd_username", "etcd_password", "ipam_lock_file", "log_level", "log_file_path", "log_file_max_size",
	"log_file_max_age", "log_file_max_count", "prevResult",
	"cni.dev/valid-attachments", "container_settings", "dns", "kubernetes", "policy", "feature_control",
	"runtimeConfig", "args", "capabilities", "disableCheck", "disableGC", "mtu_file", "require_mtu_file", "agent_socket",
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
	Kubernetes     KubernetesSection `json:"kubernetes"`
	Policy         PolicySection     `json:"policy"`
	FeatureControl FeatureControl    `json:"feature_control"`
	MTUFile        string            `json:"mtu_file"`
	RequireMTUFile bool              `json:"require_mtu_file"`
	AgentSocket    string            `json:"agent_socket"`
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
	c := &Config{NetConf: *nc, ContainerSettings: x.ContainerSettings, DNS: x.DNS, Raw: data,
		Kubernetes: x.Kubernetes, Policy: x.Policy, FeatureControl: x.FeatureControl,
		MTUFile: x.MTUFile, RequireMTUFile: x.RequireMTUFile, AgentSocket: x.AgentSocket}
	if c.MTUFile == "" {
		c.MTUFile = DefaultMTUFile
	}
	if c.AgentSocket != "" && !filepath.IsAbs(c.AgentSocket) {
		return nil, fmt.Errorf("agent_socket %q is not an absolute path", c.AgentSocket)
	}
	switch c.Policy.Type {
	case "", "k8s":
	default:
		return nil, fmt.Errorf("policy.type %q is not supported (use \"k8s\" or leave it out)", c.Policy.Type)
	}
	if c.Policy.Type == "k8s" && !c.KubeConfig().Enabled() {
		return nil, errors.New("policy.type \"k8s\" needs kubernetes.kubeconfig or k8s_api_root to read pods from")
	}
	if c.Kubernetes.NodeName != "" {
		c.Warnings = append(c.Warnings, "kubernetes.node_name is not used: the node name comes from nodename, nodename_file or the hostname")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err == nil {
		var unknown []string
		for k := range fields {
			if !slices.Contains(knownFields, k) {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		for _, k := range unknown {
			c.Warnings = append(c.Warnings, fmt.Sprintf("network config field %q is not supported; ignored", k))
		}
	}
	for _, r := range x.IPAM.Routes {
		p, ok := netaddr.Prefix(&r.Dst)
		if !ok {
			return nil, fmt.Errorf("ipam route %s has no destination", r.Dst.String())
		}
		c.Routes = append(c.Routes, p.Masked())
	}
	return c, nil
}

// DefaultMTUFile is where calico-felix writes the pod MTU (Calico's path).
const DefaultMTUFile = "/var/lib/calico/mtu"

// PodMTU is the MTU of a new pod's interfaces: the configuration's mtu,
// else the one in MTUFile (one small read), else 0, the kernel's default
// (an error instead when RequireMTUFile is set).
func (c *Config) PodMTU() (int, error) {
	if c.MTU != 0 {
		return c.MTU, nil
	}
	data, err := os.ReadFile(c.MTUFile)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !c.RequireMTUFile:
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("reading the pod MTU from %s (require_mtu_file is set; is calico-felix running?): %w", c.MTUFile, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n < 68 || n > 65535 {
		return 0, fmt.Errorf("pod MTU file %s holds %q, not an MTU", c.MTUFile, strings.TrimSpace(string(data)))
	}
	return n, nil
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
