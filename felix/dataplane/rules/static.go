package rules

import (
	"sort"
	"strconv"
	"strings"

	"github.com/calico-etcd/calico/felix/dataplane/ipsets"
	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

func (r *renderer) acceptIfAccepted(a iptables.Action, comment ...string) iptables.Rule {
	return iptables.Rule{Match: iptables.Match{}.MarkSet(r.cfg.MarkAccept), Action: a, Comment: comment}
}

func (r *renderer) allHostsSet() string { return r.setName(ipsets.AllHostsID, ipsets.TypeNet) }

func (r *renderer) filterInput() *iptables.Chain {
	var rules []iptables.Rule
	if r.ipv == 4 && r.ipip {
		rules = append(rules,
			iptables.Rule{
				Match:   iptables.Match{}.Protocol("4").SourceIPSet(r.allHostsSet()).DestAddrTypeLocal(),
				Action:  r.cfg.filterAllow(),
				Comment: []string{"Allow IPIP packets from Calico hosts"},
			},
			iptables.Rule{Match: iptables.Match{}.Protocol("4"), Action: r.cfg.deny("filter"),
				Comment: []string{"Drop IPIP packets from non-Calico hosts"}})
	}
	if r.vxlan {
		vx := iptables.Match{}.Protocol("17").DestPorts(iptables.Port(uint16(r.cfg.VXLANPort)))
		rules = append(rules,
			iptables.Rule{
				Match:   vx.SourceIPSet(r.allHostsSet()).DestAddrTypeLocal(),
				Action:  r.cfg.filterAllow(),
				Comment: []string{"Allow VXLAN packets from Calico hosts"},
			},
			iptables.Rule{Match: vx.DestAddrTypeLocal(), Action: iptables.Drop{},
				Comment: []string{"Drop VXLAN packets from non-Calico hosts"}})
	}
	for _, p := range r.cfg.WorkloadIfacePrefixes {
		rules = append(rules, iptables.Rule{Match: iptables.Match{}.InInterface(p + "+"), Action: iptables.Goto{Target: ChainWorkloadToHost}})
	}
	rules = append(rules,
		r.acceptIfAccepted(r.cfg.filterAllow()),
		iptables.Rule{Action: iptables.ClearMark(r.cfg.allMarks())},
		iptables.Rule{Action: iptables.Jump{Target: ChainFromHostEndpoint}},
		r.acceptIfAccepted(r.cfg.filterAllow(), "Host endpoint policy accepted packet."),
	)
	return &iptables.Chain{Name: ChainFilterInput, Rules: rules}
}

func (r *renderer) workloadToHost() *iptables.Chain {
	var rules []iptables.Rule
	if r.ipv == 6 {
		// Neighbour discovery and multicast listener messages, so workloads
		// can use the host as their router whatever their egress policy.
		for _, t := range []int{130, 131, 132, 133, 135, 136} {
			rules = append(rules, iptables.Rule{Match: iptables.Match{}.Protocol("ipv6-icmp").ICMPv6Type(t, -1), Action: r.cfg.filterAllow()})
		}
	}
	rules = append(rules, iptables.Rule{Action: iptables.Jump{Target: ChainFromWorkloadDispatch}})
	var a iptables.Action = iptables.Drop{}
	switch strings.ToLower(r.cfg.EndpointToHostAction) {
	case "return":
		a = iptables.Return{}
	case "accept":
		a = iptables.Accept{}
	}
	rules = append(rules, iptables.Rule{Action: a, Comment: []string{"Configured DefaultEndpointToHostAction"}})
	return &iptables.Chain{Name: ChainWorkloadToHost, Rules: rules}
}

// failsafeChains renders cali-failsafe-in/out for a table. In the raw
// table, before conntrack, each also allows the replies to the other
// direction's failsafe traffic.
func (r *renderer) failsafeChains(table string) []*iptables.Chain {
	portRule := func(pp dpapi.ProtoPort, dst, netIsDst bool) (iptables.Rule, bool) {
		m := iptables.Match{}.Protocol(strings.ToLower(pp.Protocol))
		if dst {
			m = m.DestPorts(iptables.Port(pp.Port))
		} else {
			m = m.SourcePorts(iptables.Port(pp.Port))
		}
		if pp.Net != "" {
			nets, ok := r.filterNets(parseNets(pp.Net))
			if !ok {
				return iptables.Rule{}, false
			}
			if netIsDst {
				m = m.DestNet(nets[0])
			} else {
				m = m.SourceNet(nets[0])
			}
		}
		return iptables.Rule{Match: m, Action: iptables.Accept{}}, true
	}
	var in, out []iptables.Rule
	for _, pp := range r.cfg.FailsafeInbound {
		if rule, ok := portRule(pp, true, false); ok {
			in = append(in, rule)
		}
	}
	for _, pp := range r.cfg.FailsafeOutbound {
		if rule, ok := portRule(pp, true, true); ok {
			out = append(out, rule)
		}
	}
	if table == "raw" {
		for _, pp := range r.cfg.FailsafeOutbound {
			if rule, ok := portRule(pp, false, false); ok {
				in = append(in, rule)
			}
		}
		for _, pp := range r.cfg.FailsafeInbound {
			if rule, ok := portRule(pp, false, true); ok {
				out = append(out, rule)
			}
		}
	}
	return []*iptables.Chain{{Name: ChainFailsafeIn, Rules: in}, {Name: ChainFailsafeOut, Rules: out}}
}

func (r *renderer) filterForward() *iptables.Chain {
	rules := []iptables.Rule{
		{Action: iptables.ClearMark(r.cfg.allMarks() &^ r.cfg.MarkAccept)},
		{Match: iptables.Match{}.MarkClear(r.cfg.MarkAccept), Action: iptables.Jump{Target: ChainFromHostEndpointForward}},
	}
	for _, p := range r.cfg.WorkloadIfacePrefixes {
		rules = append(rules,
			iptables.Rule{Match: iptables.Match{}.InInterface(p + "+"), Action: iptables.Jump{Target: ChainFromWorkloadDispatch}},
			iptables.Rule{Match: iptables.Match{}.OutInterface(p + "+"), Action: iptables.Jump{Target: ChainToWorkloadDispatch}})
	}
	rules = append(rules,
		iptables.Rule{Action: iptables.Jump{Target: ChainToHostEndpointForward}},
		iptables.Rule{Action: iptables.Jump{Target: ChainCIDRBlock}},
	)
	return &iptables.Chain{Name: ChainFilterForward, Rules: rules}
}

// cidrBlock is cali-cidr-block: the service ranges the BGPConfiguration
// advertises get ServiceLoopPrevention's action when forwarding reaches
// it (nothing else claimed the packet), so that traffic to an unused
// service address does not loop between this host and its BGP peers.
func (r *renderer) cidrBlock(s *dpapi.State) *iptables.Chain {
	var rules []iptables.Rule
	if r.cfg.ServiceLoopAction != nil {
		cidrs := make([]string, 0, len(s.ServiceCIDRs))
		for _, c := range s.ServiceCIDRs {
			if c.IsValid() && c.Addr().Is4() == (r.ipv == 4) {
				cidrs = append(cidrs, c.Masked().String())
			}
		}
		sort.Strings(cidrs)
		for i, c := range cidrs {
			if i > 0 && cidrs[i-1] == c {
				continue
			}
			rules = append(rules, iptables.Rule{Match: iptables.Match{}.DestNet(c), Action: r.cfg.ServiceLoopAction})
		}
	}
	return &iptables.Chain{Name: ChainCIDRBlock, Rules: rules}
}

// forwardAppends are kept at the end of the kernel's FORWARD chain.
func (r *renderer) forwardAppends() []iptables.Rule {
	return []iptables.Rule{
		r.acceptIfAccepted(r.cfg.filterAllow(), "Policy explicitly accepted packet."),
		// Tells mangle POSTROUTING this packet was forwarded, not host traffic.
		{Action: iptables.SetMark(r.cfg.MarkAccept)},
	}
}

func (r *renderer) filterOutput() *iptables.Chain {
	rules := []iptables.Rule{r.acceptIfAccepted(r.cfg.filterAllow())}
	for _, p := range r.cfg.WorkloadIfacePrefixes {
		rules = append(rules, iptables.Rule{Match: iptables.Match{}.OutInterface(p + "+"), Action: iptables.Return{}})
	}
	if r.ipv == 4 && r.ipip {
		rules = append(rules, iptables.Rule{
			Match:   iptables.Match{}.Protocol("4").DestIPSet(r.allHostsSet()).SrcAddrTypeLocal(false, false),
			Action:  r.cfg.filterAllow(),
			Comment: []string{"Allow IPIP packets to other Calico hosts"},
		})
	}
	if r.vxlan {
		rules = append(rules, iptables.Rule{
			Match: iptables.Match{}.Protocol("17").DestPorts(iptables.Port(uint16(r.cfg.VXLANPort))).
				SrcAddrTypeLocal(false, false).DestIPSet(r.allHostsSet()),
			Action:  r.cfg.filterAllow(),
			Comment: []string{"Allow VXLAN packets to other Calico hosts"},
		})
	}
	rules = append(rules,
		iptables.Rule{Action: iptables.ClearMark(r.cfg.allMarks())},
		iptables.Rule{Match: iptables.Match{}.NotConntrackState("DNAT"), Action: iptables.Jump{Target: ChainToHostEndpoint}},
		r.acceptIfAccepted(r.cfg.filterAllow(), "Host endpoint policy accepted packet."),
	)
	return &iptables.Chain{Name: ChainFilterOutput, Rules: rules}
}

func (r *renderer) natChains(s *dpapi.State) []*iptables.Chain {
	post := []iptables.Rule{
		{Action: iptables.Jump{Target: ChainFIPSNAT}},
		{Action: iptables.Jump{Target: ChainNATOutgoing}},
	}
	me := s.Hosts[r.cfg.Hostname]
	tunnel := func(dev string) iptables.Rule {
		// Host-sourced packets leaving by a tunnel with a source that is
		// not the tunnel's: masquerade to the tunnel address.
		return iptables.Rule{
			Match:  iptables.Match{}.OutInterface(dev).SrcAddrTypeLocal(true, true).SrcAddrTypeLocal(false, false),
			Action: iptables.Masquerade{RandomFully: true},
		}
	}
	if r.ipv == 4 && me != nil {
		if r.ipip && me.IPIPTunnelAddr.IsValid() {
			post = append(post, tunnel(IPIPDevice))
		}
		if r.vxlan && me.VXLANTunnelAddr.IsValid() {
			post = append(post, tunnel(VXLANDevice))
		}
	}
	if r.ipv == 6 && me != nil && r.vxlan && me.VXLANTunnelAddrV6.IsValid() {
		post = append(post, tunnel(VXLANV6Device))
	}
	var natOut []iptables.Rule
	for _, p := range s.Pools {
		if p != nil && p.NATOutgoing && p.CIDR.IsValid() && p.CIDR.Addr().Is4() == (r.ipv == 4) {
			natOut = r.natOutgoingRules()
			break
		}
	}
	var dnat, snat []iptables.Rule
	for _, w := range sortedWorkloads(s) {
		if !r.cfg.FloatingIPs {
			break
		}
		for _, n := range w.NATs {
			if !n.Internal.IsValid() || !n.External.IsValid() || n.Internal.Is4() != (r.ipv == 4) {
				continue
			}
			in, ext := hostCIDR(n.Internal), hostCIDR(n.External)
			dnat = append(dnat, iptables.Rule{Match: iptables.Match{}.DestNet(ext), Action: iptables.DNAT{To: n.Internal.String()}})
			snat = append(snat, iptables.Rule{Match: iptables.Match{}.SourceNet(in).DestNet(in), Action: iptables.SNAT{To: n.External.String()}})
		}
	}
	return []*iptables.Chain{
		{Name: ChainPrerouting, Rules: []iptables.Rule{{Action: iptables.Jump{Target: ChainFIPDNAT}}}},
		{Name: ChainPostrouting, Rules: post},
		{Name: ChainOutput, Rules: []iptables.Rule{{Action: iptables.Jump{Target: ChainFIPDNAT}}}},
		{Name: ChainNATOutgoing, Rules: natOut},
		{Name: ChainFIPDNAT, Rules: dnat},
		{Name: ChainFIPSNAT, Rules: snat},
	}
}

func (r *renderer) mangleChains() []*iptables.Chain {
	pre := []iptables.Rule{
		{Match: iptables.Match{}.ConntrackState("RELATED,ESTABLISHED"), Action: r.cfg.mangleAllow()},
		r.acceptIfAccepted(r.cfg.mangleAllow()),
		{Action: iptables.Jump{Target: ChainFromHostEndpoint}},
		r.acceptIfAccepted(r.cfg.mangleAllow(), "Host endpoint policy accepted packet."),
	}
	post := []iptables.Rule{
		r.acceptIfAccepted(iptables.Return{}),
		{Action: iptables.ClearMark(r.cfg.allMarks())},
		{Match: iptables.Match{}.ConntrackState("DNAT"), Action: iptables.Jump{Target: ChainToHostEndpoint}},
		r.acceptIfAccepted(iptables.Return{}, "Host endpoint policy accepted packet."),
	}
	return append(r.failsafeChains("mangle"),
		&iptables.Chain{Name: ChainPrerouting, Rules: pre},
		&iptables.Chain{Name: ChainPostrouting, Rules: post})
}

func (r *renderer) rawChains() []*iptables.Chain {
	fromWL := r.cfg.MarkScratch0
	pre := []iptables.Rule{{Action: iptables.ClearMark(r.cfg.allMarks())}}
	vxNoTrack := iptables.Rule{
		Match:  iptables.Match{}.Protocol("udp").DestPorts(iptables.Port(uint16(r.cfg.VXLANPort))),
		Action: iptables.NoTrack{},
	}
	if r.vxlan {
		pre = append(pre, vxNoTrack)
	}
	for _, p := range r.cfg.WorkloadIfacePrefixes {
		pre = append(pre, iptables.Rule{Match: iptables.Match{}.InInterface(p + "+"), Action: iptables.SetMark(fromWL)})
	}
	pre = append(pre,
		// Source prefixes workloads may send from (WorkloadSourceSpoofing).
		iptables.Rule{Match: iptables.Match{}.MarkSet(fromWL), Action: iptables.Jump{Target: ChainRPFSkip}},
		// Strict reverse-path check: workloads cannot spoof their source.
		iptables.Rule{Match: iptables.Match{}.MarkSet(fromWL).RPFCheckFailed(), Action: iptables.Drop{}},
		iptables.Rule{Match: iptables.Match{}.MarkClear(fromWL), Action: iptables.Jump{Target: ChainFromHostEndpoint}},
		r.acceptIfAccepted(iptables.Accept{}),
	)
	out := []iptables.Rule{
		{Action: iptables.ClearMark(r.cfg.allMarks())},
		{Action: iptables.Jump{Target: ChainToHostEndpoint}},
	}
	if r.vxlan {
		out = append(out, vxNoTrack)
	}
	out = append(out, r.acceptIfAccepted(iptables.Accept{}))
	return append(r.failsafeChains("raw"),
		&iptables.Chain{Name: ChainPrerouting, Rules: pre},
		&iptables.Chain{Name: ChainOutput, Rules: out})
}

// rpfSkip is cali-rpf-skip: packets from a workload interface with a
// source in that workload's AllowSpoofedSourcePrefixes skip the
// reverse-path check (only with WorkloadSourceSpoofing Any).
func (r *renderer) rpfSkip(s *dpapi.State) *iptables.Chain {
	var rules []iptables.Rule
	if r.cfg.SourceSpoofing {
		for _, w := range sortedWorkloads(s) {
			if w.Iface == "" {
				continue
			}
			for _, p := range w.AllowSpoofedSourcePrefixes {
				if p.IsValid() && p.Addr().Is4() == (r.ipv == 4) {
					rules = append(rules, iptables.Rule{
						Match:  iptables.Match{}.InInterface(w.Iface).SourceNet(p.Masked().String()),
						Action: iptables.Accept{},
					})
				}
			}
		}
	}
	return &iptables.Chain{Name: ChainRPFSkip, Rules: rules}
}

// natOutgoingRules are cali-nat-outgoing's rules when some pool of this
// IP version has natOutgoing: masquerade (or SNAT to NATOutgoingAddress)
// packets from the NAT pools to anywhere outside the pools (and outside
// the Calico hosts with NATOutgoingExclusions IPPoolsAndHostIPs), TCP
// and UDP from NATPortRange's ports when it is set, as Calico.
func (r *renderer) natOutgoingRules() []iptables.Rule {
	m := iptables.Match{}.
		SourceIPSet(r.setName(ipsets.MasqPoolsID, ipsets.TypeNet)).
		NotDestIPSet(r.setName(ipsets.AllPoolsID, ipsets.TypeNet))
	if r.cfg.NATExcludeHosts {
		m = m.NotDestIPSet(r.allHostsSet())
	}
	if r.cfg.NATOutgoingInterface != "" {
		m = m.OutInterface(r.cfg.NATOutgoingInterface)
	}
	snatTo := ""
	if r.ipv == 4 && r.cfg.NATOutgoingAddress.IsValid() && r.cfg.NATOutgoingAddress.Is4() {
		snatTo = r.cfg.NATOutgoingAddress.String()
	}
	action := func(ports string) iptables.Action {
		if snatTo == "" {
			return iptables.Masquerade{ToPorts: ports, RandomFully: true}
		}
		to := snatTo
		if ports != "" {
			to += ":" + ports
		}
		return iptables.SNAT{To: to, RandomFully: true}
	}
	if r.cfg.NATPortMax == 0 {
		return []iptables.Rule{{Match: m, Action: action("")}}
	}
	ports := strconv.Itoa(int(r.cfg.NATPortMin)) + "-" + strconv.Itoa(int(r.cfg.NATPortMax))
	var out []iptables.Rule
	for _, proto := range []string{"tcp", "udp"} {
		pm := m.Protocol(proto)
		out = append(out, iptables.Rule{Match: pm, Action: action(ports)}, iptables.Rule{Match: pm, Action: iptables.Return{}})
	}
	return append(out, iptables.Rule{Match: m, Action: action("")})
}

// hooks are the jumps from the kernel's chains to ours, per table.
func hooks(table string) map[string][]iptables.Rule {
	j := func(target string) []iptables.Rule { return []iptables.Rule{{Action: iptables.Jump{Target: target}}} }
	switch table {
	case "filter":
		return map[string][]iptables.Rule{"INPUT": j(ChainFilterInput), "FORWARD": j(ChainFilterForward), "OUTPUT": j(ChainFilterOutput)}
	case "nat":
		return map[string][]iptables.Rule{"PREROUTING": j(ChainPrerouting), "POSTROUTING": j(ChainPostrouting), "OUTPUT": j(ChainOutput)}
	case "mangle":
		return map[string][]iptables.Rule{"PREROUTING": j(ChainPrerouting), "POSTROUTING": j(ChainPostrouting)}
	case "raw":
		return map[string][]iptables.Rule{"PREROUTING": j(ChainPrerouting), "OUTPUT": j(ChainOutput)}
	}
	return nil
}
