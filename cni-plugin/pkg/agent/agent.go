// Package agent carries CNI requests from the calico binary to
// calico-cni-agent, the host's long-running plugin, over a unix socket.
//
// A plugin process spends most of an ADD starting up: linking the etcd
// and Kubernetes clients costs about 4 ms before main on a small VM,
// more than the ADD's own work. The calico binary is therefore small: it
// forwards each request to the agent, which serves it with connections
// it keeps open, and runs calico-direct (the whole plugin) itself when
// no agent answers.
//
// One connection carries one request and its response, each a JSON
// object. The request is preceded by one byte, which carries the pod's
// network namespace as a descriptor when the plugin binary could open it:
// the agent then works in the namespace the runtime gave, even when the
// runtime pinned it where the agent cannot see (another mount
// namespace). The client keeps its side open until the response: the
// agent takes the connection closing early as the plugin being killed,
// and cancels the request.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"
)

// DefaultSocket is where calico-cni-agent listens unless the network
// configuration's agent_socket says otherwise.
const DefaultSocket = "/var/run/calico/cni-agent.sock"

// SupportedVersions are the CNI spec versions the plugins speak, the
// calico binary in front of the agent as the whole plugin behind it.
var SupportedVersions = version.PluginSupports("0.3.1", "0.4.0", "1.0.0", "1.1.0")

// ProtocolVersion is the request format; an agent of another version
// answers Direct.
const ProtocolVersion = 1

// Request is one CNI invocation, as the plugin binary received it.
type Request struct {
	Version     int    `json:"version"`
	Command     string `json:"command"`
	ContainerID string `json:"containerID"`
	// Netns is CNI_NETNS. In the agent it is a path to the agent's copy
	// of the descriptor the plugin binary sent, when it sent one.
	Netns  string `json:"netns"`
	IfName string `json:"ifName"`
	Args   string `json:"args"`
	Path   string `json:"path"`
	// Env is the plugin's environment (KEY=value), which the request's
	// settings may come from.
	Env   []string `json:"env"`
	Stdin []byte   `json:"stdin"`
}

// Response is what the plugin binary prints and exits with.
type Response struct {
	// Direct: the agent does not serve this request (a delegated IPAM
	// type, another protocol version); the binary runs it itself.
	Direct bool   `json:"direct,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Stdout is the result to print; Error, when set, the CNI error
	// instead. Stderr is the request's log output.
	Stdout []byte       `json:"stdout,omitempty"`
	Stderr []byte       `json:"stderr,omitempty"`
	Error  *types.Error `json:"error,omitempty"`
}

// ErrNoAgent is returned by Call when nothing listens on the socket: no
// socket file, or one left by an agent that has stopped.
var ErrNoAgent = errors.New("no calico-cni-agent listening")

// Call sends req, and netns (the pod's network namespace, opened; may be
// nil) with it, to the agent at socket and waits for its response.
func Call(ctx context.Context, socket string, req *Request, netns *os.File) (*Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w at %s", ErrNoAgent, socket)
		}
		return nil, fmt.Errorf("connecting to calico-cni-agent at %s: %w", socket, err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	hdr, rights := []byte{0}, []byte(nil)
	if netns != nil {
		hdr[0], rights = 1, unix.UnixRights(int(netns.Fd()))
	}
	if _, _, err := conn.WriteMsgUnix(hdr, rights, nil); err != nil {
		return nil, fmt.Errorf("sending the request to calico-cni-agent at %s: %w", socket, err)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("sending the request to calico-cni-agent at %s: %w", socket, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("calico-cni-agent at %s did not answer: %w", socket, err)
	}
	return &resp, nil
}
