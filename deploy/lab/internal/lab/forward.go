package lab

import (
	"io"
	"net"
	"sync"

	"github.com/calico-etcd/calico/testutil"
)

// forward listens on listenAddr inside ns and relays each connection to
// target, dialled from the root namespace. It lets daemons in a host
// namespace reach the lab's etcd at their own 127.0.0.1:2379.
type forward struct {
	ln   net.Listener
	wg   sync.WaitGroup
	stop chan struct{}
}

func newForward(ns *testutil.NetNS, listenAddr, target string) (*forward, error) {
	var ln net.Listener
	err := ns.RunIn(func() error {
		var err error
		ln, err = net.Listen("tcp", listenAddr)
		return err
	})
	if err != nil {
		return nil, err
	}
	f := &forward{ln: ln, stop: make(chan struct{})}
	f.wg.Add(1)
	go f.serve(target)
	return f, nil
}

func (f *forward) serve(target string) {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			t, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer t.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(t, c); done <- struct{}{} }()
			go func() { io.Copy(c, t); done <- struct{}{} }()
			select {
			case <-done:
			case <-f.stop:
			}
		}()
	}
}

// Close stops accepting and ends open relays.
func (f *forward) Close() {
	close(f.stop)
	f.ln.Close()
	f.wg.Wait()
}
