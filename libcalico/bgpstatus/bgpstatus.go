// Package bgpstatus is the protocol bgpd serves on its control socket,
// $CALICO_RUN_DIR/bgpd.ctl, and `calicoctl node status` reads.
//
// The protocol is one request and one answer per connection, each a
// single line of JSON:
//
//	client → server   {"op":"status"}\n
//	server → client   {"routerID":"10.0.0.1","asNumber":64512,"peers4":[...],...}\n
//
// after which the server closes the connection. An answer to an unknown op
// is {"error":"..."}. Serve runs the server side; Client the other.
package bgpstatus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultRunDir is CALICO_RUN_DIR's default.
const DefaultRunDir = "/var/run/calico"

// SocketName is the control socket's file name inside the run directory.
const SocketName = "bgpd.ctl"

// OpStatus asks for a Status.
const OpStatus = "status"

// Peer types, as calicoctl prints them.
const (
	PeerTypeMesh   = "node-to-node mesh"
	PeerTypeGlobal = "global"
	PeerTypeNode   = "node specific"
)

// Peer is one BGP session.
type Peer struct {
	// Address is the peer's IP address.
	Address string `json:"address"`
	// Type is PeerTypeMesh, PeerTypeGlobal or PeerTypeNode.
	Type string `json:"type"`
	// State is the session's administrative state: "up", "down", "start".
	State string `json:"state"`
	// Since is when State last changed, as the server formats it
	// (BIRD style: "2016-11-21" or "09:14:21").
	Since string `json:"since"`
	// Info is the BGP FSM state and any detail ("Established",
	// "Active Socket: Connection refused").
	Info string `json:"info"`
}

// Status is bgpd's view of its sessions.
type Status struct {
	// RouterID is the BGP router ID in use.
	RouterID string `json:"routerID,omitempty"`
	// ASNumber is the local AS.
	ASNumber uint32 `json:"asNumber,omitempty"`
	// Peers4 and Peers6 are the IPv4 and IPv6 sessions.
	Peers4 []Peer `json:"peers4"`
	Peers6 []Peer `json:"peers6"`
	// Version is the server's build version.
	Version string `json:"version,omitempty"`
	// Since is when the server started.
	Since time.Time `json:"since,omitzero"`
}

type request struct {
	Op string `json:"op"`
}

type errorAnswer struct {
	Error string `json:"error"`
}

// SocketPath returns the control socket's path for a run directory; an
// empty runDir means $CALICO_RUN_DIR or else DefaultRunDir.
func SocketPath(runDir string) string {
	if runDir == "" {
		runDir = os.Getenv("CALICO_RUN_DIR")
	}
	if runDir == "" {
		runDir = DefaultRunDir
	}
	return filepath.Join(runDir, SocketName)
}

// Client talks to one control socket.
type Client struct {
	path string
}

// NewClient returns a client of the socket at path.
func NewClient(path string) *Client { return &Client{path: path} }

// Status asks the server for its status. It honours ctx's deadline for the
// connect, the write and the read; without one a call is bounded by 10s.
func (c *Client) Status(ctx context.Context) (Status, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return Status{}, fmt.Errorf("connecting to %s: %w", c.path, err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return Status{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req, _ := json.Marshal(request{Op: OpStatus})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return Status{}, fmt.Errorf("writing to %s: %w", c.path, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return Status{}, fmt.Errorf("reading from %s: %w", c.path, err)
	}
	var ea errorAnswer
	if json.Unmarshal(line, &ea) == nil && ea.Error != "" {
		return Status{}, fmt.Errorf("%s answered: %s", c.path, ea.Error)
	}
	var st Status
	if err := json.Unmarshal(line, &st); err != nil {
		return Status{}, fmt.Errorf("decoding answer from %s: %w", c.path, err)
	}
	return st, nil
}

// Serve answers requests on l until ctx ends, calling status for each
// status request, and closes l before it returns. status must be safe to
// call from several goroutines. Serve returns nil when ctx ends, else the
// accept error.
func Serve(ctx context.Context, l net.Listener, status func() Status) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accepting on %s: %w", l.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(conn, status)
		}()
	}
}

// serveConn answers one request; a slow or silent client is dropped after 5s.
func serveConn(conn net.Conn, status func() Status) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, maxRequest)).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var req request
	var answer any
	switch {
	case json.Unmarshal(line, &req) != nil:
		answer = errorAnswer{Error: "malformed request"}
	case req.Op == OpStatus:
		st := status()
		if st.Peers4 == nil {
			st.Peers4 = []Peer{}
		}
		if st.Peers6 == nil {
			st.Peers6 = []Peer{}
		}
		answer = st
	default:
		answer = errorAnswer{Error: fmt.Sprintf("unknown op %q", req.Op)}
	}
	out, err := json.Marshal(answer)
	if err != nil {
		out, _ = json.Marshal(errorAnswer{Error: err.Error()})
	}
	_, _ = conn.Write(append(out, '\n'))
}

// maxRequest bounds a request line.
const maxRequest = 64 << 10

// Listen removes a stale socket at path, makes its directory and listens
// on it, for servers.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return l, nil
}
