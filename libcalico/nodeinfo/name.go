// Package nodeinfo answers "who is this host" for the daemons: its Calico
// node name (NODENAME, else the nodename file, else the hostname) and its
// Node resource, which Register creates or updates with the host's BGP
// addresses, AS and Kubernetes node reference (CALICO_K8S_NODE_REF).
//
// Address specs, as Calico's IP and IP6 variables:
//
//	""                 keep the Node's address (IPv4: detect one if it has none)
//	"none"             no address for this family
//	"autodetect"       detect with the method (default first-found)
//	"can-reach=<ip>"   the local address used to reach <ip>
//	"<ip>[/<len>]"     this address; the length comes from the interface
//	                   holding it when omitted
//
// Detection methods (IP_AUTODETECTION_METHOD, IP6_AUTODETECTION_METHOD):
// "first-found" (first global address on an up interface not matching the
// default exclusions), "can-reach=<ip>", "interface=<regex>",
// "skip-interface=<regex>", "cidr=<cidr>[,<cidr>...]" (the first address
// inside one of the CIDRs, on any interface). Calico's
// "kubernetes-internal-ip" is refused with an error saying so: nothing
// here reads the Kubernetes API.
package nodeinfo

import (
	"crypto/sha1" //nolint:gosec // Calico's derivation; not for security
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// DefaultNameFile is where the resolved node name is remembered.
const DefaultNameFile = "/var/lib/calico/nodename"

// NameSource says where ResolveName looks.
type NameSource struct {
	// Getenv reads the environment (os.Getenv when nil); NODENAME wins.
	Getenv func(string) string
	// File is the nodename file (DefaultNameFile when empty).
	File string
	// Hostname is the last resort (os.Hostname when nil).
	Hostname func() (string, error)
}

// ResolveName returns the node name: $NODENAME, else the first line of the
// nodename file, else the lower-cased hostname.
func ResolveName(src NameSource) (string, error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if n := strings.TrimSpace(getenv("NODENAME")); n != "" {
		return n, nil
	}
	file := src.File
	if file == "" {
		file = DefaultNameFile
	}
	data, err := os.ReadFile(file)
	switch {
	case err == nil:
		if n := strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]); n != "" {
			return n, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("reading node name file: %w", err)
	}
	hostname := src.Hostname
	if hostname == nil {
		hostname = os.Hostname
	}
	h, err := hostname()
	if err != nil {
		return "", fmt.Errorf("reading hostname: %w", err)
	}
	if h = strings.ToLower(strings.TrimSpace(h)); h == "" {
		return "", errors.New("no node name: NODENAME, the node name file and the hostname are all empty")
	}
	return h, nil
}

// WriteNameFile records name in path (DefaultNameFile when empty) so later
// starts and the other daemons agree on it; it writes only on change.
func WriteNameFile(path, name string) error {
	if path == "" {
		path = DefaultNameFile
	}
	if old, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(old)) == name {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing node name file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(name+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing node name file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing node name file: %w", err)
	}
	return nil
}

// VXLANTunnelMAC is the MAC address of a node's VXLAN device when its
// Node names none (vxlanTunnelMACAddr, vxlanTunnelMACAddrV6): derived from
// the node name as Calico's felix derives it (0x66 followed by the first
// five bytes of the SHA-1 of the name, or of name+"-v6" for IPv6), so
// every host, and a real Calico host, computes the same one.
func VXLANTunnelMAC(node string, v6 bool) string {
	if v6 {
		node += "-v6"
	}
	sum := sha1.Sum([]byte(node))
	return net.HardwareAddr(append([]byte("f"), sum[:5]...)).String()
}
