package calc

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/bgpconfig"
	"github.com/calico-etcd/calico/libcalico/selector"
)

// Ranks decide which session wins when several sources name one address:
// a node-specific BGPPeer beats a global one, which beats the mesh.
const (
	rankMesh = iota + 1
	rankGlobal
	rankNode
)

type candidate struct {
	peer bgpconfig.Peer
	rank int
}

// target is the far end of a session: a Calico node or a plain address.
type target struct {
	node      *v3.Node // nil for a peerIP target
	addr      netip.Addr
	port      uint16
	as        uint32
	clusterID string
	// only4 and only6 limit a node target to one address family.
	only4, only6 bool
}

// peers derives every session of this node, one per address, sorted.
func (c *computation) peers() []bgpconfig.Peer {
	byAddr := map[netip.Addr]candidate{}
	add := func(addr netip.Addr, cand candidate) {
		if addr == c.v4.Addr() || addr == c.v6.Addr() {
			return // never peer with ourselves
		}
		if old, ok := byAddr[addr]; ok && old.rank >= cand.rank {
			return
		}
		byAddr[addr] = cand
	}
	c.meshPeers(add)
	c.bgpPeers(add)

	addrs := make([]netip.Addr, 0, len(byAddr))
	for a := range byAddr {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	out := make([]bgpconfig.Peer, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, byAddr[a].peer)
	}
	return out
}

// meshPeers adds a session to every other node with an address of the
// same family, unless nodeToNodeMeshEnabled is false.
func (c *computation) meshPeers(add func(netip.Addr, candidate)) {
	if m := c.def.NodeToNodeMeshEnabled; m != nil && !*m {
		return
	}
	password, ok := c.password(c.def.NodeMeshPassword, "node-to-node mesh")
	if !ok {
		return
	}
	restart := seconds(c.def.NodeMeshMaxRestartTime, DefaultRestartTime)
	for _, name := range sortedKeys(c.s.Nodes) {
		other := c.s.Nodes[name]
		if name == c.node.Name || other.Spec.BGP == nil {
			continue
		}
		for _, fam := range c.families(other) {
			p := bgpconfig.Peer{
				Name:          "Mesh_" + underscored(fam.theirs),
				Address:       fam.theirs.String(),
				ASNumber:      c.nodeAS(other),
				Type:          bgpconfig.PeerTypeMesh,
				Passive:       passiveTowards(fam.mine.Addr(), fam.theirs),
				Password:      password,
				RestartTime:   restart,
				SourceAddress: fam.mine.Addr().String(),
			}
			p.Multihop = p.ASNumber != c.as && !fam.mine.Masked().Contains(fam.theirs)
			add(fam.theirs, candidate{peer: p, rank: rankMesh})
		}
	}
}

type family struct {
	mine   netip.Prefix
	theirs netip.Addr
}

// families pairs this node's addresses with other's, per family both have.
func (c *computation) families(other *v3.Node) []family {
	var out []family
	if other.Spec.BGP == nil {
		return nil
	}
	if t := nodeAddr(other.Spec.BGP.IPv4Address); t.IsValid() && c.v4.IsValid() {
		out = append(out, family{mine: c.v4, theirs: t.Addr()})
	}
	if t := nodeAddr(other.Spec.BGP.IPv6Address); t.IsValid() && c.v6.IsValid() {
		out = append(out, family{mine: c.v6, theirs: t.Addr()})
	}
	return out
}

// bgpPeers adds the sessions BGPPeer resources give this node. A BGPPeer
// applies to the nodes its node/nodeSelector names (all nodes when both
// are empty) and peers them with its peerIP or with every node its
// peerSelector matches; unless reversePeering is Manual, a node matched by
// the peerSelector, or named by the peerIP (address, AS and port), also
// peers back with the nodes the BGPPeer applies to.
func (c *computation) bgpPeers(add func(netip.Addr, candidate)) {
	for _, name := range sortedKeys(c.s.Peers) {
		bp := c.s.Peers[name]
		spec := &bp.Spec
		if spec.LocalWorkloadSelector != "" {
			c.warn("BGPPeer %s: localWorkloadSelector is not supported; peer ignored", name)
			continue
		}
		typ, rank, prefix := bgpconfig.PeerTypeGlobal, rankGlobal, "Global_"
		if spec.Node != "" || spec.NodeSelector != "" {
			typ, rank, prefix = bgpconfig.PeerTypeNode, rankNode, "Node_"
		}
		nodeSel, ok := c.parseSelector(name, "nodeSelector", spec.NodeSelector)
		if !ok {
			continue
		}
		peerSel, ok := c.parseSelector(name, "peerSelector", spec.PeerSelector)
		if !ok {
			continue
		}
		applies := func(n *v3.Node) bool {
			switch {
			case spec.Node != "":
				return n.Name == spec.Node
			case nodeSel != nil:
				return nodeSel.Evaluate(n.Labels)
			}
			return true
		}

		var targets []target
		if applies(c.node) {
			switch {
			case spec.PeerIP != "":
				t, ok := c.ipTarget(name, spec)
				if !ok {
					continue
				}
				targets = append(targets, t)
			case peerSel != nil:
				targets = append(targets, c.nodeTargets(peerSel.Evaluate)...)
			}
		}
		reverse := spec.ReversePeering == nil || *spec.ReversePeering != v3.ReversePeeringManual
		if peerSel != nil && reverse && peerSel.Evaluate(c.node.Labels) {
			for _, n := range c.sortedNodes() {
				if n.Name != c.node.Name && applies(n) {
					targets = append(targets, c.nodeTarget(n))
				}
			}
		}
		// A peerIP naming this node (same AS) peers back too, over that
		// address's family only, as Calico does.
		if me, ok := c.peerIPIsMe(spec); peerSel == nil && reverse && ok {
			for _, n := range c.sortedNodes() {
				if n.Name != c.node.Name && applies(n) {
					t := c.nodeTarget(n)
					t.only6, t.only4 = me.Is6(), me.Is4()
					targets = append(targets, t)
				}
			}
		}
		if len(targets) == 0 {
			continue
		}
		password, ok := c.password(passwordOf(spec), "BGPPeer "+name)
		if !ok {
			continue
		}
		for _, t := range targets {
			for _, p := range c.sessions(name, spec, t, password) {
				p.Type = typ
				p.Name = prefix + underscored(netip.MustParseAddr(p.Address))
				add(netip.MustParseAddr(p.Address), candidate{peer: p, rank: rank})
			}
		}
	}
}

func passwordOf(s *v3.BGPPeerSpec) *v3.BGPPassword { return s.Password }

func (c *computation) parseSelector(peer, field, s string) (selector.Selector, bool) {
	if s == "" {
		return nil, true
	}
	sel, err := selector.Parse(s)
	if err != nil {
		c.warn("BGPPeer %s: %s %q does not parse; peer ignored", peer, field, s)
		return nil, false
	}
	return sel, true
}

func (c *computation) sortedNodes() []*v3.Node {
	out := make([]*v3.Node, 0, len(c.s.Nodes))
	for _, name := range sortedKeys(c.s.Nodes) {
		out = append(out, c.s.Nodes[name])
	}
	return out
}

// nodeTargets returns every other node whose labels match.
func (c *computation) nodeTargets(match func(map[string]string) bool) []target {
	var out []target
	for _, n := range c.sortedNodes() {
		if n.Name != c.node.Name && match(n.Labels) {
			out = append(out, c.nodeTarget(n))
		}
	}
	return out
}

func (c *computation) nodeTarget(n *v3.Node) target {
	t := target{node: n, as: c.nodeAS(n)}
	if n.Spec.BGP != nil {
		t.clusterID = n.Spec.BGP.RouteReflectorClusterID
	}
	return t
}

// ipTarget parses peerIP ("ip", "ipv4:port", "[ipv6]:port").
func (c *computation) ipTarget(name string, spec *v3.BGPPeerSpec) (target, bool) {
	t := target{as: uint32(spec.ASNumber)}
	if ap, err := netip.ParseAddrPort(spec.PeerIP); err == nil {
		t.addr, t.port = ap.Addr(), ap.Port()
	} else if a, err := netip.ParseAddr(spec.PeerIP); err == nil {
		t.addr = a
	} else {
		c.warn("BGPPeer %s: peerIP %q does not parse; peer ignored", name, spec.PeerIP)
		return target{}, false
	}
	if t.as == 0 {
		t.as = c.localAS(spec)
	}
	return t, true
}

// peerIPIsMe reports whether spec's peerIP is this node: its address, its
// AS, and its listen port if the peerIP names one.
func (c *computation) peerIPIsMe(spec *v3.BGPPeerSpec) (netip.Addr, bool) {
	if spec.PeerIP == "" {
		return netip.Addr{}, false
	}
	a, port := netip.Addr{}, uint16(0)
	if ap, err := netip.ParseAddrPort(spec.PeerIP); err == nil {
		a, port = ap.Addr(), ap.Port()
	} else if x, err := netip.ParseAddr(spec.PeerIP); err == nil {
		a = x
	} else {
		return netip.Addr{}, false
	}
	mine := (c.v4.IsValid() && a == c.v4.Addr()) || (c.v6.IsValid() && a == c.v6.Addr())
	if !mine || uint32(spec.ASNumber) != c.as || (port != 0 && port != c.listenPort()) {
		return netip.Addr{}, false
	}
	return a, true
}

func (c *computation) localAS(spec *v3.BGPPeerSpec) uint32 {
	if spec.LocalASNumber != nil && *spec.LocalASNumber != 0 {
		return uint32(*spec.LocalASNumber)
	}
	return c.as
}

// sessions builds the sessions to one target: one for a peerIP, one per
// shared address family for a node.
func (c *computation) sessions(name string, spec *v3.BGPPeerSpec, t target, password string) []bgpconfig.Peer {
	var fams []family
	if t.node == nil {
		mine := c.v4
		if t.addr.Is6() {
			mine = c.v6
		}
		if !mine.IsValid() {
			c.warn("BGPPeer %s: this node has no address of %s's family; peer ignored", name, t.addr)
			return nil
		}
		fams = []family{{mine: mine, theirs: t.addr}}
	} else {
		for _, f := range c.families(t.node) {
			if (!t.only4 || f.theirs.Is4()) && (!t.only6 || f.theirs.Is6()) {
				fams = append(fams, f)
			}
		}
	}
	localAS := c.localAS(spec)
	myCluster := ""
	if c.node.Spec.BGP != nil {
		myCluster = c.node.Spec.BGP.RouteReflectorClusterID
	}
	var out []bgpconfig.Peer
	for _, f := range fams {
		p := bgpconfig.Peer{
			Address:       f.theirs.String(),
			Port:          t.port,
			ASNumber:      t.as,
			Password:      password,
			RestartTime:   seconds(spec.MaxRestartTime, DefaultRestartTime),
			KeepaliveTime: seconds(spec.KeepaliveTime, 0),
			NextHop:       nextHop(spec),
		}
		if p.Port == c.listenPort() || p.Port == v3.DefaultBGPListenPort {
			p.Port = 0
		}
		if spec.LocalASNumber != nil && uint32(*spec.LocalASNumber) != c.as {
			p.LocalASNumber = uint32(*spec.LocalASNumber)
		}
		if spec.SourceAddress != v3.SourceAddressNone {
			p.SourceAddress = f.mine.Addr().String()
		}
		if spec.TTLSecurity != nil {
			p.TTLSecurity = *spec.TTLSecurity
		}
		if n := spec.NumAllowedLocalASNumbers; n != nil && *n > 0 {
			p.AllowOwnAS = uint8(min(*n, 10))
		}
		if t.node != nil || c.isNodeAddr(f.theirs) {
			p.Passive = passiveTowards(f.mine.Addr(), f.theirs)
		}
		if myCluster != "" && t.as == localAS && t.clusterID != myCluster {
			p.RouteReflectorClient, p.ClusterID = true, myCluster
		}
		ebgp := t.as != localAS
		p.Multihop = ebgp && !f.mine.Masked().Contains(f.theirs)
		if spec.ReachableBy != "" {
			c.warn("BGPPeer %s: reachableBy is not supported; the kernel's route to %s is used", name, f.theirs)
		}
		p.ImportRules, p.ExportRules = c.filterRules(name, spec.Filters, f.theirs.Is6(), ebgp)
		out = append(out, p)
	}
	return out
}

// passiveTowards says whether this node (address mine) waits for the
// Calico node at theirs to connect. As Calico's BIRD template (`gt
// $onode_ip $node_ip`, Go's text/template comparing strings) a node is
// passive towards peers whose address is higher *as a string*, so
// "10.0.0.9" counts as higher than "10.0.0.10"; the higher one connects.
// Both sides must agree, or a mesh with Calico's own nodes has sessions
// where both wait.
func passiveTowards(mine, theirs netip.Addr) bool {
	return theirs.String() > mine.String()
}

// isNodeAddr reports whether a is a Calico node's BGP address (a peerIP
// that names a node: Calico's template makes such sessions one-sided
// too).
func (c *computation) isNodeAddr(a netip.Addr) bool {
	for _, n := range c.s.Nodes {
		if n.Spec.BGP == nil {
			continue
		}
		for _, s := range []string{n.Spec.BGP.IPv4Address, n.Spec.BGP.IPv6Address} {
			if p := nodeAddr(s); p.IsValid() && p.Addr() == a {
				return true
			}
		}
	}
	return false
}

func nextHop(spec *v3.BGPPeerSpec) string {
	if spec.KeepOriginalNextHop {
		return bgpconfig.NextHopKeep
	}
	if spec.NextHopMode != nil {
		switch *spec.NextHopMode {
		case v3.NextHopModeSelf:
			return bgpconfig.NextHopSelf
		case v3.NextHopModeKeep:
			return bgpconfig.NextHopKeep
		}
	}
	return bgpconfig.NextHopAuto
}

// password resolves a secretKeyRef; ok is false (with a warning) when it
// cannot, and the sessions needing it are left out.
func (c *computation) password(pw *v3.BGPPassword, what string) (string, bool) {
	if pw == nil || pw.SecretKeyRef == nil {
		return "", true
	}
	ref := pw.SecretKeyRef
	if c.secrets == nil {
		c.warn("%s: password secret %s/%s cannot be read: no secrets source configured; sessions left out", what, ref.Name, ref.Key)
		return "", false
	}
	v, err := c.secrets.Lookup(ref.Name, ref.Key)
	if err != nil {
		if ref.Optional != nil && *ref.Optional {
			return "", true
		}
		c.warn("%s: password secret %s/%s: %v; sessions left out", what, ref.Name, ref.Key, err)
		return "", false
	}
	return v, true
}

func seconds(d *v3.Duration, def time.Duration) uint32 {
	if d != nil && d.Duration > 0 {
		return uint32((d.Duration + time.Second - 1) / time.Second)
	}
	return uint32(def / time.Second)
}

// underscored writes an address as Calico's protocol names do:
// 172.31.255.12 -> 172_31_255_12.
func underscored(a netip.Addr) string {
	return strings.NewReplacer(".", "_", ":", "_").Replace(a.String())
}
