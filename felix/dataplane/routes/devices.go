package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calico-etcd/calico/libcalico/netaddr"
)

// applyVXLAN converges both VXLAN devices.
func (m *Manager) applyVXLAN(d *Desired, links map[string]netlink.Link) error {
	return errors.Join(
		m.applyVXLANDevice(d.VXLAN, VXLANDevice, 50, links),
		m.applyVXLANDevice(d.VXLANV6, VXLANV6Device, 70, links))
}

// applyVXLANDevice makes the device name match want (removing it when
// want is nil). overhead is taken off the parent's MTU when want sets
// none.
func (m *Manager) applyVXLANDevice(want *VXLAN, name string, overhead int, links map[string]netlink.Link) error {
	existing := links[name]
	if want == nil {
		if existing != nil {
			m.log.WithField("device", name).Info("removing VXLAN device: no VXLAN pool")
			if err := m.h.LinkDel(existing); err != nil {
				return fmt.Errorf("removing %s: %w", name, err)
			}
			delete(links, name)
		}
		return nil
	}
	parent := m.parent(want.LocalIP)
	mtu := want.MTU
	if mtu == 0 {
		mtu = 1500 - overhead
		if parent != nil {
			mtu = parent.Attrs().MTU - overhead
		}
	}
	var mac net.HardwareAddr
	if want.MAC != "" {
		mac, _ = net.ParseMAC(want.MAC)
	}
	local := want.LocalIP.AsSlice()
	vx, _ := existing.(*netlink.Vxlan)
	if vx == nil || vx.VxlanId != want.VNI || vx.Port != want.Port || !vx.SrcAddr.Equal(local) || vx.Learning {
		if existing != nil {
			m.log.WithField("device", name).Info("recreating VXLAN device with new parameters")
			if err := m.h.LinkDel(existing); err != nil {
				return fmt.Errorf("removing %s: %w", name, err)
			}
		}
		nl := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu, HardwareAddr: mac},
			VxlanId:   want.VNI,
			SrcAddr:   local,
			Port:      want.Port,
			Learning:  false,
		}
		if parent != nil {
			nl.VtepDevIndex = parent.Attrs().Index
		}
		if err := m.h.LinkAdd(nl); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		l, err := m.h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("reading back %s: %w", name, err)
		}
		existing = l
	}
	if existing.Attrs().MTU != mtu {
		if err := m.h.LinkSetMTU(existing, mtu); err != nil {
			return fmt.Errorf("setting %s MTU: %w", name, err)
		}
	}
	if mac != nil && existing.Attrs().HardwareAddr.String() != mac.String() {
		if err := m.h.LinkSetHardwareAddr(existing, mac); err != nil {
			return fmt.Errorf("setting %s MAC: %w", name, err)
		}
	}
	if err := m.ensureAddr(existing, want.Addr, want.LocalIP.Is6()); err != nil {
		return err
	}
	if existing.Attrs().Flags&net.FlagUp == 0 {
		if err := m.h.LinkSetUp(existing); err != nil {
			return fmt.Errorf("bringing %s up: %w", name, err)
		}
	}
	l, err := m.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", name, err)
	}
	links[name] = l
	return nil
}

// ensureAddr makes addr the only global address of l of one family (none
// when addr is invalid); IPv6 link-local addresses are left alone.
func (m *Manager) ensureAddr(l netlink.Link, addr netip.Prefix, v6 bool) error {
	fam := netlink.FAMILY_V4
	if v6 {
		fam = netlink.FAMILY_V6
	}
	addrs, err := m.h.AddrList(l, fam)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", l.Attrs().Name, err)
	}
	found := false
	for _, a := range addrs {
		p, ok := netaddr.Prefix(a.IPNet)
		if ok && p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if ok && addr.IsValid() && a.IPNet != nil && a.IP.Equal(addr.Addr().AsSlice()) {
			if ones, _ := a.IPNet.Mask.Size(); ones == addr.Bits() {
				found = true
				continue
			}
		}
		if err := m.h.AddrDel(l, &a); err != nil {
			return fmt.Errorf("removing address %s from %s: %w", a.IPNet, l.Attrs().Name, err)
		}
	}
	if !found && addr.IsValid() {
		na := &netlink.Addr{IPNet: netaddr.IPNet(addr)}
		if v6 {
			// No duplicate address detection: the address is IPAM's, and a
			// tentative address would not be usable as a source for a second.
			na.Flags = unix.IFA_F_NODAD
		}
		if err := m.h.AddrReplace(l, na); err != nil {
			return fmt.Errorf("adding address %s to %s: %w", addr, l.Attrs().Name, err)
		}
	}
	return nil
}

// applyIPIP sets up tunl0. Failures are recorded for IPIPStatus and logged
// when they change, never returned: the rest of the dataplane does not
// depend on IPIP.
func (m *Manager) applyIPIP(d *Desired, links map[string]netlink.Link) {
	setErr := func(err error) {
		if err == nil {
			if m.ipipErr != nil {
				m.log.Info("IPIP device configured")
			}
			m.ipipErr = nil
			return
		}
		if m.ipipErr == nil || m.ipipErr.Error() != err.Error() {
			m.log.WithError(err).Error("cannot set up the IPIP device; IPIP routes are not programmed")
		}
		m.ipipErr = err
	}
	if d.IPIP == nil {
		setErr(nil)
		return
	}
	l := links[IPIPDevice]
	if l == nil {
		err := m.h.LinkAdd(&netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: IPIPDevice}})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENODEV) {
				setErr(fmt.Errorf("creating %s: %w: %w", IPIPDevice, ErrIPIPUnsupported, err))
			} else {
				setErr(fmt.Errorf("creating %s: %w", IPIPDevice, err))
			}
			return
		}
		var lerr error
		if l, lerr = m.h.LinkByName(IPIPDevice); lerr != nil {
			setErr(fmt.Errorf("reading back %s: %w", IPIPDevice, lerr))
			return
		}
	}
	mtu := d.IPIP.MTU
	if mtu == 0 {
		mtu = 1480
	}
	if l.Attrs().MTU != mtu {
		if err := m.h.LinkSetMTU(l, mtu); err != nil {
			setErr(fmt.Errorf("setting %s MTU: %w", IPIPDevice, err))
			return
		}
	}
	if err := m.ensureAddr(l, d.IPIP.Addr, false); err != nil {
		setErr(err)
		return
	}
	if err := m.h.LinkSetUp(l); err != nil {
		setErr(fmt.Errorf("bringing %s up: %w", IPIPDevice, err))
		return
	}
	if nl, err := m.h.LinkByName(IPIPDevice); err == nil {
		links[IPIPDevice] = nl
	}
	setErr(nil)
}

// sysctls of a workload interface, relative to /proc/sys.
func sysctls(i Iface) [][2]string {
	out := [][2]string{
		{"net/ipv4/conf/" + i.Name + "/proxy_arp", "1"},
		{"net/ipv4/neigh/" + i.Name + "/proxy_delay", "0"},
		{"net/ipv4/conf/" + i.Name + "/forwarding", "1"},
		{"net/ipv4/conf/" + i.Name + "/route_localnet", "1"},
	}
	if i.IPv6 {
		out = append(out,
			[2]string{"net/ipv6/conf/" + i.Name + "/accept_ra", "0"},
			[2]string{"net/ipv6/conf/" + i.Name + "/forwarding", "1"},
			[2]string{"net/ipv6/conf/" + i.Name + "/proxy_ndp", "1"},
		)
	}
	return out
}

func (m *Manager) applySysctls(d *Desired, links map[string]netlink.Link) error {
	var todo []Iface
	var idx []int
	for _, i := range d.Ifaces {
		l := links[i.Name]
		if l == nil {
			continue
		}
		if m.sysctlsOn[i.Name] == l.Attrs().Index && !m.dirty {
			continue
		}
		todo = append(todo, i)
		idx = append(idx, l.Attrs().Index)
	}
	if len(todo) == 0 {
		return nil
	}
	var errs []error
	done := make([]bool, len(todo))
	err := m.cfg.InNetNS(func() error {
		for n, i := range todo {
			ok := true
			for _, kv := range sysctls(i) {
				p := filepath.Join(m.cfg.ProcSys, kv[0])
				if err := os.WriteFile(p, []byte(kv[1]), 0o644); err != nil {
					errs = append(errs, fmt.Errorf("setting %s: %w", kv[0], err))
					ok = false
				}
			}
			done[n] = ok
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("entering network namespace for sysctls: %w", err)
	}
	for n, i := range todo {
		if done[n] {
			m.sysctlsOn[i.Name] = idx[n]
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) applyNeighs(d *Desired, links map[string]netlink.Link) error {
	var errs []error
	wantARP := map[string]bool{}
	for _, n := range d.Neighs {
		l := links[n.Dev]
		if l == nil {
			continue
		}
		mac, err := net.ParseMAC(n.MAC)
		if err != nil {
			continue
		}
		fam := netlink.FAMILY_V4
		if n.IP.Is6() {
			fam = netlink.FAMILY_V6
		}
		wantARP[n.Dev+"|"+n.IP.String()] = true
		if err := m.h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: fam, State: netlink.NUD_PERMANENT,
			IP: n.IP.AsSlice(), HardwareAddr: mac}); err != nil {
			errs = append(errs, fmt.Errorf("setting neighbour %s on %s: %w", n.IP, n.Dev, err))
		}
	}
	wantFDB := map[string]bool{}
	for _, f := range d.FDBs {
		l := links[f.Dev]
		if l == nil {
			continue
		}
		mac, err := net.ParseMAC(f.MAC)
		if err != nil {
			continue
		}
		wantFDB[f.Dev+"|"+mac.String()] = true
		if err := m.h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: f.Dst.AsSlice(), HardwareAddr: mac}); err != nil {
			errs = append(errs, fmt.Errorf("setting VXLAN FDB entry %s on %s: %w", f.MAC, f.Dev, err))
		}
	}
	// Stale entries on the VXLAN devices (remote hosts that left).
	for _, dev := range []struct {
		name string
		fam  int
		on   bool
	}{{VXLANDevice, netlink.FAMILY_V4, d.VXLAN != nil}, {VXLANV6Device, netlink.FAMILY_V6, d.VXLANV6 != nil}} {
		vx := links[dev.name]
		if vx == nil || !dev.on {
			continue
		}
		idx := vx.Attrs().Index
		if ns, err := m.h.NeighList(idx, dev.fam); err == nil {
			for _, n := range ns {
				if n.State&netlink.NUD_PERMANENT != 0 && !wantARP[dev.name+"|"+n.IP.String()] {
					m.log.WithFields(logrus.Fields{"ip": n.IP, "device": dev.name}).Info("removing stale VXLAN neighbour")
					if err := m.h.NeighDel(&n); err != nil {
						errs = append(errs, fmt.Errorf("removing VXLAN neighbour %s: %w", n.IP, err))
					}
				}
			}
		}
		if ns, err := m.h.NeighList(idx, unix.AF_BRIDGE); err == nil {
			for _, n := range ns {
				if n.State&netlink.NUD_PERMANENT != 0 && n.HardwareAddr != nil && !wantFDB[dev.name+"|"+n.HardwareAddr.String()] {
					m.log.WithFields(logrus.Fields{"mac": n.HardwareAddr, "device": dev.name}).Info("removing stale VXLAN FDB entry")
					if err := m.h.NeighDel(&n); err != nil {
						errs = append(errs, fmt.Errorf("removing VXLAN FDB entry %s: %w", n.HardwareAddr, err))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}
