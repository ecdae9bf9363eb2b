package rules

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dataplane/iptables"
	"github.com/calico-etcd/calico/felix/dpapi"
)

func newTestRenderer(t testing.TB, ipv int) *renderer {
	t.Helper()
	cfg, err := NewConfig(dpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	return &renderer{cfg: &cfg, ipv: ipv, log: logrus.NewEntry(l), sets: map[string]string{},
		polRefs: map[string]map[string]polRef{}, profRefs: map[string]map[string]profRef{}}
}

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func ptr(i int) *int { return &i }

func strs(rules []iptables.Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.String()
	}
	return out
}

const (
	allow  = "--jump MARK --set-mark 0x10000/0x10000"
	ret    = "-m mark --mark 0x10000/0x10000 --jump RETURN"
	passed = "-m mark --mark 0x20000/0x20000 --jump RETURN"
)

// Every rule field, one at a time, then combinations that need match blocks.
func TestRuleRenderingPerField(t *testing.T) {
	ports := []dpapi.PortRange{{Min: 80, Max: 80}, {Min: 8080, Max: 8090}}
	for _, tc := range []struct {
		name string
		ipv  int
		rule dpapi.Rule
		want []string
	}{
		{"allow all", 4, dpapi.Rule{Action: dpapi.Allow}, []string{allow, ret}},
		{"empty action is allow", 4, dpapi.Rule{}, []string{allow, ret}},
		{"deny", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "tcp"}, []string{"-p tcp --jump DROP"}},
		{"pass", 4, dpapi.Rule{Action: dpapi.Pass}, []string{"--jump MARK --set-mark 0x20000/0x20000", passed}},
		{"log", 4, dpapi.Rule{Action: dpapi.Log}, []string{`--jump LOG --log-prefix "calico-packet: " --log-level 5`}},
		{"protocol number", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "4"}, []string{"-p 4 --jump DROP"}},
		{"not protocol", 4, dpapi.Rule{Action: dpapi.Deny, NotProtocol: "TCP"}, []string{"! -p tcp --jump DROP"}},
		{"src net", 4, dpapi.Rule{Action: dpapi.Deny, SrcNets: pfx("10.0.0.1/8")}, []string{"--source 10.0.0.0/8 --jump DROP"}},
		{"not src net", 4, dpapi.Rule{Action: dpapi.Deny, NotSrcNets: pfx("10.0.0.0/8")}, []string{"! --source 10.0.0.0/8 --jump DROP"}},
		{"dst net", 4, dpapi.Rule{Action: dpapi.Deny, DstNets: pfx("10.0.0.0/8")}, []string{"--destination 10.0.0.0/8 --jump DROP"}},
		{"not dst net", 4, dpapi.Rule{Action: dpapi.Deny, NotDstNets: pfx("10.0.0.0/8")}, []string{"! --destination 10.0.0.0/8 --jump DROP"}},
		{"src set", 4, dpapi.Rule{Action: dpapi.Deny, SrcIPSets: []string{"s:a", "s:b"}},
			[]string{"-m set --match-set cali40s:a src -m set --match-set cali40s:b src --jump DROP"}},
		{"not src set", 6, dpapi.Rule{Action: dpapi.Deny, NotSrcIPSets: []string{"s:a"}}, []string{"-m set ! --match-set cali60s:a src --jump DROP"}},
		{"dst set", 4, dpapi.Rule{Action: dpapi.Deny, DstIPSets: []string{"s:a"}}, []string{"-m set --match-set cali40s:a dst --jump DROP"}},
		{"not dst set", 4, dpapi.Rule{Action: dpapi.Deny, NotDstIPSets: []string{"s:a"}}, []string{"-m set ! --match-set cali40s:a dst --jump DROP"}},
		{"dst ports and range", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "tcp", DstPorts: ports},
			[]string{"-p tcp -m multiport --destination-ports 80,8080:8090 --jump DROP"}},
		{"src ports", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "udp", SrcPorts: ports},
			[]string{"-p udp -m multiport --source-ports 80,8080:8090 --jump DROP"}},
		{"not ports", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "sctp", NotSrcPorts: ports, NotDstPorts: ports},
			[]string{"-p sctp -m multiport ! --source-ports 80,8080:8090 -m multiport ! --destination-ports 80,8080:8090 --jump DROP"}},
		{"named dst port", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "tcp", DstNamedPortIPSets: []string{"n:http"}},
			[]string{"-p tcp -m set --match-set cali40n:http dst,dst --jump DROP"}},
		{"named src port", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "tcp", SrcNamedPortIPSets: []string{"n:http"}},
			[]string{"-p tcp -m set --match-set cali40n:http src,src --jump DROP"}},
		{"not named ports", 4, dpapi.Rule{Action: dpapi.Deny, NotSrcNamedPortIPSets: []string{"n:a"}, NotDstNamedPortIPSets: []string{"n:b"}},
			[]string{"-m set ! --match-set cali40n:a src,src -m set ! --match-set cali40n:b dst,dst --jump DROP"}},
		{"icmp type/code", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "icmp", ICMPType: ptr(8), ICMPCode: ptr(0)},
			[]string{"-p icmp -m icmp --icmp-type 8/0 --jump DROP"}},
		{"icmp type implies protocol", 4, dpapi.Rule{Action: dpapi.Deny, ICMPType: ptr(3)}, []string{"-p icmp -m icmp --icmp-type 3 --jump DROP"}},
		{"not icmp type", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "icmp", NotICMPType: ptr(8), NotICMPCode: ptr(1)},
			[]string{"-p icmp -m icmp ! --icmp-type 8/1 --jump DROP"}},
		{"icmpv6 type", 6, dpapi.Rule{Action: dpapi.Deny, Protocol: "icmpv6", ICMPType: ptr(128)},
			[]string{"-p ipv6-icmp -m icmp6 --icmpv6-type 128 --jump DROP"}},
		{"icmp rule skipped in v6", 6, dpapi.Rule{Action: dpapi.Deny, Protocol: "icmp"}, nil},
		{"icmpv6 rule skipped in v4", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "icmpv6"}, nil},
		{"other version skipped", 4, dpapi.Rule{Action: dpapi.Deny, IPVersion: 6}, nil},
		{"v4 nets skip the rule in v6", 6, dpapi.Rule{Action: dpapi.Deny, SrcNets: pfx("10.0.0.0/8")}, nil},
		{"mixed nets keep this version's", 6, dpapi.Rule{Action: dpapi.Deny, DstNets: pfx("10.0.0.0/8", "fd00::/8")},
			[]string{"--destination fd00::/8 --jump DROP"}},
		{"ports without protocol skipped", 4, dpapi.Rule{Action: dpapi.Deny, DstPorts: ports}, nil},
		{"two src nets", 4, dpapi.Rule{Action: dpapi.Deny, SrcNets: pfx("10.1.0.0/16", "10.2.0.0/16")}, []string{
			"--jump MARK --set-mark 0x0/0xc0000",
			"--source 10.1.0.0/16 --jump MARK --set-mark 0x40000/0x40000",
			"--source 10.2.0.0/16 --jump MARK --set-mark 0x40000/0x40000",
			"-m mark --mark 0x40000/0x40000 --jump DROP"}},
		{"net and not net", 4, dpapi.Rule{Action: dpapi.Deny, DstNets: pfx("10.0.0.0/8"), NotDstNets: pfx("10.1.0.0/16")}, []string{
			"--jump MARK --set-mark 0x40000/0xc0000",
			"--destination 10.1.0.0/16 --jump MARK --set-mark 0/0x40000",
			"--destination 10.0.0.0/8 -m mark --mark 0x40000/0x40000 --jump DROP"}},
		{"more than 15 ports", 4, dpapi.Rule{Action: dpapi.Deny, Protocol: "tcp", DstPorts: manyPorts(16)}, []string{
			"--jump MARK --set-mark 0x0/0xc0000",
			"-p tcp -m multiport --destination-ports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 --jump MARK --set-mark 0x40000/0x40000",
			"-p tcp -m multiport --destination-ports 16 --jump MARK --set-mark 0x40000/0x40000",
			"-p tcp -m mark --mark 0x40000/0x40000 --jump DROP"}},
		{"two positive blocks", 4, dpapi.Rule{Action: dpapi.Deny, SrcNets: pfx("10.1.0.0/16", "10.2.0.0/16"), DstNets: pfx("10.3.0.0/16", "10.4.0.0/16")}, []string{
			"--jump MARK --set-mark 0x0/0xc0000",
			"--source 10.1.0.0/16 --jump MARK --set-mark 0x40000/0x40000",
			"--source 10.2.0.0/16 --jump MARK --set-mark 0x40000/0x40000",
			"--destination 10.3.0.0/16 --jump MARK --set-mark 0x80000/0x80000",
			"--destination 10.4.0.0/16 --jump MARK --set-mark 0x80000/0x80000",
			"-m mark --mark 0/0x80000 --jump MARK --set-mark 0/0x40000",
			"-m mark --mark 0x40000/0x40000 --jump DROP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRenderer(t, tc.ipv)
			got := strs(r.ruleToIptables(&tc.rule, ruleOwner{table: "filter"}))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func manyPorts(n int) []dpapi.PortRange {
	var out []dpapi.PortRange
	for i := 1; i <= n; i++ {
		out = append(out, dpapi.PortRange{Min: uint16(i), Max: uint16(i)})
	}
	return out
}

// The policy chains of the reference fixture, rendered from the equivalent
// dpapi rules, have Calico's exact rules and hashes.
func TestPolicyChainsMatchCalicoFixture(t *testing.T) {
	r := newTestRenderer(t, 4)
	frontend := &iptables.Chain{Name: "cali-pi-_MaP3dOjCuqd9xwUJGuX", Rules: r.policyRules([]dpapi.Rule{
		{Action: dpapi.Allow, Protocol: "tcp", SrcIPSets: []string{"s:abcdefghijklmnopqrstuvw"}, DstPorts: []dpapi.PortRange{{Min: 80, Max: 80}, {Min: 8080, Max: 8090}}},
		{Action: dpapi.Log, SrcNets: pfx("10.0.0.0/8")},
		{Action: dpapi.Pass, NotSrcNets: pfx("192.168.0.0/16")},
		{Action: dpapi.Deny, Protocol: "icmp", ICMPType: ptr(8), ICMPCode: ptr(0)},
	}, "Policy default.allow-frontend ingress", ruleOwner{table: "filter"})}
	wantFrontend := []string{"SeiGT5lnaH1F00QM", "Rbdu8IlXDahOV6ZU", "0oQXHx-eDN6J4vcR", "0uIaoSzUNLRcCaU3", "tPkUa_1v-6esAuju", "c8f_OeNpidagWcTQ"}
	if got := frontend.RuleHashes(); strings.Join(got, " ") != strings.Join(wantFrontend, " ") {
		t.Errorf("allow-frontend hashes\n got %v\nwant %v\nrules:\n%s", got, wantFrontend, strings.Join(strs(frontend.Rules), "\n"))
	}

	cplx := &iptables.Chain{Name: "cali-pi-cplx", Rules: r.policyRules([]dpapi.Rule{{
		Action: dpapi.Allow, Protocol: "tcp",
		SrcNets: pfx("10.1.0.0/16", "10.2.0.0/16"), NotSrcNets: pfx("10.1.5.0/24"),
		DstPorts: []dpapi.PortRange{{Min: 443, Max: 443}}, DstNamedPortIPSets: []string{"n:namedportsetid012345678"},
	}}, "Policy cplx ingress", ruleOwner{table: "filter"})}
	wantCplx := []string{"izPFdmEAfmuebiUW", "5BQJ47XQlacj69MU", "kjVtPgCQo-I2e_eJ", "5dDRsKMmt6VsGEro", "clFYPE8t6eX8-6If", "9BmYe7RusSD2D33P", "h1RhONCykDo1E5yY", "RpAuDO4NktCx4x4L"}
	if got := cplx.RuleHashes(); strings.Join(got, " ") != strings.Join(wantCplx, " ") {
		t.Errorf("cplx hashes\n got %v\nwant %v\nrules:\n%s", got, wantCplx, strings.Join(strs(cplx.Rules), "\n"))
	}

	empty := &iptables.Chain{Name: "cali-po-cplx", Rules: r.policyRules(nil, "Policy cplx egress", ruleOwner{table: "filter"})}
	if got := empty.RuleHashes(); len(got) != 1 || got[0] != "pQS4aZanA5795VC7" {
		t.Errorf("empty policy chain hashes %v", got)
	}
}

func TestNewConfigAllocatesMarksFromMask(t *testing.T) {
	c, err := NewConfig(dpapi.Config{IptablesMarkMask: 0x0ff00000})
	if err != nil {
		t.Fatal(err)
	}
	if c.MarkAccept != 0x100000 || c.MarkPass != 0x200000 || c.MarkScratch0 != 0x400000 || c.MarkScratch1 != 0x800000 {
		t.Fatalf("marks %#x %#x %#x %#x", c.MarkAccept, c.MarkPass, c.MarkScratch0, c.MarkScratch1)
	}
	if _, err := NewConfig(dpapi.Config{IptablesMarkMask: 0x7}); err == nil {
		t.Fatal("a 3-bit mask was accepted")
	}
	if _, err := NewConfig(dpapi.Config{DefaultEndpointToHostAction: "Explode"}); err == nil {
		t.Fatal("a bad DefaultEndpointToHostAction was accepted")
	}
}

func TestDispatchChainsSplitByPrefix(t *testing.T) {
	names := []string{"calia1", "calia2", "calia3", "calib1", "calib2", "calic1", "calic2", "calic3", "calid1", "calie1"}
	drop := []iptables.Rule{{Action: iptables.Drop{}, Comment: []string{"Unknown interface"}}}
	chains := dispatchChains(names, WorkloadFromEndpointPrefix, WorkloadToEndpointPrefix,
		ChainFromWorkloadDispatch, ChainToWorkloadDispatch, drop, drop)
	byName := map[string]*iptables.Chain{}
	for _, c := range chains {
		byName[c.Name] = c
	}
	root := byName["cali-from-wl-dispatch"]
	if root == nil || len(chains) != 8 {
		t.Fatalf("chains: %d", len(chains))
	}
	got := strings.Join(strs(root.Rules), "\n")
	want := strings.Join([]string{
		"--in-interface calia+ --goto cali-from-wl-dispatch-a",
		"--in-interface calib+ --goto cali-from-wl-dispatch-b",
		"--in-interface calic+ --goto cali-from-wl-dispatch-c",
		"--in-interface calid1 --goto cali-fw-calid1",
		"--in-interface calie1 --goto cali-fw-calie1",
		`-m comment --comment "Unknown interface" --jump DROP`}, "\n")
	if got != want {
		t.Errorf("root chain\n%s\nwant\n%s", got, want)
	}
	// Hashes as in the reference fixture.
	wantHashes := "KSYF4db4BUWzTX7t FeR-p1DTIa_JxChA KIXL2K2lGEteV4b3 chrPIvnsdo5pc0qG PJ9EuIVlpepNsfDC UZ19emSKfzY1r1lt"
	if h := strings.Join(root.RuleHashes(), " "); h != wantHashes {
		t.Errorf("root hashes %s, want %s", h, wantHashes)
	}
	if c := byName["cali-to-wl-dispatch-b"]; c == nil || strings.Join(c.RuleHashes(), " ") != "SpraaNTPGtK-uTnp KKJLglWcTsKTaqnD ohtiBlpHwLV1teAZ" {
		t.Errorf("child chain %+v", c)
	}
}
