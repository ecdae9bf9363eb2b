package agent

import (
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

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"
)

// Handler serves one request. ctx ends when the plugin binary that sent
// it goes away (killed by its runtime, say).
type Handler func(ctx context.Context, req *Request) *Response

// Server answers requests on a listener, one goroutine per connection.
// Requests for the same container run one at a time, in arrival order
// as the kernel's socket queue gives them: a DEL sent after a killed ADD
// waits until that ADD has stopped and undone its work.
type Server struct {
	Handler Handler
	// Logf logs a connection the server refused or could not answer;
	// nil discards.
	Logf func(format string, args ...any)

	locks keyedLock
	wg    sync.WaitGroup
}

// maxRequest bounds a request's size: a network configuration with a
// prevResult is a few kilobytes.
const maxRequest = 4 << 20

// readTimeout bounds reading a request once connected.
const readTimeout = 10 * time.Second

// Serve accepts connections until ctx ends, then stops accepting, waits
// for the requests in flight (each bounded by the handler's timeout) and
// returns nil; or returns the listener's error.
func (s *Server) Serve(ctx context.Context, l *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer s.wg.Wait()
	for {
		conn, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if transient(err) { // out of descriptors for a moment, say
				if s.Logf != nil {
					s.Logf("calico-cni-agent: accepting: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			if err := s.serve(conn); err != nil && s.Logf != nil {
				s.Logf("calico-cni-agent: %v", err)
			}
		}()
	}
}

// transient reports whether an accept error passes by itself.
func transient(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ECONNABORTED) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}

func (s *Server) serve(conn *net.UnixConn) error {
	if err := checkPeer(conn); err != nil {
		return s.reply(conn, &Response{Error: types.NewError(types.ErrInternal, err.Error(), "")})
	}
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	netns, err := readHeader(conn)
	if err != nil {
		return fmt.Errorf("reading a request: %w", err)
	}
	if netns != nil {
		defer netns.Close()
	}
	var req Request
	if err := json.NewDecoder(io.LimitReader(conn, maxRequest)).Decode(&req); err != nil {
		return fmt.Errorf("reading a request: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if netns != nil {
		req.Netns = fmt.Sprintf("/proc/self/fd/%d", netns.Fd())
	}
	if req.Version != ProtocolVersion {
		return s.reply(conn, &Response{Direct: true,
			Reason: fmt.Sprintf("request version %d, agent speaks %d", req.Version, ProtocolVersion)})
	}
	// The client sends nothing more: the connection closing is the plugin
	// binary gone, and the request is cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		_, _ = io.Copy(io.Discard, conn)
	}()
	unlock, err := s.locks.lock(ctx, req.ContainerID)
	if err != nil {
		return fmt.Errorf("%s of container %q: the plugin went away while an earlier request of the container ran", req.Command, req.ContainerID)
	}
	defer unlock()
	return s.reply(conn, s.Handler(ctx, &req))
}

// readHeader reads the byte before the request, and the namespace
// descriptor it carries when it is 1.
func readHeader(conn *net.UnixConn) (*os.File, error) {
	hdr, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(hdr, oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if more, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, more...)
			}
		}
	}
	switch {
	case n == 1 && hdr[0] == 0 && len(fds) == 0:
		return nil, nil
	case n == 1 && hdr[0] == 1 && len(fds) == 1:
		return os.NewFile(uintptr(fds[0]), "netns"), nil
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	return nil, fmt.Errorf("bad header %v with %d descriptors", hdr[:n], len(fds))
}

func (s *Server) reply(conn *net.UnixConn, resp *Response) error {
	_ = conn.SetWriteDeadline(time.Now().Add(readTimeout))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		return fmt.Errorf("answering a request: %w", err)
	}
	return nil
}

// checkPeer admits only processes of the agent's own user (root): the
// socket's mode already keeps others out.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("reading the peer's credentials: %w", cerr)
	}
	if uid := uint32(os.Geteuid()); cred.Uid != uid {
		return fmt.Errorf("uid %d may not use calico-cni-agent (it serves uid %d)", cred.Uid, uid)
	}
	return nil
}

// Listen makes the agent's socket at path, mode 0600, replacing a socket
// left by an agent that has stopped; it fails when another agent still
// listens there.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("another calico-cni-agent listens on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// keyedLock is one lock per key, held by one request at a time; waiters
// give up when their context ends.
type keyedLock struct {
	mu sync.Mutex
	m  map[string]*keyEntry
}

type keyEntry struct {
	sem     chan struct{}
	waiters int
}

func (k *keyedLock) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyEntry{sem: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.waiters++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if e.waiters--; e.waiters == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.sem <- struct{}{}:
		return func() { <-e.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
