package rules

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

// Output is the rendering of a State for one IP version.
type Output struct {
	// Tables holds the desired raw, mangle, nat and filter tables.
	Tables map[string]*iptables.Desired
	// IPSets maps the ID of every IP set the rules refer to its type
	// (ipsets.TypeNet or TypeIPPort), so the caller can make sure each one
	// exists even when the State forgot it.
	IPSets map[string]string
}

type polRef struct {
	id      dpapi.PolicyID
	ingress bool
}

type profRef struct {
	name    string
	ingress bool
}

type renderer struct {
	cfg         *Config
	ipv         int
	log         *logrus.Entry
	ipip, vxlan bool
	sets        map[string]string
	// chains referenced from endpoint chains, rendered last.
	polRefs  map[string]map[string]polRef  // table -> chain -> policy
	profRefs map[string]map[string]profRef // table -> chain -> profile
	cache    *cacheGen                     // nil without Config.Cache
}

func (r *renderer) refPolicy(table, chain string, id dpapi.PolicyID, ingress bool) {
	if r.polRefs[table] == nil {
		r.polRefs[table] = map[string]polRef{}
	}
	r.polRefs[table][chain] = polRef{id, ingress}
}

func (r *renderer) refProfile(table, chain, name string, ingress bool) {
	if r.profRefs[table] == nil {
		r.profRefs[table] = map[string]profRef{}
	}
	r.profRefs[table][chain] = profRef{name, ingress}
}

// EncapEnabled reports whether any IPv4 pool uses IPIP or VXLAN.
func EncapEnabled(s *dpapi.State) (ipip, vxlan bool) { return encapEnabled(s, 4) }

// encapEnabled reports whether any pool of the IP version uses IPIP or
// VXLAN (IPv6 pools never use IPIP).
func encapEnabled(s *dpapi.State, ipVersion int) (ipip, vxlan bool) {
	for _, p := range s.Pools {
		if p == nil || !p.CIDR.IsValid() || p.CIDR.Addr().Is4() != (ipVersion == 4) {
			continue
		}
		if p.IPIP == dpapi.EncapAlways || p.IPIP == dpapi.EncapCrossSubnet {
			ipip = true
		}
		if p.VXLAN == dpapi.EncapAlways || p.VXLAN == dpapi.EncapCrossSubnet {
			vxlan = true
		}
	}
	return ipip, vxlan
}

// HostEndpointsByIface maps interface names ("*" for all interfaces) to the
// host endpoint that applies there. Endpoints with no interface name apply
// to the interfaces resolve returns for their expected IPs (nil resolve:
// they are skipped). When two endpoints claim an interface, the first by
// name wins.
func HostEndpointsByIface(s *dpapi.State, resolve func([]netip.Addr) []string) map[string]*dpapi.HostEndpoint {
	names := make([]string, 0, len(s.HostEndpoints))
	for n := range s.HostEndpoints {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string]*dpapi.HostEndpoint{}
	for _, n := range names {
		h := s.HostEndpoints[n]
		if h == nil {
			continue
		}
		ifaces := []string{h.Iface}
		if h.Iface == "" {
			ifaces = nil
			if resolve != nil {
				ifaces = resolve(h.Expected)
			}
		}
		for _, i := range ifaces {
			if _, taken := out[i]; !taken {
				out[i] = h
			}
		}
	}
	return out
}

// Render renders s for one IP version. heps is HostEndpointsByIface's result.
// cfg.Cache, when set, lets unchanged policies skip rendering, and gives
// back the last Output when none of the objects Render reads changed
// (they are never modified: a changed one is a new object). The Output
// must not be modified; with cfg.Cache, its IPSets map is reused by the
// second Render after it for the same IP version.
func Render(s *dpapi.State, cfg *Config, ipVersion int, heps map[string]*dpapi.HostEndpoint, log *logrus.Entry) (out *Output) {
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	r := &renderer{cfg: cfg, ipv: ipVersion, log: log}
	if cfg.Cache != nil {
		g, in := cfg.Cache.gen(ipVersion), inputOf(s, cfg, heps)
		if last := g.unchanged(in); last != nil {
			return last
		}
		g.begin(r)
		defer func() { g.end(in, out) }()
	} else {
		r.sets, r.polRefs, r.profRefs = map[string]string{}, map[string]map[string]polRef{}, map[string]map[string]profRef{}
	}
	r.ipip, r.vxlan = encapEnabled(s, ipVersion)
	if ipVersion == 4 && cfg.IPIPEnabled != nil {
		r.ipip = *cfg.IPIPEnabled
	}
	if ipVersion == 4 && cfg.VXLANEnabled != nil {
		r.vxlan = *cfg.VXLANEnabled
	}
	tables := map[string]*iptables.Desired{}
	for _, t := range iptables.TableNames {
		if cfg.AppendHooks {
			// ChainInsertMode append: our jumps go after the rules already
			// in the kernel's chains, and FORWARD's appends after them.
			tables[t] = &iptables.Desired{Appends: hooks(t)}
		} else {
			tables[t] = &iptables.Desired{Inserts: hooks(t)}
		}
		if r.cache != nil {
			tables[t].Chains = make([]*iptables.Chain, 0, r.cache.chains[t])
		}
	}
	fwd := tables["filter"]
	if fwd.Appends == nil {
		fwd.Appends = map[string][]iptables.Rule{}
	}
	fwd.Appends["FORWARD"] = append(fwd.Appends["FORWARD"], r.forwardAppends()...)

	filter := &tables["filter"].Chains
	*filter = append(*filter, r.filterInput(), r.workloadToHost(), r.filterForward(), r.filterOutput(), r.cidrBlock(s))
	*filter = append(*filter, r.failsafeChains("filter")...)

	// Workloads.
	var wlIfaces []string
	for _, w := range sortedWorkloads(s) {
		if w.Iface == "" {
			continue
		}
		wlIfaces = append(wlIfaces, w.Iface)
		*filter = append(*filter, r.cachedWorkloadChains(w)...)
	}
	*filter = append(*filter, r.workloadDispatch(wlIfaces)...)

	// Host endpoints.
	r.renderHostEndpoints(tables, heps)

	tables["nat"].Chains = r.natChains(s)
	tables["mangle"].Chains = append(r.mangleChains(), tables["mangle"].Chains...)
	tables["raw"].Chains = append(append(r.rawChains(), r.rpfSkip(s)), tables["raw"].Chains...)

	// Policy and profile chains that endpoint chains jump to.
	for table, refs := range r.polRefs {
		for chain, ref := range refs {
			tables[table].Chains = append(tables[table].Chains, r.cachedPolicyChain(s, table, chain, ref))
		}
	}
	for table, refs := range r.profRefs {
		for chain, ref := range refs {
			tables[table].Chains = append(tables[table].Chains, r.profileChain(s, table, chain, ref))
		}
	}
	return &Output{Tables: tables, IPSets: r.sets}
}

// workloadDispatch renders the workload dispatch chains for the workloads'
// interfaces, or reuses the last Render's when the interfaces are the same.
func (r *renderer) workloadDispatch(ifaces []string) []*iptables.Chain {
	if g := r.cache; g != nil && g.dispatch != nil && slices.Equal(g.dispatchIfaces, ifaces) {
		return g.dispatch
	}
	unknown := []iptables.Rule{{Action: r.cfg.deny("filter"), Comment: []string{"Unknown interface"}}}
	chains := dispatchChains(ifaces, WorkloadFromEndpointPrefix, WorkloadToEndpointPrefix,
		ChainFromWorkloadDispatch, ChainToWorkloadDispatch, unknown, unknown)
	if r.cache != nil {
		r.cache.dispatchIfaces, r.cache.dispatch = ifaces, chains
	}
	return chains
}

func (r *renderer) renderHostEndpoints(tables map[string]*iptables.Desired, heps map[string]*dpapi.HostEndpoint) {
	ifaces := make([]string, 0, len(heps))
	for i := range heps {
		ifaces = append(ifaces, i)
	}
	sort.Strings(ifaces)
	var all, preDNAT, untracked []hostEndpoint
	filter, mangle, raw := tables["filter"], tables["mangle"], tables["raw"]
	for _, iface := range ifaces {
		h := heps[iface]
		he := hostEndpoint{iface, h}
		all = append(all, he)
		filter.Chains = append(filter.Chains,
			r.endpointChain(endpointChainSpec{table: "filter", name: EndpointChainName(HostToEndpointPrefix, iface),
				tiers: h.Tiers, profiles: h.Profiles, ingress: false, failsafe: ChainFailsafeOut, allow: r.cfg.filterAllow()}),
			r.endpointChain(endpointChainSpec{table: "filter", name: EndpointChainName(HostFromEndpointPrefix, iface),
				tiers: h.Tiers, profiles: h.Profiles, ingress: true, failsafe: ChainFailsafeIn, allow: r.cfg.filterAllow()}),
			r.endpointChain(endpointChainSpec{table: "filter", name: EndpointChainName(HostToEndpointFwdPrefix, iface),
				tiers: h.ForwardTiers, ingress: false, typ: chainForward, allow: r.cfg.filterAllow()}),
			r.endpointChain(endpointChainSpec{table: "filter", name: EndpointChainName(HostFromEndpointFwdPrefix, iface),
				tiers: h.ForwardTiers, ingress: true, typ: chainForward, allow: r.cfg.filterAllow()}),
		)
		// Normal egress policy for host traffic that was DNATed, whose
		// output interface is only known by mangle POSTROUTING.
		mangle.Chains = append(mangle.Chains,
			r.endpointChain(endpointChainSpec{table: "mangle", name: EndpointChainName(HostToEndpointPrefix, iface),
				tiers: h.Tiers, profiles: h.Profiles, ingress: false, failsafe: ChainFailsafeOut, allow: iptables.Return{}}))
		if len(h.PreDNATTiers) > 0 {
			preDNAT = append(preDNAT, he)
			mangle.Chains = append(mangle.Chains,
				r.endpointChain(endpointChainSpec{table: "mangle", name: EndpointChainName(HostFromEndpointPrefix, iface),
					tiers: h.PreDNATTiers, ingress: true, failsafe: ChainFailsafeIn, typ: chainPreDNAT, allow: r.cfg.mangleAllow()}))
		}
		if len(h.UntrackedTiers) > 0 {
			untracked = append(untracked, he)
			raw.Chains = append(raw.Chains,
				r.endpointChain(endpointChainSpec{table: "raw", name: EndpointChainName(HostToEndpointPrefix, iface),
					tiers: h.UntrackedTiers, ingress: false, failsafe: ChainFailsafeOut, typ: chainUntracked, allow: iptables.Accept{}}),
				r.endpointChain(endpointChainSpec{table: "raw", name: EndpointChainName(HostFromEndpointPrefix, iface),
					tiers: h.UntrackedTiers, ingress: true, failsafe: ChainFailsafeIn, typ: chainUntracked, allow: iptables.Accept{}}))
		}
	}
	filter.Chains = append(filter.Chains, r.hostDispatchChains(all, HostFromEndpointPrefix, HostToEndpointPrefix,
		ChainFromHostEndpoint, ChainToHostEndpoint, true)...)
	filter.Chains = append(filter.Chains, r.hostDispatchChains(all, HostFromEndpointFwdPrefix, HostToEndpointFwdPrefix,
		ChainFromHostEndpointForward, ChainToHostEndpointForward, false)...)
	mangle.Chains = append(mangle.Chains, r.hostDispatchChains(preDNAT, HostFromEndpointPrefix, "", ChainFromHostEndpoint, "", false)...)
	mangle.Chains = append(mangle.Chains, r.hostDispatchChains(all, "", HostToEndpointPrefix, "", ChainToHostEndpoint, true)...)
	raw.Chains = append(raw.Chains, r.hostDispatchChains(untracked, HostFromEndpointPrefix, HostToEndpointPrefix,
		ChainFromHostEndpoint, ChainToHostEndpoint, false)...)
}

func (r *renderer) policyChain(s *dpapi.State, table, chain string, ref polRef) *iptables.Chain {
	dir := "egress"
	if ref.ingress {
		dir = "ingress"
	}
	comment := "Policy " + policyDisplayName(ref.id) + " " + dir
	kind := "gnp"
	if ref.id.Namespace != "" {
		kind = "np"
	}
	o := ruleOwner{table: table, kind: kind, tier: ref.id.Tier, name: ref.id.Name, namespace: ref.id.Namespace}
	p := s.Policies[ref.id]
	if p == nil {
		r.log.WithField("policy", ref.id).Warn("endpoint refers to a policy missing from the state; rendering it empty")
		return &iptables.Chain{Name: chain, Rules: r.policyRules(nil, comment, o)}
	}
	rules := p.Outbound
	if ref.ingress {
		rules = p.Inbound
	}
	return &iptables.Chain{Name: chain, Rules: r.policyRules(rules, comment, o)}
}

func (r *renderer) profileChain(s *dpapi.State, table, chain string, ref profRef) *iptables.Chain {
	dir := "egress"
	if ref.ingress {
		dir = "ingress"
	}
	comment := "Profile " + ref.name + " " + dir
	o := ruleOwner{table: table, kind: "pro", name: ref.name}
	p := s.Profiles[ref.name]
	if p == nil {
		r.log.WithField("profile", ref.name).Warn("endpoint refers to a profile missing from the state; rendering it empty")
		return &iptables.Chain{Name: chain, Rules: r.policyRules(nil, comment, o)}
	}
	rules := p.Outbound
	if ref.ingress {
		rules = p.Inbound
	}
	return &iptables.Chain{Name: chain, Rules: r.policyRules(rules, comment, o)}
}

func sortedWorkloads(s *dpapi.State) []*dpapi.Workload {
	ids := make([]string, 0, len(s.Workloads))
	for id := range s.Workloads {
		ids = append(ids, string(id))
	}
	sort.Strings(ids)
	out := make([]*dpapi.Workload, 0, len(ids))
	for _, id := range ids {
		if w := s.Workloads[dpapi.WorkloadID(id)]; w != nil {
			out = append(out, w)
		}
	}
	return out
}

func hostCIDR(a netip.Addr) string {
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// parseNets parses "10.0.0.0/8" or "10.0.0.1" into a one-element list.
func parseNets(s string) []netip.Prefix {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return []netip.Prefix{p}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}
	}
	return []netip.Prefix{{}}
}
