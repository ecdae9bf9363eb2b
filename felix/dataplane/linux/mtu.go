package linux

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/calico-etcd/calico/felix/dpapi"
)

// DefaultMTUIfacePattern is Calico's MTUIfacePattern: the interfaces that
// carry the host's traffic.
const DefaultMTUIfacePattern = `^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)`

// Encapsulation overheads, as Calico's.
const (
	ipipOverhead    = 20
	vxlanOverhead   = 50
	vxlanV6Overhead = 70
	// fallbackHostMTU is used when no interface matches the pattern
	// (Calico's choice: the smallest of common clouds).
	fallbackHostMTU = 1460
)

// HostMTU returns the smallest MTU of the links that match pattern and
// are up, or fallbackHostMTU when none does.
func HostMTU(links []netlink.Link, pattern *regexp.Regexp) int {
	smallest := 0
	for _, l := range links {
		a := l.Attrs()
		if pattern == nil || !pattern.MatchString(a.Name) || a.Flags&net.FlagUp == 0 {
			continue
		}
		if a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown {
			continue
		}
		if smallest == 0 || a.MTU < smallest {
			smallest = a.MTU
		}
	}
	if smallest == 0 {
		return fallbackHostMTU
	}
	return smallest
}

// PodMTU is the MTU pod interfaces should have: the smallest MTU of the
// encapsulations the pools use (configured, else the host MTU less the
// overhead: IPIP 20, VXLAN 50, IPv6 VXLAN 70), else the host MTU.
func PodMTU(hostMTU int, s *dpapi.State, cfg dpapi.Config) int {
	var ipip, vxlan4, vxlan6 bool
	for _, p := range s.Pools {
		if p == nil || !p.CIDR.IsValid() {
			continue
		}
		vx := p.VXLAN == dpapi.EncapAlways || p.VXLAN == dpapi.EncapCrossSubnet
		if p.CIDR.Addr().Is4() {
			ipip = ipip || p.IPIP == dpapi.EncapAlways || p.IPIP == dpapi.EncapCrossSubnet
			vxlan4 = vxlan4 || vx
		} else {
			vxlan6 = vxlan6 || vx
		}
	}
	if cfg.IPIPEnabled != nil { // IpInIpEnabled / VXLANEnabled override the pools
		ipip = *cfg.IPIPEnabled
	}
	if cfg.VXLANEnabled != nil {
		vxlan4 = *cfg.VXLANEnabled
	}
	orDefault := func(v, overhead int) int {
		if v != 0 {
			return v
		}
		return hostMTU - overhead
	}
	mtu := 0
	for _, e := range []struct {
		on  bool
		mtu int
	}{
		{ipip, orDefault(cfg.IPIPMTU, ipipOverhead)},
		{vxlan4, orDefault(cfg.VXLANMTU, vxlanOverhead)},
		{vxlan6, orDefault(cfg.VXLANMTUV6, vxlanV6Overhead)},
	} {
		if e.on && (mtu == 0 || e.mtu < mtu) {
			mtu = e.mtu
		}
	}
	if mtu == 0 {
		return hostMTU
	}
	return mtu
}

// mtuFile keeps the pod MTU file current: the host MTU is detected on
// the first Apply and after each route refresh, the file rewritten
// (atomically) when the pod MTU changes.
type mtuFile struct {
	path    string
	pattern *regexp.Regexp
	log     *logrus.Entry
	hostMTU int // 0: detect again
	written int
}

func newMTUFile(cfg dpapi.Config) (*mtuFile, error) {
	if cfg.MTUFile == "" {
		return nil, nil
	}
	pat := cfg.MTUIfacePattern
	if pat == "" {
		pat = DefaultMTUIfacePattern
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("MTUIfacePattern %q: %w", pat, err)
	}
	return &mtuFile{path: cfg.MTUFile, pattern: re, log: cfg.Log.WithField("file", cfg.MTUFile)}, nil
}

// invalidate makes the next update detect the host MTU again.
func (f *mtuFile) invalidate() {
	if f != nil {
		f.hostMTU = 0
	}
}

// update writes the pod MTU for s if it changed. Failures are logged and
// retried on the next Apply: the rest of the dataplane does not depend on
// the file.
func (f *mtuFile) update(nl *netlink.Handle, s *dpapi.State, cfg dpapi.Config) {
	if f == nil {
		return
	}
	if f.hostMTU == 0 {
		links, err := netlinksafe.Handle{Handle: nl}.LinkList()
		if err != nil {
			f.log.WithError(err).Warn("cannot list links to detect the host MTU")
			return
		}
		f.hostMTU = HostMTU(links, f.pattern)
	}
	mtu := PodMTU(f.hostMTU, s, cfg)
	if mtu == f.written {
		return
	}
	if old, err := os.ReadFile(f.path); err == nil && strings.TrimSpace(string(old)) == strconv.Itoa(mtu) {
		f.written = mtu
		return
	}
	if err := writeAtomic(f.path, []byte(strconv.Itoa(mtu))); err != nil {
		f.log.WithError(err).Warn("cannot write the pod MTU file; pods may get the wrong MTU")
		return
	}
	f.log.WithFields(logrus.Fields{"mtu": mtu, "hostMTU": f.hostMTU}).Info("Wrote the pod MTU")
	f.written = mtu
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
