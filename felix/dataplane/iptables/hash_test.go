package iptables

import (
	"strings"
	"testing"
)

func TestLengthLimitedName(t *testing.T) {
	for _, tc := range []struct {
		prefix, suffix, want string
	}{
		{"cali-tw-", "cali1234567890a", "cali-tw-cali1234567890a"},
		// Calico's own chain for policy "default.allow-frontend" (fixture).
		{"cali-pi-", "default.allow-frontend", "cali-pi-_MaP3dOjCuqd9xwUJGuX"},
		{"cali-pri-", "kns.ns1", "cali-pri-kns.ns1"},
		// Exactly 28 characters is kept...
		{"cali-pi-", "12345678901234567890", "cali-pi-12345678901234567890"},
		// ...unless it starts with the marker of a shortened name.
		{"cali-pi-", "_2345678901234567890", "cali-pi-_"},
	} {
		got := ChainName(tc.prefix, tc.suffix)
		if strings.HasSuffix(tc.want, "_") {
			if !strings.HasPrefix(got, tc.want) || len(got) != MaxChainNameLength {
				t.Errorf("ChainName(%q, %q) = %q, want a hashed name", tc.prefix, tc.suffix, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("ChainName(%q, %q) = %q, want %q", tc.prefix, tc.suffix, got, tc.want)
		}
	}
	long := ChainName("cali-pi-", strings.Repeat("x", 100))
	if len(long) != MaxChainNameLength || long == ChainName("cali-pi-", strings.Repeat("x", 99)) {
		t.Errorf("long names: %q", long)
	}
	if n := LengthLimitedName("cali40", "s:abcdefghijklmnopqrstuvw", 31); n != "cali40s:abcdefghijklmnopqrstuvw" {
		t.Errorf("ipset name %q", n)
	}
}

// The hashes of rules rendered like Calico's equal Calico's own (from
// the reference fixture): same chain name, content and position, same hash.
func TestRuleHashesMatchCalico(t *testing.T) {
	fwd := &Chain{Name: "cali-FORWARD", Rules: []Rule{
		{Action: ClearMark(0xe0000)},
		{Match: Match{}.MarkClear(0x10000), Action: Jump{Target: "cali-from-hep-forward"}},
		{Match: Match{}.InInterface("cali+"), Action: Jump{Target: "cali-from-wl-dispatch"}},
		{Match: Match{}.OutInterface("cali+"), Action: Jump{Target: "cali-to-wl-dispatch"}},
		{Action: Jump{Target: "cali-to-hep-forward"}},
		{Action: Jump{Target: "cali-cidr-block"}},
	}}
	want := []string{"vjrMJCRpqwy5oRoX", "A_sPAO0mcxbT9mOV", "8ZoYfO5HKXWbB3pk", "jdEuaPBe14V2hutn", "12bc6HljsMKsmfr-", "NOSxoaGx8OIstr1z"}
	if got := fwd.RuleHashes(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cali-FORWARD hashes\n got %v\nwant %v", got, want)
	}
	// The same rules in another chain, or in another order, hash differently.
	other := &Chain{Name: "cali-other", Rules: fwd.Rules}
	if other.RuleHashes()[0] == want[0] {
		t.Error("hash does not depend on the chain name")
	}
	swapped := &Chain{Name: "cali-FORWARD", Rules: []Rule{fwd.Rules[1], fwd.Rules[0]}}
	if swapped.RuleHashes()[1] == want[0] {
		t.Error("hash does not depend on the position")
	}
}

func TestRuleRendering(t *testing.T) {
	m := Match{}
	for _, tc := range []struct {
		rule Rule
		want string
	}{
		{Rule{Action: Accept{}}, "--jump ACCEPT"},
		{Rule{Comment: []string{`odd "comment" here`}, Action: Drop{}}, `-m comment --comment "odd _comment_ here" --jump DROP`},
		{Rule{Match: m.Protocol("tcp").SourceNet("10.0.0.0/8").DestPorts(Port(80), PortRange{8080, 8090}), Action: Return{}},
			"-p tcp --source 10.0.0.0/8 -m multiport --destination-ports 80,8080:8090 --jump RETURN"},
		{Rule{Match: m.NotProtocol("udp").NotSourceNet("10.1.0.0/16").NotDestNet("10.2.0.0/16").NotSourcePorts(Port(53)).NotDestPorts(Port(1), Port(2))},
			"! -p udp ! --source 10.1.0.0/16 ! --destination 10.2.0.0/16 -m multiport ! --source-ports 53 -m multiport ! --destination-ports 1,2"},
		{Rule{Match: m.SourceIPSet("a").NotSourceIPSet("b").DestIPSet("c").NotDestIPSet("d"), Action: Jump{Target: "x"}},
			"-m set --match-set a src -m set ! --match-set b src -m set --match-set c dst -m set ! --match-set d dst --jump x"},
		{Rule{Match: m.SourceIPPortSet("a").NotSourceIPPortSet("b").DestIPPortSet("c").NotDestIPPortSet("d"), Action: Goto{Target: "y"}},
			"-m set --match-set a src,src -m set ! --match-set b src,src -m set --match-set c dst,dst -m set ! --match-set d dst,dst --goto y"},
		{Rule{Match: m.Protocol("icmp").ICMPType(8, 0).NotICMPType(3, -1)}, "-p icmp -m icmp --icmp-type 8/0 -m icmp ! --icmp-type 3"},
		{Rule{Match: m.Protocol("ipv6-icmp").ICMPv6Type(128, -1).NotICMPv6Type(1, 4)}, "-p ipv6-icmp -m icmp6 --icmpv6-type 128 -m icmp6 ! --icmpv6-type 1/4"},
		{Rule{Match: m.ConntrackState("RELATED,ESTABLISHED").NotConntrackState("DNAT"), Action: SetMark(0x10000)},
			"-m conntrack --ctstate RELATED,ESTABLISHED -m conntrack ! --ctstate DNAT --jump MARK --set-mark 0x10000/0x10000"},
		{Rule{Match: m.MarkSet(0x10000).MarkClear(0x20000).MarkNotClear(0x30000), Action: ClearMark(0xf0000)},
			"-m mark --mark 0x10000/0x10000 -m mark --mark 0/0x20000 -m mark ! --mark 0/0x30000 --jump MARK --set-mark 0/0xf0000"},
		{Rule{Action: SetMaskedMark{Mark: 0, Mask: 0xc0000}}, "--jump MARK --set-mark 0x0/0xc0000"},
		{Rule{Match: m.OutInterface("tunl0").SrcAddrTypeLocal(true, true).SrcAddrTypeLocal(false, false), Action: Masquerade{RandomFully: true}},
			"--out-interface tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL --jump MASQUERADE --random-fully"},
		{Rule{Match: m.DestAddrTypeLocal().RPFCheckFailed(), Action: NoTrack{}}, "-m addrtype --dst-type LOCAL -m rpfilter --invert --validmark --jump NOTRACK"},
		{Rule{Action: SNAT{To: "1.2.3.4", RandomFully: true}}, "--jump SNAT --to-source 1.2.3.4 --random-fully"},
		{Rule{Action: DNAT{To: "10.0.0.1"}}, "--jump DNAT --to-destination 10.0.0.1"},
		{Rule{Action: Log{Prefix: "calico-packet"}}, `--jump LOG --log-prefix "calico-packet: " --log-level 5`},
		{Rule{Comment: []string{"just a comment"}}, `-m comment --comment "just a comment"`},
	} {
		if got := tc.rule.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	// Builders never share backing arrays.
	base := Match{}.Protocol("tcp")
	a, b := base.SourceNet("1.0.0.0/8"), base.SourceNet("2.0.0.0/8")
	if a.Render() == b.Render() {
		t.Error("Match builders alias each other")
	}
}
