package fvtest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/calico-etcd/calico/testutil"
)

// pingStream sends an ICMP echo request every interval from inside a
// namespace and counts the answers: a lost ping is one never answered.
type pingStream struct {
	conn     net.PacketConn
	dst      *net.IPAddr
	id       uint16
	stopSend chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	sent     int
	answered map[uint16]bool
}

// startPings pings dst from src (an address of ns) every interval.
func startPings(t testing.TB, ns *testutil.NetNS, src, dst netip.Addr, interval time.Duration) *pingStream {
	t.Helper()
	p := &pingStream{dst: &net.IPAddr{IP: dst.AsSlice()}, id: uint16(time.Now().UnixNano()), stopSend: make(chan struct{}),
		answered: map[uint16]bool{}}
	if err := ns.RunIn(func() error {
		var err error
		p.conn, err = net.ListenPacket("ip4:icmp", src.String())
		return err
	}); err != nil {
		t.Fatalf("icmp socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { p.conn.Close() })
	p.wg.Go(p.receive)
	p.wg.Go(func() { p.send(interval) })
	return p
}

func (p *pingStream) send(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := uint16(0); ; seq++ {
		select {
		case <-p.stopSend:
			return
		case <-tick.C:
		}
		msg := []byte{8, 0, 0, 0, byte(p.id >> 8), byte(p.id), byte(seq >> 8), byte(seq)}
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
		p.mu.Lock()
		p.sent++
		p.mu.Unlock()
		_, _ = p.conn.WriteTo(msg, p.dst)
	}
}

func (p *pingStream) receive() {
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		a, ok := from.(*net.IPAddr)
		if !ok || !a.IP.Equal(p.dst.IP) || n < 8 || buf[0] != 0 || binary.BigEndian.Uint16(buf[4:]) != p.id {
			continue
		}
		p.mu.Lock()
		p.answered[binary.BigEndian.Uint16(buf[6:])] = true
		p.mu.Unlock()
	}
}

// stop ends the stream, gives the last requests a second to be answered,
// and returns how many were sent and how many never got an answer.
func (p *pingStream) stop() (sent, lost int) {
	close(p.stopSend)
	time.Sleep(time.Second)
	p.conn.Close()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.sent - len(p.answered)
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
