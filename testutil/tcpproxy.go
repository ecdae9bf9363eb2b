package testutil

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Proxy forwards every TCP connection accepted by its listener to an
// upstream it dials anew for each. It passes on a stalled upstream as the
// kernel would a stalled peer: data unacknowledged upstream for
// proxyUserTimeout ends both connections.
type Proxy struct {
	ln   net.Listener
	dial func(context.Context) (net.Conn, error)
	// ctx ends dials in progress at Close; wg counts the goroutines
	// Close waits for.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	cut    bool
	closed bool
}

const proxyUserTimeout = 5 * time.Second

// NewProxy serves ln until Close, dialling upstream with dial.
func NewProxy(ln net.Listener, dial func(context.Context) (net.Conn, error)) *Proxy {
	p := &Proxy{ln: ln, dial: dial, conns: map[net.Conn]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.serve()
	return p
}

// Addr is the listener's address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection and closes new ones at once until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore undoes Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Close stops listening, closes every connection and returns once the
// proxy's goroutines have.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(down)
	}
}

func (p *Proxy) forward(down net.Conn) {
	defer p.wg.Done()
	if !p.track(down) {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	up, err := p.dial(ctx)
	cancel()
	if err != nil {
		p.untrack(down)
		return
	}
	if tc, ok := up.(*net.TCPConn); ok {
		setUserTimeout(tc, proxyUserTimeout)
		_ = tc.SetKeepAlive(true)
		_ = tc.SetKeepAlivePeriod(2 * time.Second)
	}
	if !p.track(up) {
		p.untrack(down)
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, down); done <- struct{}{} }()
	go func() { _, _ = io.Copy(down, up); done <- struct{}{} }()
	<-done
	p.untrack(down, up)
	<-done
}

func setUserTimeout(c *net.TCPConn, d time.Duration) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	})
}

// Proxy starts one proxy per member, each listening on host (port 0)
// inside ns (the caller's namespace when nil) and dialling the member
// through the LAN, and returns their URLs in member order. They are
// closed with the cluster.
func (c *EtcdCluster) Proxy(ns *NetNS, host string) ([]string, error) {
	var urls []string
	for _, m := range c.Members {
		u, err := c.ProxyAt(ns, net.JoinHostPort(host, "0"), m)
		if err != nil {
			return nil, err
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// ProxyAt starts a proxy to m listening on addr inside ns (the caller's
// namespace when nil) and returns its URL. It is closed with the cluster.
func (c *EtcdCluster) ProxyAt(ns *NetNS, addr string, m *EtcdMember) (string, error) {
	listen := func() (net.Listener, error) { return net.Listen("tcp", addr) }
	var ln net.Listener
	var err error
	if ns == nil {
		ln, err = listen()
	} else {
		err = ns.RunIn(func() error { ln, err = listen(); return err })
	}
	if err != nil {
		return "", fmt.Errorf("proxy for etcd member %s: %w", m.Name, err)
	}
	target := m.IP + ":2379"
	p := NewProxy(ln, func(ctx context.Context) (net.Conn, error) { return c.DialContext(ctx, "tcp", target) })
	c.mu.Lock()
	c.proxies = append(c.proxies, p)
	c.mu.Unlock()
	return "http://" + p.Addr(), nil
}
